"""ferry.etl.scaffold: a mapping drafted from a real PostgreSQL schema, accepted and loaded as it is."""

from __future__ import annotations

import datetime as dt
import decimal

import bson
import pytest

from ferry.etl import mapping, scaffold
from tests.etl.conftest import run_etl

pytestmark = pytest.mark.integration

# every shape the draft decides on: a small stable parent (regions), a self-reference (referred_by), a join
# table (customer_tags), bounded leaf children (order_lines, shipments with a composite key), an unbounded
# leaf (visits, 8 per customer under a limit of 5), a foreign-key cycle (teams <-> people), a unique
# NOT NULL column instead of a primary key (devices), no key at all (events), a composite key with no parent
# (ledger), an indexed updated_at (customers), and a column of every ordinary type (kinds)
SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (id bigint PRIMARY KEY, region_id int REFERENCES regions, referred_by bigint REFERENCES customers,
    name text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX customers_updated_idx ON customers (updated_at);
CREATE TABLE tags (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE customer_tags (customer_id bigint REFERENCES customers, tag_id int REFERENCES tags,
    PRIMARY KEY (customer_id, tag_id));
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(10, 2));
CREATE TABLE order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders, sku text, qty int);
CREATE TABLE shipments (order_id bigint REFERENCES orders, seq int, carrier text, PRIMARY KEY (order_id, seq));
CREATE TABLE visits (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, page text);
CREATE TABLE teams (id int PRIMARY KEY, lead_id int);
CREATE TABLE people (id int PRIMARY KEY, team_id int REFERENCES teams, name text);
ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES people;
CREATE TABLE devices (serial text NOT NULL UNIQUE, label text);
CREATE TABLE events (at timestamptz, payload jsonb);
CREATE TABLE ledger (a int, b int, amount numeric, PRIMARY KEY (a, b));
CREATE TABLE kinds (
    id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, num numeric(12, 3), r real, d double precision,
    m money, b boolean, t text, vc varchar(10), ch char(4), u uuid, dd date, tm time, ts timestamp,
    tstz timestamptz, iv interval, j json, jb jsonb, by bytea, a2 int[], at text[], e mood, dom posint,
    ip inet, net cidr, rng int4range, pt point, tv tsvector, gen bigint GENERATED ALWAYS AS (i4 * 2) STORED);
"""
DATA = """
INSERT INTO regions VALUES (1, 'north'), (2, 'south');
INSERT INTO customers (id, region_id, referred_by, name) SELECT g, 1 + g % 2, CASE WHEN g > 1 THEN 1 END,
    'c' || g FROM generate_series(1, 6) g;
INSERT INTO tags VALUES (1, 'vip'), (2, 'new');
INSERT INTO customer_tags VALUES (1, 1), (1, 2), (2, 2);
INSERT INTO orders SELECT g, 1 + g % 6, g * 10.5 FROM generate_series(1, 12) g;
INSERT INTO order_lines SELECT g, 1 + g % 12, 'sku' || g, g FROM generate_series(1, 30) g;
INSERT INTO shipments VALUES (1, 1, 'ups'), (1, 2, 'dhl'), (2, 1, 'ups');
INSERT INTO visits SELECT g, CASE WHEN g <= 8 THEN 1 ELSE 2 END, '/p' || g FROM generate_series(1, 10) g;
INSERT INTO teams VALUES (1, NULL);
INSERT INTO people VALUES (1, 1, 'ann'), (2, 1, 'bob');
UPDATE teams SET lead_id = 1;
INSERT INTO devices VALUES ('SN-1', 'a'), ('SN-2', 'b');
INSERT INTO events VALUES (now(), '{}');
INSERT INTO ledger VALUES (1, 1, 5);
INSERT INTO kinds (id, i2, i4, i8, num, r, d, m, b, t, vc, ch, u, dd, tm, ts, tstz, iv, j, jb, by, a2, at, e, dom,
                   ip, net, rng, pt, tv) VALUES
  (1, 1, 2, 9007199254740993, 1.5, 'NaN', 'Infinity', 12.34, true, 'x', 'v', 'ab', gen_random_uuid(),
   '2024-01-02', '12:34:56', '2024-01-02 03:04:05.678912', '2024-01-02 03:04:05+02', '1 day 2 hours',
   '{"a": [1, 2.5]}', '{"b": null}', '\\xdeadbeef', '{{1,2},{3,NULL}}', '{a,NULL}', 'ok', 5,
   '10.0.0.1/24', '10.0.0.0/8', '[1,5)', '(1,2)', 'a fat cat');
"""
LIMITS = scaffold.Limits(embed_many_max=5)


@pytest.fixture
def shop(pg_conn):
    pg_conn.execute(SCHEMA)
    pg_conn.execute(DATA)
    pg_conn.commit()
    return pg_conn


def _draft(conn, tmp_path, tables=None) -> tuple[str, dict]:
    text = scaffold.draft(conn, "public", tables, LIMITS)
    conn.commit()
    path = tmp_path / "draft.yaml"
    path.write_text(text)
    return text, mapping.load(path)


def _rels(m: dict, coll: str) -> dict[str, dict]:
    c = next(c for c in m["collections"] if c["name"] == coll)
    return {f"{r['kind']}:{r.get('table') or r['column']}": r for r in c["relations"]}


def test_draft_decides_each_shape_and_says_why(shop, tmp_path):
    text, m = _draft(shop, tmp_path)
    colls = {c["name"]: c for c in m["collections"]}
    assert sorted(colls) == [
        "customers",
        "devices",
        "kinds",
        "ledger",
        "orders",
        "people",
        "regions",
        "tags",
        "teams",
        "visits",
    ]
    # a small, stable parent: a reference plus an embedded copy; a self-reference: a reference only
    assert sorted(_rels(m, "customers")) == [
        "embed_many:customer_tags",
        "embed_one:regions",
        "reference:referred_by",
        "reference:region_id",
    ]
    assert _rels(m, "customers")["embed_one:regions"]["as"] == "region"
    assert "self-reference: a reference only" in text
    # a join table: an array of references in its first parent, ordered by the other key
    tags = _rels(m, "customers")["embed_many:customer_tags"]
    assert (tags["foreign_key"], tags["order_by"]) == ("customer_id", "tag_id")
    assert "join table (its key is two foreign keys): an array of references to tags (tag_id)" in text
    # bounded leaf children (one with a composite key) are embedded; the unbounded one stays a collection
    assert sorted(_rels(m, "orders")) == [
        "embed_many:order_lines",
        "embed_many:shipments",
        "embed_one:customers",
        "reference:customer_id",
    ]
    assert "per orders row max 3, p99 3 over 12 parents" in text
    # a child keyed (order_id, seq) is ordered by its key within the parent (found by the property tests: without
    # an order, rows came in another order when the sample check read them again, and the check failed)
    assert _rels(m, "orders")["embed_many:shipments"]["order_by"] == "seq"
    assert list(_rels(m, "visits")) == ["reference:customer_id", "embed_one:customers"]
    assert "not embedded in customers: max 8, p99 8 over 2 parents" in text
    # a foreign-key cycle: references only, both ways
    assert list(_rels(m, "teams")) == ["reference:lead_id"] and list(_rels(m, "people")) == ["reference:team_id"]
    assert text.count("a foreign-key cycle: a reference only") == 2
    # keys: a unique NOT NULL column stands in; no key is reported; a composite key is a sub-document _id
    assert colls["devices"]["id"] == "serial"
    assert "no primary key: the unique NOT NULL column serial is the _id" in text
    assert "# - events: no primary key and no unique NOT NULL column" in text
    assert colls["ledger"]["id"] == ["a", "b"]
    assert "id: composite primary key (a, b): _id is a sub-document of its columns in key order" in text
    # watermark: the indexed updated_at, else xmin with why
    assert colls["customers"]["watermark"] == "updated_at" and colls["orders"]["watermark"] == "xmin"
    # columns without a BSON counterpart are named with what they become
    for col in ("m (money) becomes string (text)", "rng (int4range) becomes string (text)", "pt (point)"):
        assert f"kinds.{col}" in text


def _bson(value) -> str:
    """The BSON type name of a decoded value, as ``scaffold.TYPES`` spells it."""
    if isinstance(value, list):  # PostgreSQL's int[] holds any number of dimensions: the innermost values
        while value and isinstance(value[0], list):
            value = [v for sub in value for v in sub]
        return "array of " + (_bson(next((v for v in value if v is not None), None)) if value else "?")
    for typ, name in (
        (bool, "bool"),
        (int, "int"),
        (float, "double"),
        (str, "string"),
        (bson.Decimal128, "decimal"),
        (dt.datetime, "date"),
        (dict, "object"),
        (bytes, "binData"),
    ):
        if isinstance(value, typ):
            return name
    return type(value).__name__


def test_draft_loads_as_it_is_and_every_type_lands_as_the_table_says(shop, mongo_local, mongo_db_name, tmp_path):
    path = tmp_path / "draft.yaml"
    path.write_text(scaffold.draft(shop, "public", None, LIMITS))
    shop.commit()
    out = run_etl(shop, mongo_local, mongo_db_name, tmp_path, mapping=str(path), batch_size=4)
    db = mongo_local[mongo_db_name]
    assert {c: db[c].count_documents({}) for c in ("customers", "orders", "visits", "kinds", "devices")} == {
        "customers": 6,
        "orders": 12,
        "visits": 10,
        "kinds": 1,
        "devices": 2,
    }
    c1 = db.customers.find_one({"_id": 1})
    assert c1["region"] == {"id": 2, "name": "south"} and c1["region_id"] == 2 and c1["name"] == "c1"
    assert c1["customer_tags"] == [{"tag_id": 1}, {"tag_id": 2}]
    o1 = db.orders.find_one({"_id": 1})
    assert [line["sku"] for line in o1["order_lines"]] == ["sku12", "sku24"]
    assert o1["shipments"] == [{"seq": 1, "carrier": "ups"}, {"seq": 2, "carrier": "dhl"}]
    assert db.devices.find_one({"_id": "SN-1"})["label"] == "a"
    assert not any(v for v in out["load"]["collections"].values() if v["quarantined"])

    # every column of kinds has the BSON type scaffold.TYPES (docs/etl.md's table) names for its PostgreSQL type
    kinds = db.kinds.find_one({"_id": 1})
    cols = scaffold.survey(shop, "public", ["kinds"])["tables"]["kinds"].columns
    shop.commit()
    for col, spec in cols.items():
        if col == "id":
            continue
        claimed = spec["bson"].replace(" (text)", "").replace("int or long", "int")
        assert _bson(kinds[col]) == claimed, (col, spec["typname"], kinds[col])
    assert kinds["m"] == "$12.34" and kinds["iv"] == 93600.0 and kinds["gen"] == 4
    assert kinds["a2"] == [[1, 2], [3, None]] and kinds["at"] == ["a", None]
    assert kinds["num"] == bson.Decimal128(decimal.Decimal("1.500")) and kinds["r"] != kinds["r"]  # NaN kept

    # incremental on the draft: an embedded child's change and a join row's delete reach their parents
    shop.execute("UPDATE order_lines SET sku = 'changed' WHERE id = 12")
    shop.execute("DELETE FROM customer_tags WHERE customer_id = 1 AND tag_id = 2")
    shop.execute("UPDATE customers SET name = 'renamed', updated_at = now() WHERE id = 3")
    shop.commit()
    run_etl(shop, mongo_local, mongo_db_name, tmp_path, mapping=str(path), strategy="incremental", run_id="t2")
    assert [line["sku"] for line in db.orders.find_one({"_id": 1})["order_lines"]] == ["changed", "sku24"]
    assert db.customers.find_one({"_id": 1})["customer_tags"] == [{"tag_id": 1}]
    assert db.customers.find_one({"_id": 3})["name"] == "renamed"


def test_cli_drafts_named_tables_and_refuses_unknown_ones(shop, stack, pg_database, capsys):
    dsn = stack.pg.uri(pg_database)
    assert scaffold.main(["--dsn", dsn, "--tables", "regions", "customers", "--embed-one-rows", "1"]) == 0
    text = capsys.readouterr().out
    m = mapping.parse(text)
    assert [c["name"] for c in m["collections"]] == ["customers", "regions"]
    assert "not embedded: regions: 2 rows" in text  # the limit given on the command line
    assert scaffold.main(["--dsn", dsn, "--tables", "regions", "nope"]) == 2
    assert "tables not in schema 'public': nope" in capsys.readouterr().err


@pytest.mark.e2e
def test_scaffold_dag_stores_the_draft_and_prints_it(airflow_conns, stack, pg_database, tmp_path, caplog):
    from ferry import storage
    from ferry_dev import dagtest
    from ferry_dev import etl_demodata as demodata

    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=5, campaigns_per=2, items_per=2, tags_per=1)
        expected = scaffold.draft(conn)
    dr = dagtest.run_dag("production_etl_scaffold", {"pg_schema": "public", "output_url": None})
    out = dagtest.xcom(dr, "scaffold")
    assert out["collections"] == ["accounts", "campaigns"]
    assert out["url"] == storage.join(storage.root(), "etl-drafts", storage.safe_name(dr.run_id), "mapping.yaml")
    assert storage.read_text(out["url"]) == expected
    m = mapping.parse(expected)
    assert sorted(_rels(m, "campaigns")) == [
        "embed_many:campaign_tags",
        "embed_many:line_items",
        "embed_one:accounts",
        "reference:account_id",
    ]


def test_docs_carry_the_type_table():
    from pathlib import Path

    doc = Path("docs/etl.md").read_text()
    for typname, (bson_type, note) in scaffold.TYPES.items():
        assert f"| `{typname}` | {bson_type} | {note} |" in doc, typname


@pytest.mark.parametrize(
    "table,id_col,says",
    [
        ("events", "at", "it has no primary key"),
        ("ledger", "a", "its primary key is (a, b)"),
        ("customers", "name", "its primary key is (id)"),
    ],
)
def test_an_id_that_is_not_a_key_is_refused_at_plan_time_naming_the_table(shop, table, id_col, says):
    from ferry.etl.schema import snapshot

    m = mapping.parse(f"collections:\n  - name: x\n    table: {table}\n    id: {id_col}\n", "mine.yaml")
    with pytest.raises(mapping.MappingError) as err:
        mapping.resolve(m, snapshot(shop))
    assert f"mapping line 2: x: id column {id_col!r} is not a key of table {table!r} ({says})" in str(err.value)
    # a unique NOT NULL column is a key
    m = mapping.parse("collections:\n  - {name: d, table: devices, id: serial}\n")
    assert mapping.resolve(m, snapshot(shop))["collections"][0]["id"] == "serial"
