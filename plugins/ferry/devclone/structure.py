"""A MongoDB database's structure (collections, options, views, indexes) as plain data, and diffs.

``read_structure(db)`` runs ``listCollections`` and ``listIndexes`` and returns::

    {"database": "alphasync_db",
     "collections": {
        "emails": {"type": "collection", "options": {...}, "indexes": {"idx_emails_message_id": {...}}},
        "recent": {"type": "view", "options": {"viewOn": "emails", "pipeline": [...]}, "indexes": {}}}}

Index specs are normalised the way mongorestore prepares them (``mongodb/mongo-tools``
``mongorestore/metadata.go``): ``v`` and ``ns`` dropped, options outside an allow-list dropped,
boolean options as booleans (``sparse: 1`` → ``true``, ``unique: false`` → absent), numeric key
directions as ints (``1.0`` → ``1``). Two equal indexes therefore compare equal whatever server
or driver produced them. Values stay BSON types (a validator may hold a regex or a date): use
``to_json`` for reports.
"""

from __future__ import annotations

from typing import Any

#: Index options kept (everything else, e.g. ``v``, ``ns``, ``background``, ``dropDups``, is dropped).
INDEX_OPTIONS = (
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "hidden",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "wildcardProjection",
    "storageEngine",
    "prepareUnique",
)
_BOOL_OPTIONS = ("unique", "sparse", "hidden", "prepareUnique")
#: Index-format versions the server picks itself: kept for creation, ignored when comparing.
_VERSION_OPTIONS = ("textIndexVersion", "2dsphereIndexVersion")

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
#: Options ``collMod`` can change in place (validation), with the value that means "unset";
#: others need a drop and re-create.
COLLMOD_DEFAULTS = {"validator": {}, "validationLevel": "strict", "validationAction": "error"}
COLLMOD_OPTIONS = tuple(COLLMOD_DEFAULTS)

GEO_KINDS = {"2dsphere", "2d", "geoHaystack"}
#: Creation order inside one ``createIndexes`` command.
INDEX_GROUPS = ("regular", "text", "geo", "ttl_partial")


def _num(v: Any) -> Any:
    """1.0 → 1, Int64(1) → 1; strings ("text", "2dsphere", "hashed") unchanged."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        f = float(v)
        return int(f) if f.is_integer() else f
    try:  # bson.Int64 / Decimal128
        from bson.decimal128 import Decimal128

        if isinstance(v, Decimal128):
            return _num(float(v.to_decimal()))
    except ImportError:  # pragma: no cover
        pass
    return v


def normalize_index(raw: dict) -> dict:
    """A ``listIndexes`` entry as mongorestore would send it: ``{"name", "key", <allowed options>}``."""
    key = {str(k): _num(v) for k, v in dict(raw["key"]).items()}
    spec: dict[str, Any] = {"name": raw["name"], "key": key}
    for opt in INDEX_OPTIONS:
        if opt not in raw:
            continue
        val = raw[opt]
        if opt in _BOOL_OPTIONS:
            if not val:
                continue  # unique: false == no unique option
            val = True
        elif opt in ("expireAfterSeconds", "bits", "min", "max", "textIndexVersion", "2dsphereIndexVersion"):
            val = _num(val)
        elif opt == "weights":
            val = {str(k): _num(w) for k, w in dict(val).items()}
        elif isinstance(val, dict):
            val = dict(val)
        spec[opt] = val
    return spec


def comparable_index(spec: dict) -> dict:
    """What must match for two indexes to be the same (server-chosen format versions ignored)."""
    return {k: v for k, v in spec.items() if k not in _VERSION_OPTIONS}


def index_group(spec: dict) -> str:
    """``regular`` / ``text`` / ``geo`` / ``ttl_partial``: the order indexes are created in."""
    kinds = set(spec["key"].values())
    if "text" in kinds or "_fts" in spec["key"]:
        return "text"
    if kinds & GEO_KINDS:
        return "geo"
    if "expireAfterSeconds" in spec or "partialFilterExpression" in spec:
        return "ttl_partial"
    return "regular"


def normalize_options(options: dict) -> dict:
    """Collection options kept for ``create``, with server-added details removed."""
    out: dict[str, Any] = {}
    for opt in COLLECTION_OPTIONS:
        if opt not in options:
            continue
        val = options[opt]
        if opt == "clusteredIndex" and isinstance(val, dict):
            val = {k: v for k, v in val.items() if k != "v"}
            val["key"] = {str(k): _num(d) for k, d in dict(val.get("key", {"_id": 1})).items()}
        elif opt == "timeseries" and isinstance(val, dict):
            val = dict(val)
            if "granularity" in val:  # listCollections adds the span the granularity implies
                val.pop("bucketMaxSpanSeconds", None)
                val.pop("bucketRoundingSeconds", None)
        elif opt in ("size", "max", "expireAfterSeconds"):
            val = _num(val)
        elif opt == "capped" and not val:
            continue
        if opt in COLLMOD_DEFAULTS and val == COLLMOD_DEFAULTS[opt]:
            continue  # listed by some servers, absent on others: the same collection
        out[opt] = val
    return out


def read_structure(db, *, with_indexes: bool = True) -> dict:
    """Collections (with options), views and normalised indexes of ``db`` (a pymongo Database)."""
    colls: dict[str, dict] = {}
    for info in db.list_collections():
        name = info["name"]
        if name.startswith("system."):
            continue
        kind = info.get("type", "collection")
        colls[name] = {"type": kind, "options": normalize_options(dict(info.get("options") or {})), "indexes": {}}
    if with_indexes:
        for name, c in colls.items():
            if c["type"] == "view":
                continue
            c["indexes"] = {i["name"]: normalize_index(i) for i in db[name].list_indexes()}
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
    """Rows ``{collection, item, change, source, target}``; ``change`` is missing / extra / different.

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
        for opt in sorted(set(s["options"]) | set(t["options"])):
            sv, tv = s["options"].get(opt), t["options"].get(opt)
            if sv != tv:
                change = "missing" if tv is None else "extra" if sv is None else "different"
                rows.append(_row(name, f"option {opt}", change, sv, tv))
        for iname in sorted(set(s["indexes"]) | set(t["indexes"])):
            si, ti = s["indexes"].get(iname), t["indexes"].get(iname)
            if ti is None:
                rows.append(_row(name, f"index {iname}", "missing", si, None))
            elif si is None:
                rows.append(_row(name, f"index {iname}", "extra", None, ti))
            elif comparable_index(si) != comparable_index(ti):
                rows.append(_row(name, f"index {iname}", "different", si, ti))
    return rows


def _row(coll, item, change, src, tgt) -> dict:
    return {"collection": coll, "item": item, "change": change, "source": src, "target": tgt}


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
