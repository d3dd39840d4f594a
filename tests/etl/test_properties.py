"""Property tests on random schemas (issue 27): real PostgreSQL, a mapping drafted by ``ferry.etl.scaffold``, a
full load, then random updates, deletes and inserts and an incremental run.

Each example generates 2–5 tables (an integer, a text or a composite key; up to five columns of 27 types:
integers of each size, numeric, real/double with NaN and ±Infinity, text/varchar/char, uuid, bool, date,
time, timestamp, timestamptz, interval, json, jsonb, bytea, arrays with NULL elements and two dimensions,
inet, an enum, a domain, a range, money, with NULLs, unicode and extreme numbers; sometimes a generated
column; a foreign key to an earlier table (two columns when that one's key is composite), sometimes a
self-reference; sometimes a join table) with random
rows, and asserts:
- every source row of a collection is in the target exactly once, each field equal to the source value after
  the documented conversion (docs/etl.md), computed here independently of ``ferry.etl.transform``;
- every embedded sub-document equals its parent row, every embedded array equals the child rows in order;
- every reference resolves to a document of the referenced collection;
- after the changes, the incremental run leaves the target equal to a fresh full load (digest).

Profiles: ``ferry-ci`` (what ``make test`` runs: 12 examples, derandomized, so a failure replays as is) and
``ferry-props`` (``make test-props N=200``: N examples, random, the seed printed by Hypothesis on failure).
"""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import math
import os
import uuid

import bson
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg.types.range import Range

from ferry import hashing
from ferry.etl import keys, mapping, scaffold
from ferry.etl.schema import snapshot
from tests.etl.conftest import run_etl

pytestmark = pytest.mark.integration

settings.register_profile(
    "ferry-ci",
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ferry-props",
    max_examples=int(os.environ.get("FERRY_PROPS_N", "200")),
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = "ferry-props" if os.environ.get("FERRY_PROPS_N") else "ferry-ci"

_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)
#: column type -> values (None is added to each)
TYPES = {
    "bigint": st.integers(-(2**63), 2**63 - 1),
    "text": _TEXT,
    "boolean": st.booleans(),
    "double precision": st.floats(allow_nan=True, allow_infinity=True),
    "numeric(24, 4)": st.decimals(min_value=-(10**19), max_value=10**19, places=4, allow_nan=False),
    "timestamptz": st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)),
    "date": st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1)),
    "jsonb": _JSON.map(json.dumps),
    "integer[]": st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4),
    "uuid": st.uuids(),
    "smallint": st.integers(-(2**15), 2**15 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "real": st.floats(width=32, allow_nan=True, allow_infinity=True),
    "varchar(8)": st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8),
    "char(3)": st.text("abc é", max_size=3),
    "timestamp": st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)),
    "time": st.times(),
    "interval": st.timedeltas(dt.timedelta(days=-9999), dt.timedelta(days=9999)),
    "json": _JSON.map(json.dumps),
    "bytea": st.binary(max_size=8),
    "text[]": st.lists(st.none() | _TEXT, max_size=3),
    # multi-dimensional: rectangular, NULL elements
    "integer[][]": st.integers(1, 2).flatmap(
        lambda n: st.lists(st.lists(st.none() | st.integers(-9, 9), min_size=n, max_size=n), max_size=2)
    ),
    "inet": st.ip_addresses().map(str),
    "mood": st.sampled_from(["sad", "ok", "happy"]),  # an enum (TYPE_DDL)
    "posint": st.integers(0, 2**31 - 1),  # a domain over integer
    "int4range": st.tuples(st.integers(-99, 0), st.integers(1, 99)).map(lambda r: f"[{r[0]},{r[1]})"),
    "money": st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(str),
}
#: a composite-key table's first key column, a function of its id (so a child can name its parent's key)
PARTS = ("a", "b", "é")
#: the user-defined types among TYPES, created with every schema
TYPE_DDL = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy'); CREATE DOMAIN posint AS integer CHECK (VALUE >= 0)"


@st.composite
def schemas(draw) -> list[dict]:
    """Tables in creation order: ``{"name", "key", "cols": {name: type}, "parent", "self"}``, plus at most one
    join table ``{"join": (i, j)}`` between two keyed tables."""
    out = []
    for i in range(draw(st.integers(2, 5))):
        cols = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=5))
        key = draw(st.sampled_from(["bigint", "text", "composite"]))
        parents = list(range(i))  # a composite-key parent: a foreign key of two columns
        out.append(
            {
                "name": f"t{i}",
                "key": key,
                "cols": {
                    f"c{k}_{typ.split('(')[0].split('[')[0].replace(' ', '_')}": typ for k, typ in enumerate(cols)
                },
                "parent": draw(st.none() | st.sampled_from(parents)) if parents else None,
                "required": draw(st.booleans()),  # the foreign key NOT NULL (an embeddable child)
                "self": draw(st.booleans()) if i == 0 and key != "composite" else False,
                "generated": draw(st.booleans()),  # a generated column (GENERATED ALWAYS AS ... STORED)
            }
        )
    keyed = [j for j, t in enumerate(out) if t["key"] != "composite"]
    if len(keyed) >= 2 and draw(st.booleans()):
        out.append({"name": "t_join", "join": tuple(keyed[:2])})
    return out


def _ddl(tables: list[dict]) -> str:
    stmts = [TYPE_DDL]
    for t in tables:
        if "join" in t:
            a, b = (tables[x] for x in t["join"])
            stmts.append(
                f"CREATE TABLE t_join (a {a['key']} NOT NULL REFERENCES {a['name']}, "
                f"b {b['key']} NOT NULL REFERENCES {b['name']}, PRIMARY KEY (a, b))"
            )
            continue
        if t["key"] == "composite":  # (part, id): id stays unique on its own, so rows are found by it
            cols = ["part text NOT NULL", "id bigint NOT NULL"]
        else:
            cols = [f"id {t['key']} PRIMARY KEY"]
        cols += [f"{c} {typ}" for c, typ in t["cols"].items()]
        if t["generated"]:
            cols.append("g_len integer GENERATED ALWAYS AS (octet_length(id::text)) STORED")
        if t["parent"] is not None:
            p, null = tables[t["parent"]], "NOT NULL " if t["required"] else ""
            if p["key"] == "composite":
                cols += [f"parent_part text {null}", f"parent_id bigint {null}"]
                cols.append(f"FOREIGN KEY (parent_part, parent_id) REFERENCES {p['name']} (part, id)")
            else:
                cols.append(f"parent_id {p['key']} {null}REFERENCES {p['name']}")
        if t["self"]:
            cols.append(f"up_id {t['key']} REFERENCES {t['name']}")
        if t["key"] == "composite":
            cols.append("PRIMARY KEY (part, id)")
        stmts.append(f"CREATE TABLE {t['name']} ({', '.join(cols)})")
    return ";\n".join(stmts)


def _value(draw, typ: str):
    v = draw(st.none() | TYPES[typ])
    return str(v) if isinstance(v, uuid.UUID) else v


def _insert(conn, draw, tables: list[dict], t: dict, n: int, keys: dict[str, list]) -> None:
    """``n`` new random rows of ``t`` (foreign keys from the existing keys, or NULL)."""
    for _ in range(n):
        if "join" in t:
            a, b = (keys[tables[x]["name"]] for x in t["join"])
            if a and b:
                conn.execute(
                    "INSERT INTO t_join VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (draw(st.sampled_from(a)), draw(st.sampled_from(b))),
                )
            continue
        key = len(keys[t["name"]]) + 1000 * draw(st.integers(0, 3))
        key = f"k-{key}-é" if t["key"] == "text" else key
        if key in keys[t["name"]]:
            continue
        row = {"id": key} | {c: _value(draw, typ) for c, typ in t["cols"].items()}
        if t["key"] == "composite":
            row["part"] = PARTS[key % len(PARTS)]
        if t["parent"] is not None:
            parents = keys[tables[t["parent"]]["name"]]
            if t["required"] and not parents:
                continue
            row["parent_id"] = draw(
                st.sampled_from(parents) if t["required"] else st.none() | st.sampled_from(parents or [None])
            )
            if tables[t["parent"]]["key"] == "composite":
                pid = row["parent_id"]
                row["parent_part"] = None if pid is None else PARTS[pid % len(PARTS)]
        if t["self"]:
            row["up_id"] = draw(st.none() | st.sampled_from(keys[t["name"]] or [None]))
        conn.execute(
            f"INSERT INTO {t['name']} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values())
        )
        keys[t["name"]].append(key)


def _change(conn, draw, tables: list[dict], keys: dict[str, list]) -> None:
    """Random updates (a value column), deletes (of rows nothing points at) and inserts."""
    for t in tables:
        if "join" in t:
            if draw(st.booleans()):
                conn.execute("DELETE FROM t_join WHERE ctid IN (SELECT ctid FROM t_join LIMIT 1)")
            _insert(conn, draw, tables, t, draw(st.integers(0, 2)), keys)
            continue
        for key in draw(st.lists(st.sampled_from(keys[t["name"]] or [None]), max_size=2, unique=True)):
            col, typ = draw(st.sampled_from(sorted(t["cols"].items())))
            conn.execute(f"UPDATE {t['name']} SET {col} = %s WHERE id = %s", (_value(draw, typ), key))
        for key in draw(st.lists(st.sampled_from(keys[t["name"]] or [None]), max_size=1)):
            if key is None:
                continue
            try:
                with conn.transaction():  # refused while a row points at it: then it stays
                    conn.execute(f"DELETE FROM {t['name']} WHERE id = %s", (key,))
                keys[t["name"]].remove(key)
            except psycopg.errors.ForeignKeyViolation:
                pass
        _insert(conn, draw, tables, t, draw(st.integers(0, 2)), keys)


# --------------------------------------------------------------------------- expected values (independent)


def _expect(v):
    """The documented conversion (docs/etl.md's type table), as the test reads it back through pymongo."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, decimal.Decimal):
        return bson.Decimal128(v)
    if isinstance(v, dt.datetime):  # timestamp (naive) is read as UTC
        v = v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
        return v.replace(microsecond=v.microsecond // 1000 * 1000)
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, Range):  # docs/etl.md: e.g. '[1, 5)'
        return f"{'[' if v.lower_inc else '('}{v.lower}, {v.upper}{']' if v.upper_inc else ')'}"
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(v)
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, list):
        return [_expect(x) for x in v]
    if isinstance(v, dict):
        return {k: _expect(x) for k, x in v.items()}
    return v


def _nan(v):
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, list):
        return [_nan(x) for x in v]
    if isinstance(v, dict):
        return {k: _nan(x) for k, x in v.items()}
    return v


def _rows(conn, table: str, order: str = "id") -> list[dict]:
    cur = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _project(row: dict, fields: dict) -> dict:
    return {spec["name"]: _expect(row[col]) for col, spec in fields.items()}


def _assert_loaded(conn, db, eff: dict) -> None:
    """Every source row once, equal after conversion; embeds equal their rows; references resolve."""
    ids = {c["name"]: {keys.stored(d["_id"]) for d in db[c["name"]].find({}, {"_id": 1})} for c in eff["collections"]}
    # every source table is a collection or embedded in one, and every child row is in exactly one array
    embeds = [(c["name"], r) for c in eff["collections"] for r in c["relations"] if r["kind"] == "embed_many"]
    tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {c["table"] for c in eff["collections"]} | {r["table"] for _, r in embeds}
    for coll, rel in embeds:
        held = sum(len(d.get(rel["as"]) or []) for d in db[coll].find({}, {rel["as"]: 1}))
        assert held == len(_rows(conn, rel["table"], rel["foreign_key"])), rel["table"]
    for coll in eff["collections"]:
        rows = _rows(conn, coll["table"])
        docs = {keys.stored(d["_id"]): _nan(d) for d in db[coll["name"]].find()}
        assert len(docs) == len(rows) == db[coll["name"]].count_documents({}), coll["name"]
        cols = keys.columns(coll)
        for row in rows:  # a composite key's _id: its columns in key order
            doc = docs[row[cols[0]] if len(cols) == 1 else keys.Key((c, row[c]) for c in cols)]
            want = _project(row, coll["fields"])
            assert {k: doc.get(k) for k in want} == want, (coll["name"], row)
            for rel in coll["relations"]:
                _assert_relation(conn, rel, row, doc, ids, coll["id"])


def _assert_relation(conn, rel: dict, row: dict, doc: dict, ids: dict, id_col: str) -> None:
    if rel["kind"] == "reference" and isinstance(rel["column"], list):  # the referenced _id, a sub-document
        values = [row[c] for c in rel["column"]]
        want = None if None in values else dict(zip(rel["ref_key"], values, strict=True))
        assert doc.get(rel["as"]) == want, rel
        assert want is None or keys.Key(want.items()) in ids[rel["collection"]], rel
    elif rel["kind"] == "reference":
        assert doc.get(rel["as"]) == row[rel["column"]]
        assert row[rel["column"]] is None or row[rel["column"]] in ids[rel["collection"]], rel
    elif rel["kind"] == "embed_one":
        parents = [r for r in _rows(conn, rel["table"]) if r[rel["pk"]] == row[rel["local_key"]]]
        assert doc.get(rel["as"]) == (_project(parents[0], rel["fields"]) if parents else None), rel
    else:
        order = rel.get("order_by") or rel["foreign_key"]  # ties in the tables' physical order (docs/etl.md)
        kids = [r for r in _rows(conn, rel["table"], f"{order}, ctid") if r[rel["foreign_key"]] == row[id_col]]
        assert doc.get(rel["as"], []) == [_project(k, rel["fields"]) for k in kids], rel


@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_random_schemas_load_as_drafted_and_incremental_equals_a_fresh_full_load(
    data, pg_conn, mongo_local, tmp_path_factory
):
    conn, draw = pg_conn, data.draw
    tables = draw(schemas(), label="schema")
    conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    conn.execute(_ddl(tables))
    keys: dict[str, list] = {t["name"]: [] for t in tables}
    for t in tables:
        _insert(conn, draw, tables, t, draw(st.integers(0, 6)), keys)
    conn.commit()
    tmp = tmp_path_factory.mktemp("props")
    path = tmp / "draft.yaml"
    path.write_text(scaffold.draft(conn))
    conn.commit()
    m = mapping.load(path)
    for c in m["collections"]:  # what the examples covered (pytest --hypothesis-show-statistics)
        for kind in sorted({r["kind"] for r in c["relations"]}):
            event(kind)
    if any(isinstance(c["id"], list) for c in m["collections"]):
        event("composite key")
    if any(isinstance(r.get("column"), list) for c in m["collections"] for r in c["relations"]):
        event("reference of a composite key")
    db = f"props_{uuid.uuid4().hex[:8]}"
    try:
        run_etl(conn, mongo_local, db, tmp, mapping=str(path), batch_size=3)
        from ferry.etl.acquire import add_join_keys

        eff = add_join_keys(mapping.resolve(m, snapshot(conn)), snapshot(conn))
        conn.commit()
        _assert_loaded(conn, mongo_local[db], eff)

        run_etl(conn, mongo_local, db, tmp, mapping=str(path), strategy="incremental", run_id="i1")
        _change(conn, draw, tables, keys)
        conn.commit()
        run_etl(conn, mongo_local, db, tmp, mapping=str(path), strategy="incremental", run_id="i2")
        run_etl(conn, mongo_local, f"{db}_clean", tmp, mapping=str(path), batch_size=1000)
        _assert_loaded(conn, mongo_local[db], eff)
        assert hashing.db_digest(mongo_local[db]) == hashing.db_digest(mongo_local[f"{db}_clean"])
    finally:
        for name in mongo_local.list_database_names():
            if name.startswith(db):
                mongo_local.drop_database(name)
