"""The ETL mapping file (YAML): which tables become which collections, and how.

Errors name the file, the line and the field (``yaml.compose`` keeps every node's position):

    accounts.yaml:14: collections[0].relations[1].kind: 'embed_manyy' is not one of embed_many, embed_one, reference

Plain data in, plain data out (dicts), so the effective mapping can be stored and diffed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ferry.errors import FerryError
from ferry.etl import keys

KINDS = ("embed_many", "embed_one", "reference")
TYPES = ("auto", "decimal128", "double", "string", "int", "datetime", "bool")
NUMERIC = ("decimal128", "double")
ON_DELETE = ("delete", "flag")
NEW_COLUMNS = ("include", "ignore")
ON_MISSING = ("null", "omit", "quarantine", "fail")
NEW_TABLES = ("report", "create")
#: change capture of incremental runs: PostgreSQL's row version, or none (read every row, every run)
WATERMARK_XMIN, WATERMARK_NONE = "xmin", "none"

_TOP_KEYS = {"version", "source", "defaults", "collections"}
_DEFAULT_KEYS = {"numeric", "on_source_delete", "new_tables"}
_COLL_KEYS = {"name", "table", "id", "fields", "exclude", "new_columns", "relations", "watermark"}
_REL_KEYS = {
    "kind",
    "table",
    "as",
    "foreign_key",
    "local_key",
    "column",
    "collection",
    "fields",
    "exclude",
    "new_columns",
    "order_by",
    "watermark",
    "on_missing",
}


class MappingError(FerryError, ValueError):
    """A mapping problem, naming file, line and field."""


class _Doc:
    """The parsed YAML plus the line of every path (for error messages)."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise MappingError(f"{source}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
        if node is None:
            raise MappingError(f"{source}:1: empty mapping file")
        self.data = self._convert(node, ())

    def _convert(self, node, path: tuple):
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = k.value
                if key in out:
                    raise MappingError(f"{self.source}:{k.start_mark.line + 1}: {_fmt(path + (key,))}: duplicate key")
                self.lines[path + (key,)] = k.start_mark.line + 1
                out[key] = self._convert(v, path + (key,))
                self.lines[path + (key,)] = k.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, path + (i,)) for i, v in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))  # scalar with YAML's own typing

    def error(self, path: tuple, message: str) -> MappingError:
        line = None
        for n in range(len(path), -1, -1):  # the closest known ancestor
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        return MappingError(f"{self.source}:{line or 1}: {_fmt(path) or '(top)'}: {message}")


def _fmt(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def load(path: str | Path) -> dict:
    """Read and validate a mapping file; the result is plain data (see ``docs/etl.md``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping: {exc}") from exc
    return parse(text, str(path))


def parse(text: str, source: str = "<mapping>") -> dict:
    doc = _Doc(text, source)
    m = doc.data
    if not isinstance(m, dict):
        raise doc.error((), "the mapping must be a YAML mapping with a 'collections' list")
    _keys(doc, m, (), _TOP_KEYS)
    defaults = _defaults(doc, m.get("defaults") or {})
    src = m.get("source") or {}
    if not isinstance(src, dict):
        raise doc.error(("source",), "must be a mapping (e.g. {schema: public})")
    colls = m.get("collections")
    if not isinstance(colls, list) or not colls:
        raise doc.error(("collections",), "a non-empty list of collections is required")
    out = {
        "version": m.get("version", 1),
        "source": {"schema": src.get("schema", "public")},
        "defaults": defaults,
        "collections": [],
        "lines": {},
    }
    names: dict[str, int] = {}
    for i, c in enumerate(colls):
        coll = _collection(doc, c, ("collections", i), names)
        names[coll["name"]] = i
        out["lines"][coll["name"]] = doc.lines.get(("collections", i), 1)
        out["collections"].append(coll)
    for i, coll in enumerate(out["collections"]):
        for j, rel in enumerate(coll["relations"]):
            if rel["kind"] == "reference" and rel["collection"] not in names:
                raise doc.error(
                    ("collections", i, "relations", j, "collection"),
                    f"unknown collection {rel['collection']!r}; defined: {', '.join(names)}",
                )
    out["hash"] = mapping_hash(out)
    return out


def _defaults(doc: _Doc, defaults: dict) -> dict:
    _keys(doc, defaults, ("defaults",), _DEFAULT_KEYS)
    out = {
        "numeric": defaults.get("numeric", "decimal128"),
        "on_source_delete": defaults.get("on_source_delete", "delete"),
        "new_tables": defaults.get("new_tables", "report"),
    }
    for key, allowed in (("numeric", NUMERIC), ("on_source_delete", ON_DELETE), ("new_tables", NEW_TABLES)):
        _choice(doc, out[key], ("defaults", key), allowed)
    return out


def _collection(doc: _Doc, c: Any, p: tuple, names: dict[str, int]) -> dict:
    """One ``collections[i]`` entry, checked (``names``: the collections defined before it)."""
    if not isinstance(c, dict):
        raise doc.error(p, "each collection must be a mapping with name, table, id")
    _keys(doc, c, p, _COLL_KEYS)
    for req in ("name", "table"):
        if not isinstance(c.get(req), str) or not c.get(req):
            raise doc.error(p + (req,) if req in c else p, f"'{req}' is required (a string)")
    if "id" not in c:
        raise doc.error(p, "'id' is required (the key column, or a list of a composite key's columns)")
    _columns(doc, c["id"], p + ("id",), "the key column, or a list of a composite key's columns in key order")
    if c["name"] in names:
        raise doc.error(p + ("name",), f"collection {c['name']!r} is already defined (collections[{names[c['name']]}])")
    if c["name"].startswith(("system.", "_ferry")) or "$" in c["name"]:
        raise doc.error(p + ("name",), f"{c['name']!r} is not a usable collection name")
    coll = {
        "name": c["name"],
        "table": c["table"],
        "id": _one(c["id"]),
        **_fields(doc, c, p),
        "watermark": _watermark(doc, c, p),
        "relations": [],
    }
    seen_as: dict[str, int] = {}
    for j, r in enumerate(c.get("relations") or []):
        rel = _relation(doc, r, p + ("relations", j))
        if rel["as"] in seen_as:
            raise doc.error(
                p + ("relations", j, "as"),
                f"field {rel['as']!r} is already produced by relations[{seen_as[rel['as']]}]",
            )
        seen_as[rel["as"]] = j
        coll["relations"].append(rel)
    return coll


_RELATION_NEEDS = {
    "embed_many": ("table", "as", "foreign_key"),
    "embed_one": ("table", "as", "local_key"),
    "reference": ("column", "collection"),
}


def _relation(doc: _Doc, r: Any, rp: tuple) -> dict:
    """One ``relations[j]`` entry of a collection, checked."""
    if not isinstance(r, dict):
        raise doc.error(rp, "each relation must be a mapping with kind, table/column, as")
    _keys(doc, r, rp, _REL_KEYS)
    kind = str(r.get("kind"))
    _choice(doc, r.get("kind"), rp + ("kind",), KINDS)
    for req in _RELATION_NEEDS[kind]:
        if req in ("foreign_key", "column", "local_key") and isinstance(
            r.get(req), list
        ):  # the other side's key is composite
            _columns(doc, r[req], rp + (req,), "a column, or a list of columns matching the other side's key")
        elif not isinstance(r.get(req), str) or not r.get(req):
            raise doc.error(rp, f"{kind} needs '{req}' (a string)")
    rel: dict[str, Any] = {"kind": kind}
    if kind != "embed_many":
        rel["on_missing"] = "null" if r.get("on_missing") is None else r["on_missing"]  # YAML null too
        _choice(doc, rel["on_missing"], rp + ("on_missing",), ON_MISSING)
    elif "on_missing" in r:
        raise doc.error(rp + ("on_missing",), "only embed_one and reference relations have on_missing")
    if kind == "reference":
        col = _one(r["column"])
        if not isinstance(col, str) and not r.get("as"):
            raise doc.error(rp, "a reference of several columns needs 'as' (the field that holds them)")
        rel.update(column=col, collection=r["collection"], **{"as": r.get("as") or col})
        if "watermark" in r:
            raise doc.error(rp + ("watermark",), "a reference reads no table: no watermark")
    else:
        rel.update(table=r["table"], **{"as": r["as"]}, **_fields(doc, r, rp), watermark=_watermark(doc, r, rp))
        if kind == "embed_many":
            rel["foreign_key"] = _one(r["foreign_key"])
            rel["order_by"] = r.get("order_by")
        else:
            rel["local_key"] = _one(r["local_key"])
    rel["line"] = doc.lines.get(rp, 1)
    return rel


def _one(spec: str | list[str]) -> str | list[str]:
    """A list of one column as that column: one spelling for a one-column key, so the mapping hash and the
    stored state stay as they were."""
    return spec[0] if isinstance(spec, list) and len(spec) == 1 else spec


def _columns(doc: _Doc, value: Any, path: tuple, what: str) -> None:
    """A column name, or a non-empty list of distinct column names."""
    if isinstance(value, str) and value:
        return
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    if not ok or len(set(value)) != len(value):
        raise doc.error(path, f"must be {what}")


def _watermark(doc: _Doc, d: dict, path: tuple) -> str:
    """``watermark``: a column that grows on every insert and update (``updated_at``), ``xmin`` (default:
    PostgreSQL's row version, for tables without one) or ``none``."""
    wm = d.get("watermark", WATERMARK_XMIN)
    if not isinstance(wm, str) or not wm:
        raise doc.error(path + ("watermark",), "must be a column name, 'xmin' or 'none'")
    return wm


def _keys(doc: _Doc, d: Any, path: tuple, allowed: set) -> None:
    if d is None:
        return
    if not isinstance(d, dict):
        raise doc.error(path, "must be a mapping")
    for k in d:
        if k not in allowed:
            raise doc.error(path + (k,), f"unknown key {k!r}; allowed: {', '.join(sorted(allowed))}")


def _choice(doc: _Doc, value: Any, path: tuple, allowed: tuple) -> None:
    if value not in allowed:
        raise doc.error(path, f"{value!r} is not one of {', '.join(allowed)}")


def _fields(doc: _Doc, d: dict, path: tuple) -> dict:
    """``fields`` (column -> name | {name, type}), ``exclude``, ``new_columns`` normalised."""
    raw = d.get("fields")
    fields = None
    if raw is not None:
        if not isinstance(raw, dict):
            raise doc.error(path + ("fields",), "must map column -> field name or {name, type}")
        fields = {}
        for col, spec in raw.items():
            fp = path + ("fields", col)
            if spec is None:
                spec = {}
            if isinstance(spec, str):
                spec = {"name": spec}
            if not isinstance(spec, dict):
                raise doc.error(fp, "must be a field name or {name, type}")
            _keys(doc, spec, fp, {"name", "type"})
            name = spec.get("name", col)
            if not isinstance(name, str) or not name or name.startswith("$") or "." in name:
                raise doc.error(fp + ("name",), f"{name!r} is not a valid field name")
            typ = spec.get("type", "auto")
            _choice(doc, typ, fp + ("type",), TYPES)
            fields[str(col)] = {"name": name, "type": typ}
    exclude = d.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
        raise doc.error(path + ("exclude",), "must be a list of column names")
    # new source columns join parts that take every column; explicit `fields` lists opt in with new_columns: include
    new_columns = d.get("new_columns", "include" if raw is None else "ignore")
    _choice(doc, new_columns, path + ("new_columns",), NEW_COLUMNS)
    return {"fields": fields, "exclude": list(exclude), "new_columns": new_columns}


def mapping_hash(m: dict) -> str:
    body = {k: v for k, v in m.items() if k not in ("hash", "lines")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- against a schema snapshot


def _parts(m: dict):
    """(collection, part, table, path) for every table-reading part of the mapping."""
    for coll in m["collections"]:
        yield coll, coll, coll["table"], coll["name"]
        for rel in coll["relations"]:
            if rel["kind"] != "reference":
                yield coll, rel, rel["table"], f"{coll['name']}.{rel['as']}"


def resolve(m: dict, snapshot: dict) -> dict:
    """The effective mapping for ``snapshot``: explicit ``fields`` everywhere, checked against the tables.

    Omitted ``fields`` means every column (minus ``exclude``, the id column and the embedding key).
    Raises MappingError (with the mapping's line) when a table or column is missing.
    """
    eff = copy.deepcopy(m)
    tables = snapshot["tables"]
    by_name = {c["name"]: c for c in eff["collections"]}
    for coll, part, table, where in _parts(eff):
        line = part.get("line") or m["lines"].get(coll["name"], 1)
        if table not in tables:
            raise MappingError(f"mapping line {line}: {where}: table {table!r} not in the source schema")
        cols = tables[table]["columns"]
        skip = set(part["exclude"])
        if part.get("watermark", WATERMARK_XMIN) not in (WATERMARK_XMIN, WATERMARK_NONE):
            _need(cols, part["watermark"], line, where, "watermark")
        if part is coll:
            for c in keys.columns(coll):
                skip.add(c)
                _need(cols, c, line, where, "id")
            _unique_key(tables[table], table, keys.columns(coll), line, where)
            for rel in coll["relations"]:
                if rel["kind"] == "reference":
                    for c in ref_columns(rel):
                        _need(cols, c, rel["line"], f"{coll['name']}.{rel['as']}", "column")
                        skip.add(c)
                    _reference_target(by_name[rel["collection"]], rel, f"{coll['name']}.{rel['as']}")
                elif rel["kind"] == "embed_one":
                    for c in local_key(rel):
                        _need(cols, c, rel["line"], f"{coll['name']}.{rel['as']}", "local_key")
        elif part["kind"] == "embed_many":
            fk = keys.names(part["foreign_key"])
            for c in fk:
                _need(cols, c, line, where, "foreign_key")
                skip.add(c)
            if len(fk) != len(keys.columns(coll)):
                raise MappingError(
                    f"mapping line {line}: {where}: foreign_key {keys.label(part['foreign_key'])} has {len(fk)} "
                    f"column(s); the key of {coll['name']} {keys.label(coll['id'])} has {len(keys.columns(coll))}: "
                    "list the child's columns in the order of the parent's key"
                )
            if part.get("order_by"):
                _need(cols, part["order_by"], line, where, "order_by")
        elif part["kind"] == "embed_one":
            embed_key(tables[table], part, where)
        if part["fields"] is None:
            part["fields"] = {c: {"name": c, "type": "auto"} for c in cols if c not in skip}
        else:
            for c in part["fields"]:
                _need(cols, c, line, where, "fields")
    return eff


def _unique_key(info: dict, table: str, cols: list[str], line: int, where: str) -> None:
    """A document's ``_id`` is unique and never null: the primary key, or a unique constraint of NOT NULL
    columns, in key order (several columns: a composite ``_id``)."""
    if keys.is_key(info, cols):
        return
    pk = info.get("primary_key") or []
    has = f"its primary key is ({', '.join(pk)})" if pk else "it has no primary key"
    what = f"id column {cols[0]!r}" if len(cols) == 1 else f"id columns {keys.label(cols)}"
    raise MappingError(
        f"mapping line {line}: {where}: {what} is not a key of table {table!r} ({has}): the id must be the "
        "primary key or a unique constraint of NOT NULL columns (a list, in key order, for a composite key), or "
        "rows would collapse into one document. Add such a key (e.g. an identity column), or embed the table "
        "in a parent (docs/etl.md)"
    )


def local_key(rel: dict) -> list[str]:
    """An embed_one's local key columns (several, in the parent's key order, for a composite key)."""
    return keys.names(rel["local_key"])


def embed_key(info: dict, rel: dict, where: str) -> str | list[str]:
    """What an embed_one joins on: its table's primary key, as many columns as ``local_key`` names (else
    MappingError)."""
    pk = list(info.get("primary_key") or [])
    if not pk or len(pk) != len(local_key(rel)):
        has = f"its primary key is {keys.label(pk)}" if pk else "it has no primary key"
        raise MappingError(
            f"mapping line {rel.get('line', 1)}: {where}: local_key {keys.label(rel['local_key'])} cannot join "
            f"table {rel['table']!r} ({has}): name its primary key's columns in order, or reference it instead"
        )
    return pk[0] if len(pk) == 1 else pk


def ref_columns(rel: dict) -> list[str]:
    """A reference's columns: one, or a composite key's in the order of the referenced collection's key."""
    return keys.names(rel["column"])


def _reference_target(target: dict, rel: dict, where: str) -> None:
    """A reference names as many columns as the collection it points at has key columns."""
    if len(ref_columns(rel)) != len(keys.columns(target)):
        raise MappingError(
            f"mapping line {rel['line']}: {where}: column {keys.label(rel['column'])} has "
            f"{len(ref_columns(rel))} column(s); the key of {target['name']} {keys.label(target['id'])} has "
            f"{len(keys.columns(target))}: list the columns in the order of that key"
        )


def _need(cols: dict, col: str, line: int, where: str, what: str) -> None:
    if col not in cols:
        raise MappingError(
            f"mapping line {line}: {where}: {what} column {col!r} not in the source table (columns: {', '.join(cols)})"
        )


#: PostgreSQL type -> the field type that keeps it (``keep old type`` of a reviewed type change)
def field_type(pg_type: str) -> str:
    t = pg_type.lower()
    if t in ("smallint", "integer", "bigint"):
        return "int"
    if t.startswith("numeric") or t.startswith("decimal"):
        return "decimal128"
    if t in ("real", "double precision"):
        return "double"
    if t.startswith(("text", "character", "varchar", "uuid")):
        return "string"
    if t == "boolean":
        return "bool"
    if t.startswith(("timestamp", "date")):
        return "datetime"
    return "auto"


def evolve(
    eff: dict, changes: list[dict], apply_breaking: bool, reviewed: list[dict] | None = None
) -> tuple[dict, list[dict]]:
    """Apply accepted schema changes to an effective mapping; return it and what was changed.

    ``reviewed`` (per-change review, one decision per change in order) says per change: skip it, the
    default of a new required column, the cast strategy of a type change, rename or drop-and-add."""
    eff = copy.deepcopy(eff)
    applied: list[dict] = []
    for i, ch in enumerate(changes):
        review = reviewed[i] if reviewed else None
        if review is not None:
            if review["choice"] == "skip":
                applied.append({"mapping": ch["table"], "action": f"{ch['kind']} skipped by {review['by']}"})
                continue
            _reviewed(eff, ch, review, applied)
            if ch["kind"] in ("type_changed", "column_added_required") or review["choice"] == "drop and add":
                continue
        elif ch["class"] == "breaking" and not apply_breaking:
            continue
        for coll, part, table, where in _parts(eff):
            if table != ch["table"]:
                continue
            fields = part["fields"]
            col = ch.get("column")
            if ch["kind"] == "column_added" and part["new_columns"] == "include":
                if col not in fields and col not in part["exclude"] and col not in _key_columns(coll, part):
                    fields[col] = {"name": col, "type": "auto"}
                    applied.append({"mapping": where, "action": f"add field {col}"})
            elif ch["kind"] == "column_dropped" and col in fields:
                applied.append({"mapping": where, "action": f"remove field {fields.pop(col)['name']} ({col} dropped)"})
            elif ch["kind"] == "column_renamed_likely" and ch["old"] in fields:
                spec = fields[ch["old"]]
                # same place in the document: its content hash stays, an unchanged document is not rewritten
                part["fields"] = fields = {ch["new"] if c == ch["old"] else c: v for c, v in fields.items()}
                applied.append(
                    {"mapping": where, "action": f"read field {spec['name']} from {ch['new']} (was {ch['old']})"}
                )
    return eff, applied


def _reviewed(eff: dict, ch: dict, review: dict, applied: list[dict]) -> None:
    """What a reviewed choice does beyond ``evolve``'s default for the change."""
    for coll, part, table, where in _parts(eff):
        if table != ch["table"]:
            continue
        fields, col = part["fields"], ch.get("column")
        if ch["kind"] == "type_changed" and col in fields:
            spec = fields[col]
            if review["choice"] == "cast":
                what = f"field {spec['name']} follows the new type ({ch.get('new', '?')})"
            else:
                spec["type"] = field_type(ch.get("old", ""))
                spec["on_cast_error"] = "keep" if review["choice"] == "keep old type" else "quarantine"
                what = f"field {spec['name']} keeps type {spec['type']} ({review['choice']})"
            applied.append({"mapping": where, "action": f"{what}, by {review['by']}"})
        elif ch["kind"] == "column_added_required":
            if part["new_columns"] == "include" and col not in fields and col not in _key_columns(coll, part):
                fields[col] = {"name": col, "type": "auto"}
                if review.get("default") is not None:
                    fields[col]["default"] = review["default"]
                applied.append(
                    {
                        "mapping": where,
                        "action": f"add field {col} (default {review.get('default')!r}), by {review['by']}",
                    }
                )
        elif ch["kind"] == "column_renamed_likely" and review["choice"] == "drop and add" and ch["old"] in fields:
            old = fields.pop(ch["old"])
            fields[ch["new"]] = {"name": ch["new"], "type": "auto"}
            applied.append(
                {"mapping": where, "action": f"drop field {old['name']}, add field {ch['new']}, by {review['by']}"}
            )


def _key_columns(coll: dict, part: dict) -> set:
    """The columns a part reads as keys, not as fields: the id (root) or the foreign key (embed_many)."""
    if part is coll:
        return set(keys.columns(coll))
    return set(keys.names(part["foreign_key"])) if part.get("foreign_key") else set()


def check_columns(eff: dict, snapshot: dict) -> None:
    """Every column the effective mapping reads exists in ``snapshot`` (MappingError otherwise)."""
    tables = snapshot["tables"]
    for coll, part, table, where in _parts(eff):
        line = part.get("line") or eff["lines"].get(coll["name"], 1)
        if table not in tables:
            raise MappingError(f"mapping line {line}: {where}: table {table!r} was dropped from the source")
        for c in part["fields"]:
            _need(tables[table]["columns"], c, line, where, "fields")


#: changes to constraints only: the rows read, and so the documents, stay as they were
_CONSTRAINT_ONLY = {
    "foreign_key_added",
    "foreign_key_dropped",
    "nullable_to_not_null",
    "not_null_to_nullable",
    "unique_added",
    "unique_dropped",
    "index_added",
    "index_dropped",
    "default_changed",
}


def read_columns(eff: dict) -> dict[str, set]:
    """table -> every column the effective mapping reads (fields, ids, join keys, watermarks)."""
    out: dict[str, set] = {}
    for coll, part, table, _ in _parts(eff):
        cols = out.setdefault(table, set())
        cols.update(part["fields"] or ())
        cols.update(_key_columns(coll, part))
        if part is coll:
            for rel in coll["relations"]:
                if rel["kind"] != "embed_many":
                    cols.update(ref_columns(rel) if rel["kind"] == "reference" else local_key(rel))
        elif part["kind"] == "embed_many" and part.get("order_by"):
            cols.add(part["order_by"])
        if part.get("watermark") not in (None, WATERMARK_XMIN, WATERMARK_NONE):
            cols.add(part["watermark"])
    return out


def affects_documents(eff: dict, change: dict) -> bool:
    """Whether applying ``change`` can change a document the effective mapping ``eff`` builds (a new foreign
    key on a column already mapped cannot; a dropped column nothing reads cannot)."""
    if change["kind"] in _CONSTRAINT_ONLY or change["kind"] == "table_added":
        return False
    read = read_columns(eff)
    table = change["table"]
    if table not in read:
        return False
    if change["kind"] in ("table_dropped", "primary_key_changed"):
        return True
    if change["kind"] == "column_added_required":
        return any(
            t == table and p["new_columns"] == "include" for _, p, t, _ in _parts(eff)
        )  # it would join those parts' documents
    if change["kind"] == "column_renamed_likely":
        return change.get("old") in read[table]
    return change.get("column") in read[table]


def default_collection(table: str, info: dict, existing: set) -> tuple[dict | None, str]:
    """A collection for a new table (``new_tables: create``): every column, its key (``keys.table_key``) as
    ``_id`` (a sub-document when the key is composite)."""
    pk = keys.table_key(info)
    if not pk:
        return None, f"table {table!r} has no primary key nor a unique NOT NULL key: reported, not created"
    if table in existing or table.startswith(("system.", "_ferry")) or "$" in table:
        return None, f"a collection named {table!r} exists already (or the name is not usable): not created"
    fields = {c: {"name": c, "type": "auto"} for c in info["columns"] if c not in pk}
    coll = {
        "name": table,
        "table": table,
        "id": pk[0] if len(pk) == 1 else pk,
        "fields": fields,
        "exclude": [],
        "new_columns": "include",
        "watermark": WATERMARK_XMIN,
        "relations": [],
    }
    return coll, f"created collection {table} ({len(fields)} fields, _id = {keys.label(pk[0] if len(pk) == 1 else pk)})"
