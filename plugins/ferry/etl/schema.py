"""PostgreSQL schema snapshots (information_schema + pg_catalog), diffs and their classification.

A snapshot is plain JSON-able data::

    {"schema": "public", "tables": {"accounts": {
        "columns": {"id": {"type": "bigint", "nullable": False, "default": "nextval(...)", "position": 1}, ...},
        "primary_key": ["id"],
        "foreign_keys": [{"columns": ["account_id"], "ref_table": "accounts", "ref_columns": ["id"]}],
        "unique": [["email"]],
        "indexes": {"accounts_pkey": "CREATE UNIQUE INDEX ..."}}}}

``diff(old, new)`` lists changes, each ``{"kind", "table", "column", "detail", "class"}`` with class
``safe`` or ``breaking`` (see ``CLASSES``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: change kind -> class
CLASSES = {
    "table_added": "safe",
    "column_added": "safe",  # nullable or with a default; a NOT NULL one without default is column_added_required
    "index_added": "safe",
    "index_dropped": "safe",
    "unique_added": "safe",
    "unique_dropped": "safe",
    "not_null_to_nullable": "safe",
    "default_changed": "safe",
    "table_dropped": "breaking",
    "column_dropped": "breaking",
    "column_added_required": "breaking",
    "column_renamed_likely": "breaking",
    "type_changed": "breaking",
    "nullable_to_not_null": "breaking",
    "primary_key_changed": "breaking",
    "foreign_key_added": "breaking",
    "foreign_key_dropped": "breaking",
}

_COLUMNS = """
SELECT c.table_name, c.column_name, c.ordinal_position, c.is_nullable, c.column_default,
       format_type(a.atttypid, a.atttypmod) AS type
FROM information_schema.columns c
JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema
JOIN pg_catalog.pg_class t ON t.relnamespace = n.oid AND t.relname = c.table_name
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attname = c.column_name
JOIN information_schema.tables it ON it.table_schema = c.table_schema AND it.table_name = c.table_name
WHERE c.table_schema = %s AND it.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""

_CONSTRAINTS = """
SELECT t.relname AS table_name, con.conname, con.contype,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS cols,
       rt.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)::text[] AS ref_cols
FROM pg_constraint con
JOIN pg_class t ON t.oid = con.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_class rt ON rt.oid = con.confrelid
WHERE n.nspname = %s AND con.contype IN ('p', 'f', 'u')
ORDER BY t.relname, con.conname
"""

_INDEXES = "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY tablename, indexname"


def snapshot(conn, schema: str = "public") -> dict:
    """Snapshot the tables of ``schema`` (psycopg 3 connection)."""
    tables: dict[str, dict] = {}
    for table, col, pos, nullable, default, typ in conn.execute(_COLUMNS, (schema,)).fetchall():
        t = tables.setdefault(
            table, {"columns": {}, "primary_key": [], "foreign_keys": [], "unique": [], "indexes": {}}
        )
        t["columns"][col] = {"type": typ, "nullable": nullable == "YES", "default": default, "position": pos}
    for table, _name, kind, cols, ref_table, ref_cols in conn.execute(_CONSTRAINTS, (schema,)).fetchall():
        if table not in tables:
            continue
        t = tables[table]
        if kind == "p":
            t["primary_key"] = list(cols)
        elif kind == "u":
            t["unique"].append(list(cols))
        else:
            t["foreign_keys"].append({"columns": list(cols), "ref_table": ref_table, "ref_columns": list(ref_cols)})
    for table, name, definition in conn.execute(_INDEXES, (schema,)).fetchall():
        if table in tables:
            tables[table]["indexes"][name] = definition
    return {"schema": schema, "tables": tables, "fingerprint": fingerprint(tables)}


def fingerprint(tables: dict) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()[:16]


def _change(kind: str, table: str, column: str | None = None, detail: str = "", **extra) -> dict:
    return {"kind": kind, "class": CLASSES[kind], "table": table, "column": column, "detail": detail, **extra}


def _fk_key(fk: dict) -> str:
    return f"({', '.join(fk['columns'])}) -> {fk['ref_table']}({', '.join(fk['ref_columns'])})"


def diff(old: dict, new: dict) -> list[dict]:
    """Changes from snapshot ``old`` to ``new``, classified safe / breaking (likely renames paired)."""
    changes: list[dict] = []
    ot, nt = old["tables"], new["tables"]
    for table in sorted(nt.keys() - ot.keys()):
        changes.append(_change("table_added", table, detail=f"{len(nt[table]['columns'])} columns"))
    for table in sorted(ot.keys() - nt.keys()):
        changes.append(_change("table_dropped", table))
    for table in sorted(ot.keys() & nt.keys()):
        changes += _diff_table(table, ot[table], nt[table])
    return changes


def _diff_table(table: str, o: dict, n: dict) -> list[dict]:
    out: list[dict] = []
    oc, nc = o["columns"], n["columns"]
    added = [c for c in nc if c not in oc]
    dropped = [c for c in oc if c not in nc]
    # likely renames: a dropped and an added column of the same type (paired in column order)
    for d in list(dropped):
        match = next((a for a in added if nc[a]["type"] == oc[d]["type"]), None)
        if match:
            added.remove(match)
            dropped.remove(d)
            out.append(
                _change("column_renamed_likely", table, match, f"{d} -> {match} ({oc[d]['type']})", old=d, new=match)
            )
    for c in added:
        col = nc[c]
        if not col["nullable"] and col["default"] is None:
            out.append(_change("column_added_required", table, c, f"{col['type']} NOT NULL, no default"))
        else:
            null = "NULL" if col["nullable"] else f"NOT NULL DEFAULT {col['default']}"
            out.append(_change("column_added", table, c, f"{col['type']} {null}"))
    for c in dropped:
        out.append(_change("column_dropped", table, c, oc[c]["type"]))
    for c in [c for c in oc if c in nc]:
        a, b = oc[c], nc[c]
        if a["type"] != b["type"]:
            out.append(_change("type_changed", table, c, f"{a['type']} -> {b['type']}", old=a["type"], new=b["type"]))
        if a["nullable"] and not b["nullable"]:
            out.append(_change("nullable_to_not_null", table, c, "NULL -> NOT NULL"))
        elif not a["nullable"] and b["nullable"]:
            out.append(_change("not_null_to_nullable", table, c, "NOT NULL -> NULL"))
        if a["default"] != b["default"]:
            out.append(_change("default_changed", table, c, f"{a['default']} -> {b['default']}"))
    if o["primary_key"] != n["primary_key"]:
        out.append(_change("primary_key_changed", table, None, f"{o['primary_key']} -> {n['primary_key']}"))
    ofk = {_fk_key(f) for f in o["foreign_keys"]}
    nfk = {_fk_key(f) for f in n["foreign_keys"]}
    for k in sorted(nfk - ofk):
        out.append(_change("foreign_key_added", table, None, k))
    for k in sorted(ofk - nfk):
        out.append(_change("foreign_key_dropped", table, None, k))
    ou = {tuple(u) for u in o["unique"]}
    nu = {tuple(u) for u in n["unique"]}
    for u in sorted(nu - ou):
        out.append(_change("unique_added", table, None, ", ".join(u)))
    for u in sorted(ou - nu):
        out.append(_change("unique_dropped", table, None, ", ".join(u)))
    # indexes backing constraints are reported through the constraint; compare the rest by definition
    oi, ni = _plain_indexes(o), _plain_indexes(n)
    for name in sorted(ni.keys() - oi.keys()):
        out.append(_change("index_added", table, None, ni[name]))
    for name in sorted(oi.keys() - ni.keys()):
        out.append(_change("index_dropped", table, None, oi[name]))
    return out


def _plain_indexes(t: dict) -> dict[str, str]:
    """Indexes keyed by their definition without the name (a renamed index is not a change)."""
    out = {}
    for name, definition in t["indexes"].items():
        if name.endswith("_pkey") or name.endswith("_key"):
            continue
        key = definition.replace(f"INDEX {name} ON", "INDEX ON")
        out[key] = definition
    return out


def summary(changes: list[dict]) -> dict[str, Any]:
    safe = sum(1 for c in changes if c["class"] == "safe")
    return {"changes": len(changes), "safe": safe, "breaking": len(changes) - safe}


def markdown(changes: list[dict]) -> str:
    from ferry.report import table

    rows = [
        {
            "class": c["class"],
            "change": c["kind"],
            "table": c["table"],
            "column": c["column"] or "",
            "detail": c["detail"],
        }
        for c in changes
    ]
    return table(rows, ["class", "change", "table", "column", "detail"])


# --------------------------------------------------------------------------- versioned store (MongoDB)

SNAPSHOTS = "_ferry_schema_snapshots"


def last_accepted(meta_db, source: str) -> dict | None:
    return meta_db[SNAPSHOTS].find_one({"source": source, "status": "accepted"}, sort=[("version", -1)])


def store(meta_db, source: str, snap: dict, changes: list[dict], base_version: int | None, run_id: str) -> dict:
    """Record ``snap`` as the next version (status ``pending``; ``accepted`` when it is the first)."""
    import datetime as dt

    last = meta_db[SNAPSHOTS].find_one({"source": source}, sort=[("version", -1)], projection={"version": 1})
    version = (last["version"] + 1) if last else 1
    doc = {
        "_id": f"{source}:{version}",
        "source": source,
        "version": version,
        "base_version": base_version,
        "status": "accepted" if base_version is None else "pending",
        "snapshot": snap,
        "changes": changes,
        "summary": summary(changes),
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC),
    }
    meta_db[SNAPSHOTS].insert_one(doc)
    return doc


def record_decision(meta_db, snapshot_id: str, status: str, decision: dict, effective_mapping: dict | None) -> None:
    meta_db[SNAPSHOTS].update_one(
        {"_id": snapshot_id},
        {"$set": {"status": status, "decision": decision, "effective_mapping": effective_mapping}},
    )
