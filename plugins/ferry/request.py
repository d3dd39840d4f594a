"""Typed run requests: each DAG's params declared once, as one frozen pydantic model per family.

A family declares its request like this (``ferry/<family>/request.py``)::

    class EtlRequest(Request):
        batch_size: int = param(10000, "Rows per batch.", minimum=1)
        source: Literal["direct", "s3"] = param("direct", "Read the source directly, or a dump from S3.")
        s3_key: str | None = param(None, "The dump's key. Empty: the newest.")

- the DAG file's ``params=EtlRequest.params()``: one Airflow ``Param`` per field, its JSON schema (type, enum,
  bounds, format) derived from the field's type and constraints, so the trigger form and the code never
  disagree about allowed values;
- each task's ``EtlRequest.from_context(context)``: the form's values validated once more (the REST API and
  ``airflow dags trigger`` skip the form), empty optional values (``""``, ``[]``, ``{}``) read as ``None``
  (= the documented default), keys nobody declared refused with the list of accepted ones, and every bad
  value named in one ``RequestError``.

In Airflow's trigger form a param whose schema does not admit ``null`` is *required*: an optional field is
typed ``X | None`` with a ``None`` default, which gives ``type: ["null", X]``.
Imported by DAG files at parse time: keep it light (pydantic and ``airflow.sdk`` only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ferry.errors import FerryError

#: Pydantic constraint -> the JSON-schema keyword the form and Airflow's validation use.
_CONSTRAINTS = {
    "minimum": "ge",
    "maximum": "le",
    "min_length": "min_length",
    "max_length": "max_length",
    "pattern": "pattern",
    "min_items": "min_length",
    "max_items": "max_length",
}
_EMPTY: tuple[Any, ...] = ("", [], {})
_SHOWN = 80  # characters of a refused value quoted in an error (never a whole 10,000-character string)


class RequestError(FerryError):
    """One or more params are invalid; the message names each one, what was expected and what was given."""


def param(default: Any, description: str, *, form: Mapping[str, Any] | None = None, **constraints: Any) -> Any:
    """A request field that is also a trigger-form ``Param``: its default, its description, its constraints
    (``minimum``, ``maximum``, ``min_length``, ``max_length``, ``pattern``, ``min_items``, ``max_items``),
    enforced both by Airflow's form and by the request; ``form`` adds form-only JSON schema (``format``)."""
    unknown = set(constraints) - set(_CONSTRAINTS)
    if unknown:
        raise TypeError(f"param(): unknown constraint(s) {sorted(unknown)}; known: {sorted(_CONSTRAINTS)}")
    kwargs = {_CONSTRAINTS[k]: v for k, v in constraints.items() if v is not None}
    return Field(default, description=description, json_schema_extra=dict(form or {}), **kwargs)


def _form_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's JSON schema of one field as the trigger form wants it: ``X | None`` as ``type: [null, X]``,
    arrays of allowed values as a multi-select (``examples`` + ``uniqueItems``), no ``title``/``default``."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
    branches = prop.pop("anyOf", None)
    if branches:
        inner = [b for b in branches if b.get("type") != "null"]
        if len(inner) != 1:
            raise TypeError(f"a param is one type or that type | None, not {branches}")
        prop = {**inner[0], **prop, "type": ["null", inner[0]["type"]]}
    items = prop.get("items") or {}
    if "enum" in items:  # the form renders a multi-select only when the schema lists examples
        prop.setdefault("examples", list(items["enum"]))
        prop.setdefault("uniqueItems", True)
    if prop.get("type") == "object" or "null" in prop.get("type", []) and "object" in prop["type"]:
        prop.pop("additionalProperties", None)
    return prop


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"... ({len(text)} characters)"


class Request(BaseModel):
    """Base of every family's run request: frozen, unknown keys refused, empty optional values = ``None``."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for name, field in cls.model_fields.items():
            if name in out and _is_empty(out[name]) and field.default is None:
                out[name] = None
        return out

    @classmethod
    def params(cls, **overrides: Any) -> dict[str, Any]:
        """The DAG's ``params``: one ``Param`` per field (``overrides`` replace a field's default)."""
        from airflow.sdk import Param

        props = cls.model_json_schema(mode="validation")["properties"]
        out = {}
        for name, field in cls.model_fields.items():
            default = overrides.get(name, field.default)
            out[name] = Param(_jsonable(default), **_form_schema(props[name]))
        return out

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Self:
        """The request of a task's Airflow context (its ``params``)."""
        return cls.of(context["params"])

    @classmethod
    def of(cls, params: Mapping[str, Any] | None) -> Self:
        """The request of a params mapping (the trigger form's values), validated."""
        values = dict(params or {})
        unknown = sorted(set(values) - set(cls.model_fields))
        if unknown:
            raise RequestError(
                f"unknown param(s) {', '.join(unknown)}: {cls.__name__} accepts {', '.join(cls.model_fields)}"
            )
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            lines = [
                f"param {'.'.join(str(p) for p in e['loc']) or '(all)'}: {e['msg']} (given {_shown(e.get('input'))})"
                for e in exc.errors(include_url=False)
            ]
            raise RequestError(f"{cls.__name__}: " + "; ".join(lines)) from None

    def as_params(self) -> dict[str, Any]:
        """The request as plain JSON values (for audit records and XCom)."""
        return self.model_dump(mode="json")


def _is_empty(value: Any) -> bool:
    return any(value == e and type(value) is type(e) for e in _EMPTY)


def _jsonable(value: Any) -> Any:
    from enum import Enum

    return value.value if isinstance(value, Enum) else value


# ----------------------------------------------------------------------------- params from an untrusted form
# Ferry trusts its DAG authors and the bundle; it does not trust what a trigger form (or the REST API) sends.

#: MongoDB's reserved databases: never a source or target of a Ferry run.
SYSTEM_DATABASES = ("admin", "local", "config")
_DB_FORBIDDEN = set('/\\. "$*<>:|?\0')
MAX_TEXT = 4096


def _mongo_database(name: str) -> str:
    bad = sorted(set(name) & _DB_FORBIDDEN)
    if bad:
        raise ValueError(f"a MongoDB database name may not contain {' '.join(repr(c) for c in bad)}")
    if name.lower() in SYSTEM_DATABASES:
        raise ValueError(f"{name!r} is a MongoDB system database ({', '.join(SYSTEM_DATABASES)} are refused)")
    return name


def check_database(param_name: str, name: str, owner: str, max_length: int = 63) -> str:
    """``name`` as a MongoDB database a task may write (``_mongo_database``'s rules, at most ``max_length``
    characters): else a ``RequestError`` naming ``owner`` and the param, as a Request's error does (for
    operators whose params are not a Request)."""
    try:
        if not name or len(name) > max_length:
            raise ValueError(f"a MongoDB database name has 1 to {max_length} characters (got {len(name)})")
        return _mongo_database(name)
    except ValueError as exc:
        raise RequestError(f"{owner}: param {param_name}: {exc}") from None


def _mongo_collection(name: str) -> str:
    if "$" in name or "\0" in name:
        raise ValueError("a MongoDB collection name may not contain '$' or NUL")
    if name.startswith("system.") or name.startswith("."):
        raise ValueError("a collection name may not start with 'system.' or '.'")
    return name


def _bundle_path(value: str) -> str:
    """A file path inside ``include/`` or an allowed folder, after ``..`` and symlinks are resolved."""
    from ferry import settings

    if "\0" in value:
        raise ValueError("a path may not contain NUL")
    path = settings.repo_path(value).resolve()
    allowed = settings.allowed_dirs()
    if not any(path == d or d in path.parents for d in allowed):
        raise ValueError(
            "path resolves outside the allowed folders (the bundle's include/, a local FERRY_STORAGE_URL, "
            "FERRY_ALLOWED_DIRS)"
        )
    return value


def _bucket(name: str) -> str:
    from fnmatch import fnmatchcase

    from ferry import settings

    if not any(fnmatchcase(name, pattern) for pattern in settings.allowed_buckets()):
        raise ValueError(
            f"bucket {name!r} is not allowed (FERRY_ALLOWED_BUCKETS: {settings.get('FERRY_ALLOWED_BUCKETS')})"
        )
    return name


def _location(url: str) -> str:
    """An S3 URL into an allowed bucket, or a local folder inside an allowed folder."""
    if url.startswith("s3://"):
        _bucket(url[5:].partition("/")[0])
        return url
    if "://" in url and not url.startswith("file://"):
        raise ValueError("a location is s3://bucket/prefix or a local folder")
    _bundle_path(url[7:] if url.startswith("file://") else url)
    return url


#: Bounded free text (labels, names shown in reports).
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
#: A MongoDB database name by MongoDB's rules, never admin/local/config; short enough for Ferry's suffixes.
MongoDatabase = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(_mongo_database)]
#: A MongoDB collection name by MongoDB's rules.
MongoCollection = Annotated[str, StringConstraints(min_length=1, max_length=120), AfterValidator(_mongo_collection)]
#: A file path param (mapping, config, CSV folder or glob): inside the bundle's include/ or an allowed folder.
BundlePath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_bundle_path)]
#: An S3 bucket name param: one of FERRY_ALLOWED_BUCKETS.
Bucket = Annotated[str, StringConstraints(min_length=3, max_length=63), AfterValidator(_bucket)]
#: Where files go (``*_url`` params): an allowed bucket's S3 URL or an allowed local folder.
Location = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT), AfterValidator(_location)]
