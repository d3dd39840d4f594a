"""JSON Schema (MongoDB ``$jsonSchema``) per collection, from the effective mapping and the snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ferry.etl.transform import DELETED_FIELD, HASH_FIELD

_INTS = ("smallint", "integer", "bigint")


def bson_type(pg_type: str, field_type: str, numeric: str) -> list[str] | None:
    """bsonType(s) for a column (None = any, e.g. json)."""
    if field_type != "auto":
        return {
            "decimal128": ["decimal"],
            "double": ["double"],
            "string": ["string"],
            "int": ["int", "long"],
            "datetime": ["date"],
            "bool": ["bool"],
        }[field_type]
    t = pg_type.lower()
    if t.endswith("[]"):
        return ["array"]
    if t.startswith(_INTS):
        return ["int", "long"]
    if t.startswith(("numeric", "decimal", "money")):
        return ["double"] if numeric == "double" else ["decimal"]
    if t.startswith(("real", "double")):
        return ["double", "int", "long"]
    if t.startswith(("timestamp", "date")):
        return ["date"]
    if t == "boolean":
        return ["bool"]
    if t.startswith(("json", "jsonb")):
        return None
    if t == "bytea":
        return ["binData"]
    if t == "interval":
        return ["double"]
    return ["string"]


def _object(part: dict, table: dict, numeric: str, extra: dict | None = None, required_extra=()) -> dict:
    props, required = dict(extra or {}), list(required_extra)
    for col, spec in part["fields"].items():
        c = table["columns"][col]
        t = bson_type(c["type"], spec["type"], numeric)
        prop: dict[str, Any] = {} if t is None else {"bsonType": t + (["null"] if c["nullable"] else [])}
        prop["description"] = f"{part['table']}.{col} ({c['type']}{'' if c['nullable'] else ', not null'})"
        props[spec["name"]] = prop
        required.append(spec["name"])
    return {"bsonType": "object", "required": required, "properties": props}


def _id_schema(coll: dict, t: dict, numeric: str) -> dict:
    """``_id``: the key column's type, or an object of the composite key's columns (all required)."""
    from ferry.etl import keys

    cols = keys.columns(coll)
    kinds = {c: bson_type(t["columns"][c]["type"], "auto", numeric) or ["string"] for c in cols}
    if len(cols) == 1:
        return {"bsonType": kinds[cols[0]]}
    props = {c: {"bsonType": kinds[c]} for c in cols}
    return {"bsonType": "object", "required": cols, "properties": props, "additionalProperties": False}


def collection_schema(coll: dict, snapshot: dict, numeric: str) -> dict:
    tables = snapshot["tables"]
    t = tables[coll["table"]]
    extra = {
        "_id": _id_schema(coll, t, numeric),
        HASH_FIELD: {"bsonType": "string"},
        DELETED_FIELD: {"bsonType": "bool"},
    }
    schema = _object(coll, t, numeric, extra, ["_id"])
    for rel in coll["relations"]:
        if rel["kind"] == "reference" and not isinstance(rel["column"], str):  # a composite key's sub-document
            names = list(rel.get("ref_key") or rel["column"])
            props = {
                n: {"bsonType": bson_type(t["columns"][c]["type"], "auto", numeric) or ["string"]}
                for n, c in zip(names, rel["column"], strict=True)
            }
            schema["properties"][rel["as"]] = {
                "bsonType": ["object", "null"],
                "required": names,
                "properties": props,
                "description": f"reference to {rel['collection']}._id",
            }
        elif rel["kind"] == "reference":
            c = t["columns"][rel["column"]]
            schema["properties"][rel["as"]] = {
                "bsonType": (bson_type(c["type"], "auto", numeric) or ["string"]) + ["null"],
                "description": f"reference to {rel['collection']}._id",
            }
        elif rel["kind"] == "embed_many":
            schema["properties"][rel["as"]] = {
                "bsonType": "array",
                "items": _object(rel, tables[rel["table"]], numeric),
            }
        else:
            sub = _object(rel, tables[rel["table"]], numeric)
            sub["bsonType"] = ["object", "null"]
            schema["properties"][rel["as"]] = sub
        schema["required"].append(rel["as"])
    return schema


def all_schemas(eff: dict, snapshot: dict) -> dict[str, dict]:
    return {c["name"]: collection_schema(c, snapshot, eff["defaults"]["numeric"]) for c in eff["collections"]}


def write(schemas: dict[str, dict], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, s in schemas.items():
        p = folder / f"{name}.schema.json"
        p.write_text(json.dumps({"$jsonSchema": s}, indent=2, sort_keys=True))
        out.append(str(p))
    return out


def apply_validators(db, schemas: dict[str, dict], level: str = "moderate") -> list[str]:
    """Set each collection's ``$jsonSchema`` validator (``collMod``; created when missing)."""
    existing = set(db.list_collection_names())
    for name, s in schemas.items():
        if name in existing:
            db.command("collMod", name, validator={"$jsonSchema": s}, validationLevel=level)
        else:
            db.create_collection(name, validator={"$jsonSchema": s}, validationLevel=level)
    return sorted(schemas)
