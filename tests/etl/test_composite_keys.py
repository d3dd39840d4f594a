"""Composite primary keys (issue 27): ``id: [region, order_no]`` gives ``_id: {region, order_no}`` in key
order; children whose foreign key is composite embed with ``foreign_key: [region, order_no]``; a full load
validates, an incremental run reads only what changed (updates, a child deleted, an order deleted, new rows)
and equals a fresh full load; the contracts describe the sub-document; what cannot work is refused at plan
time naming the mapping line. Real PostgreSQL and the wire server."""

from __future__ import annotations

import pytest

from ferry import hashing
from ferry.etl import contract, jsonschema, mapping
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


def test_a_reference_to_a_composite_key_collection_is_refused(shop):
    conn, _ = shop
    text = (
        MAPPING
        + """
  - name: lines
    table: order_lines
    id: [region, order_no, line_no]
    relations:
      - {kind: reference, column: order_no, collection: orders}
"""
    )
    with pytest.raises(mapping.MappingError, match=r"lines\.order_no: collection 'orders' has the composite key"):
        mapping.resolve(mapping.parse(text, "orders.yaml"), snapshot(conn))
