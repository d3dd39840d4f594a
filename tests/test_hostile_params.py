"""Every run request against hostile trigger-form input (issue 28): paths outside the bundle, MongoDB system
databases and names breaking MongoDB's rules, buckets nobody allowed, 10,000-character strings. Each is refused
by the request (parsed by a task before any read or write) with an error naming the param, without echoing
the whole value."""

from __future__ import annotations

import typing

import pytest

from ferry.request import Request, RequestError

UP = "../" * 40
HOSTILE = {
    "_mongo_database": ["admin", "local", "config", "a/b", "a.b", "a$b", "a\0b", "x" * 10_000],
    "_mongo_collection": ["system.users", "a$b", "a\0b", "x" * 10_000],
    # escapes climb far enough to leave any checkout (a clone under /tmp would otherwise land in the temp dir,
    # which the test stack allows)
    "_bundle_path": [UP + "etc/passwd", "/etc/passwd", "include/" + UP + "etc/passwd", "a\0b", "x" * 10_000],
    "_bucket": ["someone-elses-bucket", "x" * 10_000],
    "_location": ["s3://someone-elses-bucket/x", "http://example.com/x", "/etc", "x" * 10_000],
}
TEXT = "x" * 10_000


def _requests() -> list[type[Request]]:
    import ferry.catalog.request
    import ferry.etl.request
    import ferry.promotion.request
    import ferry.sales.request
    import ferry.smoke.request  # noqa: F401 - each family's requests register as subclasses

    out, todo = [], list(Request.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return sorted(out, key=lambda c: f"{c.__module__}.{c.__name__}")


def _checks(tp) -> tuple[set[str], bool, bool]:
    """(names of the field's validators, is a list, has a max length) of an annotation, through ``X | None``,
    ``list[X]`` and ``Annotated``."""
    names: set[str] = set()
    is_list = bounded = False
    for meta in getattr(tp, "__metadata__", ()):
        func = getattr(meta, "func", None)
        if func is not None:
            names.add(func.__name__)
        bounded = bounded or getattr(meta, "max_length", None) is not None
    origin = typing.get_origin(tp)
    if origin is list:
        is_list = True
    for arg in typing.get_args(tp):
        if arg is type(None) or isinstance(arg, str | int | float):
            continue
        n, lst, b = _checks(arg)
        names |= n
        is_list, bounded = is_list or lst, bounded or b
    return names, is_list, bounded


def _cases():
    for cls in _requests():
        for name, field in cls.model_fields.items():
            validators, is_list, bounded = _checks(field.annotation)
            for meta in field.metadata:  # pydantic moves a plain Annotated field's metadata here
                if getattr(meta, "func", None) is not None:
                    validators.add(meta.func.__name__)
                bounded = bounded or getattr(meta, "max_length", None) is not None
            values = [v for fn in sorted(validators) for v in HOSTILE.get(fn, [])]
            if bounded and TEXT not in values:
                values.append(TEXT)
            for value in values:
                yield pytest.param(cls, name, [value] if is_list else value, id=f"{cls.__name__}.{name}={value[:20]!r}")


CASES = list(_cases())


def test_every_kind_of_hostile_param_is_covered():
    kinds = {(c.values[0].__name__, c.values[1]) for c in CASES}
    assert len(CASES) >= 60, len(CASES)
    for must in [
        ("EtlRequest", "mongo_db"),
        ("EtlRequest", "mapping"),
        ("PromotionRequest", "target_db"),
        ("CatalogRequest", "target_bucket"),
        ("SmokeRequest", "bucket"),
    ]:
        assert must in kinds, must


@pytest.mark.parametrize("cls,name,value", CASES)
def test_hostile_values_are_refused_naming_the_param(cls, name, value):
    with pytest.raises(RequestError) as err:
        cls.of({name: value})
    msg = str(err.value)
    assert f"param {name}" in msg
    assert len(msg) < 1000 and "x" * 200 not in msg  # never the whole value back
    assert "\0" not in msg
