"""A MongoDB database's structure (collections, options, views, indexes) as plain data, and diffs.

``read_structure(db)`` runs ``listCollections`` and ``listIndexes`` and returns::

    {"database": "alphasync_db",
     "collections": {
        "emails": {"type": "collection", "options": {...}, "indexes": {"idx_emails_message_id": {...}}},
        "recent": {"type": "view", "options": {"viewOn": "emails", "pipeline": [...]}, "indexes": {}},
        "legacy": {"type": "collection", "options": {}, "indexes": {...},
                   "legacy_keys": {"a_1_b_true": ["b: true → 1"]}}}}

Index specs are what mongorestore sends (``mongodb/mongo-tools`` ``mongorestore/metadata.go``,
``ferry.mongo.index_spec``): every field of the ``listIndexes`` entry but ``v``, ``ns`` and
``background``, unknown options included, values with their BSON types (``1.0`` stays a double,
``Decimal128("-1")`` a decimal, ``Int64`` a 64-bit integer), documents in their order. Legacy key
values (``true``, ``0``, ``""``...) are converted as ``ConvertLegacyIndexKeyValue`` does
(``ferry.mongo.legacy_key``); each conversion is listed under the collection's ``legacy_keys``.

Comparisons (``same``, ``comparable_index``, ``diff``) are ordered: a compound key, a
``partialFilterExpression``, a collation or a validator with the same fields in another order is
different. They normalise only what has the same meaning on the server:

- numbers by value: ``1`` == ``1.0`` == ``Int64(1)`` == ``Decimal128("1")`` (never ``true``);
- boolean index options (``unique``, ``sparse``, ``hidden``, ``prepareUnique``): any false value
  equals absent, any true value equals ``true`` (``sparse: 1`` == ``sparse: true``);
- format versions the server picks (``textIndexVersion``, ``2dsphereIndexVersion``) are ignored;
- an index collation ``{locale: "simple"}`` equals none (``listIndexes`` leaves the simple one out);
- a text index's ``weights`` compare as a mapping (the server keeps them sorted by field);
- the order of an index's top-level options (``unique`` before or after ``sparse``);
- collection validation options at their defaults (``validator: {}``, ``validationLevel: strict``,
  ``validationAction: error``) equal absent.

Values stay BSON types (a validator may hold a regex or a date): use ``to_json`` for reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ferry.mongo import SERVER_INDEX_FIELDS, index_spec, legacy_key

#: Index options that are booleans on the server: false (``0``, ``false``) means unset.
BOOL_OPTIONS = ("unique", "sparse", "hidden", "prepareUnique")
#: Index-format versions the server picks itself: sent as the source has them, ignored when comparing.
VERSION_OPTIONS = ("textIndexVersion", "2dsphereIndexVersion")
#: Index options whose field order carries no meaning.
UNORDERED_OPTIONS = ("weights",)

#: Collection options kept from ``listCollections`` (``create`` accepts each of them).
COLLECTION_OPTIONS = (
    "capped",
    "size",
    "max",
    "validator",
    "validationLevel",
    "validationAction",
    "collation",
    "timeseries",
    "expireAfterSeconds",
    "clusteredIndex",
    "changeStreamPreAndPostImages",
    "storageEngine",
    "indexOptionDefaults",
    "viewOn",
    "pipeline",
)
#: Options ``collMod`` can change in place (validation, change-stream pre/post images), with the value that
#: means "unset"; others need a drop and re-create. (changeStreamPreAndPostImages: a clone whose create was cut
#: by a server crash was left without it, and the rerun refused to finish; found by tests/faults.)
COLLMOD_DEFAULTS: dict[str, Any] = {
    "validator": {},
    "validationLevel": "strict",
    "validationAction": "error",
    "changeStreamPreAndPostImages": {"enabled": False},
}
COLLMOD_OPTIONS = tuple(COLLMOD_DEFAULTS)

GEO_KINDS = {"2dsphere", "2d", "geoHaystack"}
#: Index types a MongoDB server no longer builds: type -> (the version that removed it, why and what instead).
REMOVED_INDEX_TYPES = {
    "geoHaystack": (
        (5, 0),
        "geoHaystack indexes were removed in MongoDB 5.0 (mongorestore refuses them too): not created; replace it "
        "with a 2d index (flat coordinates) or a 2dsphere index, queried with $geoWithin / $geoNear",
    ),
}
#: The collation an index gets so that it does not inherit its collection's default one.
SIMPLE_COLLATION = {"locale": "simple"}
#: Creation order inside one ``createIndexes`` command.
INDEX_GROUPS = ("regular", "text", "geo", "ttl_partial")


def canonical(value: Any, *, ordered: bool = True) -> Any:
    """``value`` as nested tuples that compare equal exactly when the server sees the same thing:
    documents as their ``(field, value)`` pairs in order (sorted when ``ordered`` is false), arrays
    in order, numbers by value whatever their BSON type, booleans apart from numbers."""
    from bson.decimal128 import Decimal128

    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float, Decimal128)):
        num = value.to_decimal() if isinstance(value, Decimal128) else Decimal(value)
        return ("number", "NaN" if num.is_nan() else num)
    if isinstance(value, Mapping):
        pairs = tuple((str(k), canonical(v, ordered=ordered)) for k, v in value.items())
        return ("document", pairs if ordered else tuple(sorted(pairs, key=lambda p: p[0])))
    if isinstance(value, (list, tuple)):
        return ("array", tuple(canonical(v, ordered=ordered) for v in value))
    return (type(value).__name__, value)


def same(a: Any, b: Any) -> bool:
    """Ordered equality with numbers compared by value (see ``canonical``)."""
    return canonical(a) == canonical(b)


def difference(a: Any, b: Any) -> str:
    """``"order"`` when ``a`` and ``b`` hold the same fields and values in another order, else ``"value"``."""
    return "order" if canonical(a, ordered=False) == canonical(b, ordered=False) else "value"


def read_index(raw: Mapping) -> tuple[dict, list[str]]:
    """A ``listIndexes`` entry as ``createIndexes`` gets it (see the module doc), and one line per
    legacy key value converted, e.g. ``"b: true → 1"``."""
    spec = index_spec(raw)
    spec["key"], changed = legacy_key(spec["key"])
    return spec, [f"{field}: {json_text(old)} → {json_text(new)}" for field, old, new in changed]


def read_indexes(raws) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """``{name: spec}`` of ``listIndexes`` entries (or a mongodump ``metadata.json``'s ``indexes``), and
    ``{name: conversion notes}`` for those whose key held legacy values."""
    indexes, converted = {}, {}
    for raw in raws:
        spec, notes = read_index(raw)
        indexes[spec["name"]] = spec
        if notes:
            converted[spec["name"]] = notes
    return indexes, converted


def normalize_index(raw: Mapping) -> dict:
    """``read_index`` without the conversion notes."""
    return read_index(raw)[0]


def unsupported_index(spec: Mapping, server_version: tuple[int, ...] | None) -> str | None:
    """Why the server (``None``: a current one) cannot build ``spec``, with the replacement; ``None`` if it can."""
    for kind in spec["key"].values():
        if isinstance(kind, str) and kind in REMOVED_INDEX_TYPES:
            removed, why = REMOVED_INDEX_TYPES[kind]
            if server_version is None or tuple(server_version[:2]) >= removed:
                return why
    return None


def spec_to_send(spec: dict, collection_options: Mapping) -> tuple[dict, str]:
    """The ``createIndexes`` spec for a source index, and a note when it differs from ``spec``: in a collection
    with a default collation, an index listed without one has the simple collation, and is sent with
    ``collation: {locale: "simple"}`` (as mongorestore does) so the server does not give it the collection's."""
    coll = collection_options.get("collation")
    if not coll or coll.get("locale") == "simple" or "collation" in spec or spec.get("name") == "_id_":
        return spec, ""
    note = (
        f"sent with collation {{locale: simple}}: without it the index would inherit the collection's "
        f"default collation ({coll.get('locale')}), as mongorestore does"
    )
    return {**spec, "collation": dict(SIMPLE_COLLATION)}, note


def comparable_index(spec: Mapping) -> tuple:
    """What must match for two indexes to be the same, as an ordered value (see the module doc)."""
    out = []
    for opt, val in spec.items():
        if opt in VERSION_OPTIONS or opt in SERVER_INDEX_FIELDS:
            continue
        if opt == "collation" and isinstance(val, Mapping) and dict(val) == SIMPLE_COLLATION:
            continue  # listed without a collation = the simple one
        if opt in BOOL_OPTIONS:
            if val:
                out.append((opt, ("bool", True)))
            continue
        out.append((opt, canonical(val, ordered=opt not in UNORDERED_OPTIONS)))
    return tuple(sorted(out, key=lambda p: p[0]))


def index_changes(source: Mapping, target: Mapping) -> str:
    """What differs between two same-named indexes, e.g. ``"key order"``, ``"partialFilterExpression"``."""
    a, b = dict(comparable_index(source)), dict(comparable_index(target))
    parts = []
    for opt in sorted(set(a) | set(b), key=lambda o: (o != "key", o)):
        if a.get(opt) == b.get(opt):
            continue
        both = opt in source and opt in target and opt not in BOOL_OPTIONS
        parts.append(f"{opt} order" if both and difference(source[opt], target[opt]) == "order" else opt)
    return ", ".join(parts)


def changed_options(source: Mapping, target: Mapping) -> set[str]:
    """Collection options whose values differ (ordered comparison, numbers by value)."""
    return {
        o for o in set(source) | set(target) if o not in source or o not in target or not same(source[o], target[o])
    }


def index_group(spec: dict) -> str:
    """``regular`` / ``text`` / ``geo`` / ``ttl_partial``: the order indexes are created in."""
    kinds = {v for v in spec["key"].values() if isinstance(v, str)}
    if "text" in kinds or "_fts" in spec["key"]:
        return "text"
    if kinds & GEO_KINDS:
        return "geo"
    if "expireAfterSeconds" in spec or "partialFilterExpression" in spec:
        return "ttl_partial"
    return "regular"


def normalize_options(options: Mapping) -> dict:
    """Collection options kept for ``create``, with server-added details removed (values as listed)."""
    out: dict[str, Any] = {}
    for opt in COLLECTION_OPTIONS:
        if opt not in options:
            continue
        val = options[opt]
        if opt == "clusteredIndex" and isinstance(val, Mapping):
            val = {k: v for k, v in val.items() if k != "v"}
        elif opt == "timeseries" and isinstance(val, Mapping):
            val = dict(val)
            if "granularity" in val:  # listCollections adds the span the granularity implies
                val.pop("bucketMaxSpanSeconds", None)
                val.pop("bucketRoundingSeconds", None)
        elif opt == "capped" and not val:
            continue
        if opt in COLLMOD_DEFAULTS and same(val, COLLMOD_DEFAULTS[opt]):
            continue  # listed by some servers, absent on others: the same collection
        out[opt] = val
    return out


def read_structure(db, *, with_indexes: bool = True) -> dict:
    """Collections (with options), views and indexes of ``db`` (a pymongo Database)."""
    colls: dict[str, dict] = {}
    for info in db.list_collections():
        name = info["name"]
        if name.startswith("system."):
            continue
        kind = info.get("type", "collection")
        colls[name] = {"type": kind, "options": normalize_options(info.get("options") or {}), "indexes": {}}
    if with_indexes:
        for name, c in colls.items():
            if c["type"] == "view":
                continue
            c["indexes"], converted = read_indexes(db[name].list_indexes())
            if converted:
                c["legacy_keys"] = converted
    return {"database": db.name, "collections": dict(sorted(colls.items()))}


def creation_order(collections: dict[str, dict]) -> list[str]:
    """Collection names: plain collections first, then views after the collection/view they read."""
    plain = [n for n, c in collections.items() if c["type"] != "view"]
    views = {n: c["options"].get("viewOn") for n, c in collections.items() if c["type"] == "view"}
    done, order = set(plain), list(plain)
    while views:
        ready = sorted(n for n, src in views.items() if src in done or src not in collections)
        if not ready:  # a cycle cannot exist on a real server; keep going rather than loop forever
            ready = sorted(views)
        for n in ready:
            order.append(n)
            done.add(n)
            views.pop(n)
    return order


def diff(source: dict, target: dict) -> list[dict]:
    """Rows ``{collection, item, change, how, source, target}``; ``change`` is missing / extra / different,
    ``how`` says what differs (``"order"`` when only the order does, ``"key order"`` for an index).

    ``missing`` = in source, not in target; ``extra`` = only in target. The ``_id_`` index is
    compared like any other (both sides always have it unless a collection is missing).
    """
    rows: list[dict] = []
    s_colls, t_colls = source["collections"], target["collections"]
    for name in sorted(set(s_colls) | set(t_colls)):
        s, t = s_colls.get(name), t_colls.get(name)
        if t is None:
            rows.append(_row(name, f"{s['type']}", "missing", s["options"] or "(no options)", None))
            continue
        if s is None:
            rows.append(_row(name, f"{t['type']}", "extra", None, t["options"] or "(no options)"))
            continue
        if s["type"] != t["type"]:
            rows.append(_row(name, "type", "different", s["type"], t["type"]))
        for opt in sorted(changed_options(s["options"], t["options"])):
            sv, tv = s["options"].get(opt), t["options"].get(opt)
            change = "missing" if opt not in t["options"] else "extra" if opt not in s["options"] else "different"
            how = difference(sv, tv) if change == "different" else ""
            rows.append(_row(name, f"option {opt}", change, sv, tv, how))
        for iname in sorted(set(s["indexes"]) | set(t["indexes"])):
            si, ti = s["indexes"].get(iname), t["indexes"].get(iname)
            if ti is None:
                rows.append(_row(name, f"index {iname}", "missing", si, None))
            elif si is None:
                rows.append(_row(name, f"index {iname}", "extra", None, ti))
            elif comparable_index(si) != comparable_index(ti):
                rows.append(_row(name, f"index {iname}", "different", si, ti, index_changes(si, ti)))
    return rows


def _row(coll, item, change, src, tgt, how: str = "") -> dict:
    return {"collection": coll, "item": item, "change": change, "how": how, "source": src, "target": tgt}


def to_json(value: Any) -> Any:
    """``value`` with BSON types turned into relaxed extended JSON (for XCom, reports, fixtures)."""
    import json

    from bson import json_util

    return json.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))


def from_json(value: Any) -> Any:
    """Inverse of ``to_json`` (extended JSON → BSON types), e.g. for recorded ``listIndexes`` fixtures."""
    import json

    from bson import json_util

    return json_util.loads(json.dumps(value))


def json_text(value: Any) -> str:
    """Compact JSON text of ``value`` in its own key order (a compound index's order matters)."""
    import json

    return json.dumps(to_json(value), separators=(", ", ": "))
