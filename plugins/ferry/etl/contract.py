"""Consumer contracts: one model of each collection's document shape, rendered as every artifact consumers use.

``shapes(effective_mapping, snapshot)`` builds the model (fields in document order, embedded and referenced
parts, nullability, the BSON types of each field) from the same inputs the load uses. From it:

- ``json_schema``: JSON Schema 2020-12 of a collection's documents as **relaxed Extended JSON v2** (what
  ``mongoexport``, ``EJSON.stringify`` and ``bson.json_util.dumps(..., json_options=RELAXED_JSON_OPTIONS)``
  write): Decimal128 ``{"$numberDecimal": "1.50"}``, dates ``{"$date": "2024-01-15T00:00:00Z"}`` (or
  ``{"$date": {"$numberLong": "-1"}}`` outside 1970-9999), ObjectId ``{"$oid": "..."}``, binary
  ``{"$binary": {"base64", "subType"}}``, int32/int64 as JSON numbers, doubles as numbers or
  ``{"$numberDouble": "NaN" | "Infinity" | "-Infinity"}``;
- ``mongo_validator``: the MongoDB ``$jsonSchema`` validator (``ferry.etl.jsonschema``, unchanged);
- ``openapi``: an OpenAPI 3.1 document with ``components.schemas`` per collection and embedded type;
- ``typescript``: TypeScript declarations (``.d.ts``); ``zod``: Zod 4 schemas (``.ts``) with inferred types.

``impact(old, new)`` lists what changed between two models, field by field, and whether each change is
breaking for a consumer (a removed field, a changed or narrowed type, a field that became nullable or
optional, a new required non-null field) or additive (a new nullable or optional field, a new collection).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ferry.etl.jsonschema import bson_type, collection_schema
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Field:
    """One field of a document: ``kinds`` are BSON types (``None``: any JSON value, e.g. from jsonb)."""

    name: str
    kinds: tuple[str, ...] | None
    nullable: bool = False
    required: bool = True
    description: str = ""
    shape: Shape | None = None  # an embedded document (embed_one), or each element's (embed_many)
    many: bool = False  # an array of ``shape``
    items: tuple[str, ...] | None = None  # element kinds of a scalar array column
    ref: str | None = None  # the collection whose _id this field holds


@dataclass(frozen=True)
class Shape:
    name: str  # the type name consumers see: the collection in PascalCase, + the embed's name
    fields: tuple[Field, ...] = field(default_factory=tuple)

    def walk(self):
        """This shape and every embedded one, parents first."""
        yield self
        for f in self.fields:
            if f.shape is not None:
                yield from f.shape.walk()


def type_name(*parts: str) -> str:
    words = [w for p in parts for w in re.split(r"[^0-9A-Za-z]+|(?<=[a-z0-9])(?=[A-Z])", p) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Document"
    return name if name[0].isalpha() else "T" + name


# ----------------------------------------------------------------------------------------- the model


def _column_field(name: str, col: dict, ftype: str, numeric: str, where: str) -> Field:
    kinds = bson_type(col["type"], ftype, numeric)
    items = None
    if kinds == ["array"]:
        items = tuple(bson_type(col["type"].removesuffix("[]").split("[")[0], "auto", numeric) or ()) or None
    desc = f"{where} ({col['type']}{'' if col['nullable'] else ', not null'})"
    return Field(name, None if kinds is None else tuple(kinds), col["nullable"], True, desc, items=items)


def _part_fields(part: dict, table: dict, numeric: str) -> list[Field]:
    return [
        _column_field(spec["name"], table["columns"][col], spec["type"], numeric, f"{part['table']}.{col}")
        for col, spec in part["fields"].items()
    ]


def _relation_field(rel: dict, coll: dict, tables: dict, numeric: str) -> Field:
    owner = type_name(coll["name"], rel["as"])
    if rel["kind"] == "reference":
        omit = rel.get("on_missing") == "omit"
        desc = f"reference to {rel['collection']}._id"
        columns = tables[coll["table"]]["columns"]
        if not isinstance(rel["column"], str):  # a composite key: {its key columns} as the referenced _id
            names = list(rel.get("ref_key") or rel["column"])
            parts = tuple(
                Field(n, tuple(bson_type(columns[c]["type"], "auto", numeric) or ["string"]), False, True, c)
                for n, c in zip(names, rel["column"], strict=True)
            )
            return Field(rel["as"], ("object",), True, not omit, desc, shape=Shape(owner, parts), ref=rel["collection"])
        kinds = tuple(bson_type(columns[rel["column"]]["type"], "auto", numeric) or ["string"])
        return Field(rel["as"], kinds, True, not omit, desc, ref=rel["collection"])
    sub = Shape(owner, tuple(_part_fields(rel, tables[rel["table"]], numeric)))
    if rel["kind"] == "embed_many":
        return Field(rel["as"], ("array",), False, True, f"{rel['table']} rows, one per child", shape=sub, many=True)
    omit = rel.get("on_missing") == "omit"
    return Field(rel["as"], ("object",), True, not omit, f"the {rel['table']} row", shape=sub)


def _id_field(coll: dict, table: dict, numeric: str) -> Field:
    """``_id``: the key column's value, or for a composite key a sub-document of its columns in key order."""
    from ferry.etl import keys

    def kinds(col: str) -> tuple[str, ...]:
        return tuple(bson_type(table["columns"][col]["type"], "auto", numeric) or ["string"])

    cols = keys.columns(coll)
    if len(cols) == 1:
        return Field("_id", kinds(cols[0]), False, True, f"{coll['table']}.{cols[0]} (primary key)")
    parts = tuple(
        Field(c, kinds(c), False, True, f"{coll['table']}.{c} (key column {i + 1})") for i, c in enumerate(cols)
    )
    desc = f"{coll['table']} {keys.label(cols)} (composite key, in key order)"
    return Field("_id", ("object",), False, True, desc, shape=Shape(type_name(coll["name"], "id"), parts))


def collection_shape(coll: dict, snapshot: dict, numeric: str) -> Shape:
    """The document shape of one collection of the effective mapping."""
    tables = snapshot["tables"]
    table = tables[coll["table"]]
    fields = [_id_field(coll, table, numeric)]
    fields += _part_fields(coll, table, numeric)
    fields += [_relation_field(rel, coll, tables, numeric) for rel in coll["relations"]]
    fields += [
        Field(HASH_FIELD, ("string",), False, False, "Ferry's content hash (incremental loads)"),
        Field(DELETED_FIELD, ("bool",), False, False, "set when the source row was deleted (on_source_delete: flag)"),
    ]
    return Shape(type_name(coll["name"]), tuple(fields))


def shapes(eff: dict, snapshot: dict) -> dict[str, Shape]:
    """Every collection's shape, by collection name, in the mapping's order."""
    numeric = eff["defaults"]["numeric"]
    return {c["name"]: collection_shape(c, snapshot, numeric) for c in eff["collections"]}


# ----------------------------------------------------------------------------- JSON Schema / OpenAPI

#: Relaxed Extended JSON v2 of the BSON types JSON has no type for.
EJSON_DEFS: dict[str, dict] = {
    "Decimal128": {
        "type": "object",
        "properties": {"$numberDecimal": {"type": "string"}},
        "required": ["$numberDecimal"],
        "additionalProperties": False,
    },
    "DateTime": {
        "type": "object",
        "properties": {
            "$date": {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {
                        "type": "object",
                        "properties": {"$numberLong": {"type": "string"}},
                        "required": ["$numberLong"],
                        "additionalProperties": False,
                    },
                ]
            }
        },
        "required": ["$date"],
        "additionalProperties": False,
    },
    "ObjectId": {
        "type": "object",
        "properties": {"$oid": {"type": "string", "pattern": "^[0-9a-f]{24}$"}},
        "required": ["$oid"],
        "additionalProperties": False,
    },
    "Binary": {
        "type": "object",
        "properties": {
            "$binary": {
                "type": "object",
                "properties": {"base64": {"type": "string"}, "subType": {"type": "string"}},
                "required": ["base64", "subType"],
                "additionalProperties": False,
            }
        },
        "required": ["$binary"],
        "additionalProperties": False,
    },
    "NonFiniteDouble": {
        "type": "object",
        "properties": {"$numberDouble": {"enum": ["NaN", "Infinity", "-Infinity"]}},
        "required": ["$numberDouble"],
        "additionalProperties": False,
    },
}
_REF_KINDS = {"decimal": "Decimal128", "date": "DateTime", "objectId": "ObjectId", "binData": "Binary"}


def _kind_schema(kinds: tuple[str, ...], ref: str) -> list[dict]:
    out: list[dict] = []
    if "double" in kinds:
        out += [{"type": "number"}, {"$ref": ref + "NonFiniteDouble"}]
    elif {"int", "long"} & set(kinds):
        out.append({"type": "integer"})
    for k in kinds:
        if k in _REF_KINDS:
            out.append({"$ref": ref + _REF_KINDS[k]})
        elif k in ("string", "bool"):
            out.append({"type": "string" if k == "string" else "boolean"})
    return out


def _field_schema(f: Field, ref: str) -> dict:
    if f.kinds is None:
        return {"description": f.description}  # any JSON value (json/jsonb columns)
    if f.shape is not None:
        one: list[dict] = [{"$ref": ref + f.shape.name}]
        if f.many:
            one = [{"type": "array", "items": one[0]}]
    elif f.kinds == ("array",):
        item = _kind_schema(f.items, ref) if f.items else []
        items = item[0] if len(item) == 1 else ({"anyOf": item} if item else {})
        one = [{"type": "array", "items": {"anyOf": [items, {"type": "null"}]} if items else {}}]
    else:
        one = _kind_schema(f.kinds, ref)
    if f.nullable:
        one.append({"type": "null"})
    schema = one[0] if len(one) == 1 else {"anyOf": one}
    return {**schema, "description": f.description}


def _object_schema(shape: Shape, ref: str) -> dict:
    return {
        "type": "object",
        "properties": {f.name: _field_schema(f, ref) for f in shape.fields},
        "required": [f.name for f in shape.fields if f.required],
    }


def _definitions(roots: list[Shape], ref: str) -> dict[str, dict]:
    defs = {s.name: _object_schema(s, ref) for root in roots for s in root.walk()}
    return {**defs, **EJSON_DEFS}


def json_schema(name: str, shape: Shape) -> dict:
    """JSON Schema 2020-12 of collection ``name``'s documents (relaxed Extended JSON)."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{name}.schema.json",
        "title": f"{name} document",
        "$ref": f"#/$defs/{shape.name}",
        "$defs": _definitions([shape], "#/$defs/"),
    }


def openapi(all_shapes: dict[str, Shape], title: str, version: str) -> dict:
    """OpenAPI 3.1: ``components.schemas`` per collection and embedded type (plus the Extended JSON types)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "Documents as relaxed Extended JSON v2."},
        "paths": {},
        "components": {"schemas": _definitions(list(all_shapes.values()), "#/components/schemas/")},
    }


# ------------------------------------------------------------------------------------ TypeScript / Zod

_TS_EJSON = """export type Decimal128 = { $numberDecimal: string };
export type DateTime = { $date: string | { $numberLong: string } };
export type ObjectId = { $oid: string };
export type Binary = { $binary: { base64: string; subType: string } };
export type NonFiniteDouble = { $numberDouble: "NaN" | "Infinity" | "-Infinity" };
"""
_TS_KINDS = {
    "string": "string",
    "bool": "boolean",
    "decimal": "Decimal128",
    "date": "DateTime",
    "objectId": "ObjectId",
    "binData": "Binary",
}
_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _key(name: str) -> str:
    return name if _IDENT.match(name) else json.dumps(name)


def _ts_kinds(kinds: tuple[str, ...]) -> list[str]:
    out = []
    if "double" in kinds:
        out += ["number", "NonFiniteDouble"]
    elif {"int", "long"} & set(kinds):
        out.append("number")
    out += [_TS_KINDS[k] for k in kinds if k in _TS_KINDS]
    return list(dict.fromkeys(out))


def _ts_type(f: Field) -> str:
    if f.kinds is None:
        return "unknown"
    if f.shape is not None:
        parts = [f"{f.shape.name}[]" if f.many else f.shape.name]
    elif f.kinds == ("array",):
        inner = _ts_kinds(f.items) if f.items else ["unknown"]
        parts = [f"Array<{' | '.join([*inner, 'null'])}>"]
    else:
        parts = _ts_kinds(f.kinds)
    return " | ".join(parts + (["null"] if f.nullable else []))


def typescript(all_shapes: dict[str, Shape], header: str) -> str:
    """TypeScript declarations: one interface per collection and embedded type."""
    out = [f"// {header}", "// Documents as relaxed Extended JSON v2 (generated by Ferry: do not edit).", _TS_EJSON]
    for root in all_shapes.values():
        for shape in root.walk():
            out.append(f"export interface {shape.name} {{")
            for f in shape.fields:
                out.append(f"  /** {f.description} */")
                out.append(f"  {_key(f.name)}{'' if f.required else '?'}: {_ts_type(f)};")
            out.append("}\n")
    return "\n".join(out)


_ZOD_EJSON = """export const Decimal128 = z.object({ $numberDecimal: z.string() });
export const DateTime = z.object({ $date: z.union([z.string(), z.object({ $numberLong: z.string() })]) });
export const ObjectId = z.object({ $oid: z.string().regex(/^[0-9a-f]{24}$/) });
export const Binary = z.object({ $binary: z.object({ base64: z.string(), subType: z.string() }) });
export const NonFiniteDouble = z.object({ $numberDouble: z.enum(["NaN", "Infinity", "-Infinity"]) });
"""
_ZOD_KINDS = {
    "string": "z.string()",
    "bool": "z.boolean()",
    "decimal": "Decimal128",
    "date": "DateTime",
    "objectId": "ObjectId",
    "binData": "Binary",
}


def _zod_kinds(kinds: tuple[str, ...]) -> list[str]:
    out = []
    if "double" in kinds:
        out += ["z.number()", "NonFiniteDouble"]
    elif {"int", "long"} & set(kinds):
        out.append("z.number().int()")
    out += [_ZOD_KINDS[k] for k in kinds if k in _ZOD_KINDS]
    return list(dict.fromkeys(out))


def _zod_union(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"z.union([{', '.join(parts)}])"


def _zod_type(f: Field) -> str:
    if f.kinds is None:
        return "z.unknown()"
    if f.shape is not None:
        expr = f"z.array({f.shape.name})" if f.many else f.shape.name
    elif f.kinds == ("array",):
        inner = _zod_kinds(f.items) if f.items else ["z.unknown()"]
        expr = f"z.array({_zod_union(inner)}.nullable())"
    else:
        expr = _zod_union(_zod_kinds(f.kinds))
    expr += ".nullable()" if f.nullable else ""
    return expr + ("" if f.required else ".optional()")


def zod(all_shapes: dict[str, Shape], header: str) -> str:
    """Zod 4 schemas (children before parents, so every name is defined before use) and inferred types."""
    out = [f"// {header}", "// Documents as relaxed Extended JSON v2 (generated by Ferry: do not edit).", ""]
    out += ['import { z } from "zod";', "", _ZOD_EJSON]
    for root in all_shapes.values():
        for shape in reversed(list(root.walk())):
            body = ",\n".join(f"  {_key(f.name)}: {_zod_type(f)}" for f in shape.fields)
            out.append(f"export const {shape.name} = z.object({{\n{body},\n}});")
            out.append(f"export type {shape.name} = z.infer<typeof {shape.name}>;\n")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ artifacts


def render(eff: dict, snapshot: dict, title: str, version: str) -> dict[str, str]:
    """Every artifact of one contract version, by file name (UTF-8 text)."""
    model = shapes(eff, snapshot)
    numeric = eff["defaults"]["numeric"]
    header = f"{title}, contract {version}"
    files = {
        "openapi.json": _dump(openapi(model, title, version)),
        "types.d.ts": typescript(model, header),
        "zod.ts": zod(model, header),
    }
    for coll in eff["collections"]:
        name = coll["name"]
        files[f"jsonschema/{name}.schema.json"] = _dump(json_schema(name, model[name]))
        files[f"mongo/{name}.validator.json"] = _dump({"$jsonSchema": collection_schema(coll, snapshot, numeric)})
    return files


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


# ------------------------------------------------------------------------------------------- impact


@dataclass(frozen=True)
class Impact:
    """One change of the contract: where, what, and whether a consumer written against the old one breaks."""

    collection: str
    path: str
    change: str
    breaking: bool
    detail: str = ""

    def row(self) -> dict:
        return {
            "collection": self.collection,
            "field": self.path or "(collection)",
            "change": self.change,
            "consumers": "BREAKING" if self.breaking else "additive",
            "detail": self.detail,
        }


def _kinds_text(f: Field) -> str:
    base = "any" if f.kinds is None else "|".join(f.kinds)
    if f.shape is not None:
        base = f"{f.shape.name}[]" if f.many else f.shape.name
    return base + ("|null" if f.nullable else "") + ("" if f.required else " (optional)")


def _field_change(old: Field, new: Field) -> tuple[str, bool] | None:
    if (old.kinds, old.many, old.items) != (new.kinds, new.many, new.items):
        narrowed = old.kinds is None or (new.kinds is not None and set(new.kinds) < set(old.kinds))
        return ("type narrowed" if narrowed else "type changed"), True
    if new.nullable and not old.nullable:
        return "now nullable", True
    if not new.required and old.required:
        return "now optional", True
    if (old.nullable, old.required) != (new.nullable, new.required):
        return "now required" if new.required and not old.required else "no longer nullable", True
    return None


def _shape_impact(coll: str, old: Shape, new: Shape, prefix: str = "") -> list[Impact]:
    out: list[Impact] = []
    before = {f.name: f for f in old.fields}
    after = {f.name: f for f in new.fields}
    for name, f in before.items():
        if name not in after:
            out.append(Impact(coll, prefix + name, "field removed", True, _kinds_text(f)))
    for name, f in after.items():
        path = prefix + name
        if name not in before:
            breaking = f.required and not f.nullable
            out.append(Impact(coll, path, "field added", breaking, _kinds_text(f)))
            continue
        changed = _field_change(before[name], f)
        if changed:
            out.append(Impact(coll, path, changed[0], changed[1], f"{_kinds_text(before[name])} -> {_kinds_text(f)}"))
        elif f.shape is not None and (old_shape := before[name].shape) is not None:
            out += _shape_impact(coll, old_shape, f.shape, path + ("[]." if f.many else "."))
    return out


def impact(old: dict[str, Shape] | None, new: dict[str, Shape]) -> list[Impact]:
    """What changes for consumers from contract ``old`` (None: the first one) to ``new``."""
    if old is None:
        return [Impact(name, "", "collection added", False) for name in new]
    out = [Impact(name, "", "collection removed", True) for name in old if name not in new]
    for name, shape in new.items():
        out += _shape_impact(name, old[name], shape) if name in old else [Impact(name, "", "collection added", False)]
    return out


def to_json(all_shapes: dict[str, Shape]) -> dict:
    """The model as JSON (stored with each contract version, so the next one can be compared with it)."""
    from dataclasses import asdict

    return {name: asdict(s) for name, s in all_shapes.items()}


def from_json(doc: dict) -> dict[str, Shape]:
    def shape(d: dict) -> Shape:
        return Shape(d["name"], tuple(_field(f) for f in d["fields"]))

    def _field(d: dict) -> Field:
        d = dict(d)
        d["shape"] = shape(d["shape"]) if d.get("shape") else None
        for k in ("kinds", "items"):
            d[k] = tuple(d[k]) if d.get(k) is not None else None
        return Field(**d)

    return {name: shape(s) for name, s in doc.items()}
