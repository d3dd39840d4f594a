"""Composite primary keys (issue 27): ``id: [region, order_no]`` gives ``_id: {region, order_no}`` in key
order; children whose foreign key is composite embed with ``foreign_key: [region, order_no]``; a full load
validates, an incremental run reads only what changed (updates, a child deleted, an order deleted, new rows)
and equals a fresh full load; the contracts describe the sub-document; what cannot work is refused at plan
time naming the mapping line. Real PostgreSQL and the wire server."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from bson.decimal128 import Decimal128

from ferry import hashing
from ferry.etl import contract, jsonschema, mapping, scaffold
from ferry.etl.schema import snapshot
from tests.etl.conftest import run_etl

pytestmark = pytest.mark.integration

SCHEMA = """
CREATE TABLE orders (region text, order_no int, placed date NOT NULL, total numeric(10, 2),
                     PRIMARY KEY (region, order_no));
CREATE TABLE order_lines (region text, order_no int, line_no int, sku text NOT NULL, qty int NOT NULL,
                          PRIMARY KEY (region, order_no, line_no),
                          FOREIGN KEY (region, order_no) REFERENCES orders ON DELETE CASCADE);
INSERT INTO orders SELECT r, n, DATE '2026-01-01' + n, n * 1.5 FROM unnest(ARRAY['eu', 'us']) r,
                          generate_series(1, 30) n;
INSERT INTO order_lines SELECT region, order_no, l, 'sku-' || order_no || '-' || l, l FROM orders,
                          generate_series(1, 1 + order_no % 3) l;
"""

MAPPING = """
version: 1
collections:
  - name: orders
    table: orders
    id: [region, order_no]
    relations:
      - {kind: embed_many, table: order_lines, foreign_key: [region, order_no], order_by: line_no, as: lines}
"""


@pytest.fixture
def shop(pg_conn, tmp_path):
    pg_conn.execute(SCHEMA)
    pg_conn.commit()
    path = tmp_path / "orders.yaml"
    path.write_text(MAPPING)
    return pg_conn, str(path)


def _clean_digest(conn, client, db, tmp_path, path) -> str:
    run_etl(conn, client, f"{db}_clean", tmp_path, mapping=path, batch_size=1000)
    return hashing.db_digest(client[f"{db}_clean"])


def test_composite_key_full_then_incremental_equals_a_full_load(shop, mongo_local, mongo_db_name, tmp_path):
    conn, path = shop
    db = mongo_db_name
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=path, batch_size=7)
    assert out["load"]["collections"]["orders"]["documents"] == 60
    doc = mongo_local[db].orders.find_one({"_id": {"region": "eu", "order_no": 5}})
    assert list(doc["_id"].items()) == [("region", "eu"), ("order_no", 5)]  # the key's order
    assert [(line["line_no"], line["sku"]) for line in doc["lines"]] == [(1, "sku-5-1"), (2, "sku-5-2"), (3, "sku-5-3")]
    assert str(doc["total"]) == "7.50" and set(doc) == {"_id", "placed", "total", "lines", "_ferry_hash"}
    # the other region's order of the same number is another document
    assert mongo_local[db].orders.count_documents({"_id.order_no": 5}) == 2

    run_etl(conn, mongo_local, db, tmp_path, mapping=path, strategy="incremental")  # first one: a full read
    conn.execute("""
        UPDATE orders SET total = 99 WHERE region = 'us' AND order_no = 3;
        DELETE FROM order_lines WHERE region = 'eu' AND order_no = 8 AND line_no = 3;
        DELETE FROM orders WHERE region = 'eu' AND order_no = 10;
        INSERT INTO orders VALUES ('apac', 1, DATE '2026-02-01', 1);
        INSERT INTO order_lines VALUES ('apac', 1, 1, 'new', 4), ('us', 4, 9, 'late', 1);
    """)
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=path, strategy="incremental", batch_size=4)
    got = out["load"]["collections"]["orders"]
    assert got["change_capture"] == "watermark"
    # us/3 updated, us/4 got a line, eu/8 lost one, apac/1 is new; eu/10 deleted
    assert (got["read"], got["written"], got["deleted"]) == (4, 4, 1), got
    orders = mongo_local[db].orders
    assert orders.find_one({"_id": {"region": "eu", "order_no": 10}}) is None
    assert [line["line_no"] for line in orders.find_one({"_id": {"region": "eu", "order_no": 8}})["lines"]] == [1, 2]
    assert str(orders.find_one({"_id": {"region": "us", "order_no": 3}})["total"]) == "99.00"
    assert orders.find_one({"_id": {"region": "apac", "order_no": 1}})["lines"][0]["sku"] == "new"
    assert hashing.db_digest(mongo_local[db]) == _clean_digest(conn, mongo_local, db, tmp_path, path)

    nothing = run_etl(conn, mongo_local, db, tmp_path, mapping=path, strategy="incremental")
    got = nothing["load"]["collections"]["orders"]
    assert (got["read"], got["written"], got["deleted"]) == (0, 0, 0), got


def test_contracts_describe_the_key_sub_document(shop):
    conn, path = shop
    snap = snapshot(conn)
    eff = mapping.resolve(mapping.load(path), snap)
    schema = jsonschema.collection_schema(eff["collections"][0], snap, "decimal128")
    assert schema["properties"]["_id"] == {
        "bsonType": "object",
        "required": ["region", "order_no"],
        "properties": {"region": {"bsonType": ["string"]}, "order_no": {"bsonType": ["int", "long"]}},
        "additionalProperties": False,
    }
    shape = contract.shapes(eff, snap)["orders"]
    key = next(f for f in shape.fields if f.name == "_id")
    assert key.kinds == ("object",) and [f.name for f in key.shape.fields] == ["region", "order_no"]
    ts = contract.typescript(contract.shapes(eff, snap), "// test")
    assert "export interface OrdersId {" in ts and "_id: OrdersId;" in ts, ts
    rendered = contract.render(eff, snap, "orders", "1")  # every format renders the sub-document
    assert all("order_no" in text for text in rendered.values()), list(rendered)


@pytest.mark.parametrize(
    "edit,message",
    [
        ("id: [region, order_no]", None),
        ("id: [order_no, region]", "id columns (order_no, region) is not a key of table 'orders'"),
        ("id: [region]", "id column 'region' is not a key of table 'orders' (its primary key is (region, order_no))"),
        ("foreign_key: [region, order_no]", None),
        ("foreign_key: [region, order_no]|foreign_key: region", "foreign_key region has 1 column(s)"),
    ],
)
def test_keys_that_cannot_work_are_refused_at_plan_time(shop, edit, message):
    conn, path = shop
    text = MAPPING
    old, _, new = edit.partition("|")
    if new:
        text = text.replace(old, new)
    elif old.startswith("id:"):
        text = text.replace("id: [region, order_no]", old)
    m = mapping.parse(text, "orders.yaml")
    if message is None:
        mapping.resolve(m, snapshot(conn))
        return
    with pytest.raises(mapping.MappingError, match=r"mapping line \d+: orders.*" + message.replace("(", r"\(")
                       .replace(")", r"\)")):  # fmt: skip
        mapping.resolve(m, snapshot(conn))


SHIPMENTS = """
CREATE TABLE shipments (id int PRIMARY KEY, region text, order_no int, carrier text);
INSERT INTO shipments VALUES (1, 'eu', 5, 'ups'), (2, 'us', 7, 'dhl'), (3, 'eu', 999, 'lost'), (4, NULL, 5, 'x');
"""
REFERENCE = """
  - name: shipments
    table: shipments
    id: id
    relations:
      - {kind: reference, column: [region, order_no], collection: orders, as: order}
"""


def test_a_reference_of_several_columns_holds_the_referenced_id(shop, mongo_local, mongo_db_name, tmp_path):
    conn, path = shop
    conn.execute(SHIPMENTS)
    conn.commit()
    Path(path).write_text(MAPPING + REFERENCE)
    db = mongo_db_name
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=path)
    assert out["load"]["collections"]["shipments"]["missing"] == {"order": 1}  # eu/999: no such order
    ships = {d["_id"]: d.get("order") for d in mongo_local[db].shipments.find()}
    assert ships == {1: {"region": "eu", "order_no": 5}, 2: {"region": "us", "order_no": 7}, 3: None, 4: None}
    assert mongo_local[db].orders.find_one({"_id": ships[1]})["total"] is not None  # it is the order's _id
    conn.execute("UPDATE shipments SET order_no = 6 WHERE id = 1")
    conn.commit()
    run_etl(conn, mongo_local, db, tmp_path, mapping=path, strategy="incremental")  # validate: none dangling
    assert mongo_local[db].shipments.find_one({"_id": 1})["order"] == {"region": "eu", "order_no": 6}
    snap = snapshot(conn)
    schema = jsonschema.collection_schema(mapping.resolve(mapping.load(path), snap)["collections"][1], snap, "double")
    assert schema["properties"]["order"]["required"] == ["region", "order_no"]


def test_references_that_cannot_work_are_refused(shop):
    conn, _ = shop
    conn.execute(SHIPMENTS)
    conn.commit()
    for column, says in (("order_no", "column order_no has 1 column(s); the key of orders (region, order_no) has 2"),
                         ("[region, order_no, carrier]", "has 3 column(s)")):  # fmt: skip
        text = MAPPING + REFERENCE.replace("[region, order_no]", column)
        with pytest.raises(mapping.MappingError, match=r"shipments\.order: .*" + re.escape(says)):
            mapping.resolve(mapping.parse(text, "orders.yaml"), snapshot(conn))
    with pytest.raises(mapping.MappingError, match="a reference of several columns needs 'as'"):
        mapping.parse(MAPPING + REFERENCE.replace(", as: order", ""), "orders.yaml")


def test_the_scaffold_drafts_composite_keys_and_references_and_the_draft_loads(
    shop, mongo_local, mongo_db_name, tmp_path
):
    conn, _ = shop
    ddl = SHIPMENTS.replace(", (3, 'eu', 999, 'lost')", "").replace(
        "carrier text)", "carrier text, FOREIGN KEY (order_no, region) REFERENCES orders (order_no, region))"
    )
    conn.execute(ddl)
    conn.commit()
    text = scaffold.draft(conn)
    m = mapping.parse(text, "draft.yaml")
    colls = {c["name"]: c for c in m["collections"]}
    assert colls["orders"]["id"] == ["region", "order_no"]
    assert colls["order_lines"]["id"] == ["region", "order_no", "line_no"]  # a composite foreign key: a collection
    (ref,) = colls["shipments"]["relations"]
    assert (ref["column"], ref["collection"], ref["as"]) == (["region", "order_no"], "orders", "orders")  # key order
    assert "reference (region, order_no) -> orders._id, a sub-document {region, order_no}" in text
    path = tmp_path / "draft.yaml"
    path.write_text(text)
    run_etl(conn, mongo_local, mongo_db_name, tmp_path, mapping=str(path))
    ship = mongo_local[mongo_db_name].shipments.find_one({"_id": 1})
    assert ship["orders"] == {"region": "eu", "order_no": 5}
    line = mongo_local[mongo_db_name].order_lines.find_one({"_id": {"region": "eu", "order_no": 5, "line_no": 2}})
    assert line["orders"] == {"region": "eu", "order_no": 5} and line["sku"] == "sku-5-2"


def test_embed_one_of_a_composite_key_parent(shop, mongo_local, mongo_db_name, tmp_path):
    conn, path = shop
    conn.execute(SHIPMENTS)
    conn.commit()
    embed = REFERENCE.replace(
        "as: order}", "as: order}\n      - {kind: embed_one, table: orders, local_key: [region, order_no], as: o}"
    )
    Path(path).write_text(MAPPING + embed)
    db = mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path, mapping=path)
    ships = {d["_id"]: d["o"] for d in mongo_local[db].shipments.find()}
    order = {"region": "eu", "order_no": 5, "placed": dt.datetime(2026, 1, 6), "total": Decimal128("7.50")}
    assert ships[1] == order  # the order row eu/5
    assert ships[3] is None and ships[4] is None  # no order eu/999; a NULL region joins nothing
    conn.execute("UPDATE orders SET total = 1 WHERE region = 'eu' AND order_no = 5")
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=path, strategy="incremental")
    assert out["load"]["collections"]["shipments"]["read"] == 1  # the shipment whose embedded order changed
    assert mongo_local[db].shipments.find_one({"_id": 1})["o"]["total"] == Decimal128("1.00")
    bad = MAPPING + embed.replace("local_key: [region, order_no]", "local_key: order_no")
    with pytest.raises(mapping.MappingError, match=r"shipments\.o: local_key order_no cannot join table 'orders'"):
        mapping.resolve(mapping.parse(bad, "orders.yaml"), snapshot(conn))
