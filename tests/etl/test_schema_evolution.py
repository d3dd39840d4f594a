"""Schema changes that leave documents alone cost nothing; new tables can become collections."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry import hashing
from tests.etl.conftest import MAPPING, run_etl

pytestmark = pytest.mark.integration


def test_constraint_only_breaking_changes_do_not_stop_auto_safe(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    conn.execute("ALTER TABLE campaigns DROP CONSTRAINT campaigns_account_id_fkey")
    conn.commit()
    run_etl(conn, mongo_local, db, tmp_path)
    before = hashing.db_digest(mongo_local[db])
    conn.execute("ALTER TABLE campaigns ADD FOREIGN KEY (account_id) REFERENCES accounts (id)")  # a mapped column
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")  # auto_safe
    kinds = {c["kind"]: c for c in out["detected"]["changes"]}
    assert kinds["foreign_key_added"]["class"] == "breaking"
    assert out["planned"]["decision"]["action"] == "apply_safe"
    assert "no document changes" in out["planned"]["decision"]["reason"]
    assert all(c["written"] == 0 for c in out["load"]["collections"].values())
    assert hashing.db_digest(mongo_local[db]) == before


def test_a_likely_rename_keeps_the_field_in_place_and_rewrites_nothing(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    before = hashing.db_digest(mongo_local[db])
    order = list(mongo_local[db].accounts.find_one({"_id": 1}))
    conn.execute("ALTER TABLE accounts RENAME COLUMN region TO area")
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", policy="apply_all")
    assert any(c["kind"] == "column_renamed_likely" for c in out["detected"]["changes"])
    for name, c in out["load"]["collections"].items():
        assert c["written"] == 0 and c["read"] == c["source_rows"], name  # mapping changed: all read, none written
    assert list(mongo_local[db].accounts.find_one({"_id": 1})) == order
    assert hashing.db_digest(mongo_local[db]) == before


@pytest.mark.parametrize("mode", ["report", "create"])
def test_new_tables_report_or_create(mode, demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(Path(MAPPING).read_text().replace("defaults:\n", f"defaults:\n  new_tables: {mode}\n"))
    run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping))
    conn.execute("""
        CREATE TABLE budgets (id bigint PRIMARY KEY, amount numeric, note text);
        INSERT INTO budgets VALUES (1, 10.5, 'a'), (2, NULL, NULL);
        CREATE TABLE pairs (a int, b text, w int, PRIMARY KEY (a, b));
        INSERT INTO pairs VALUES (2, 'x', 1), (1, 'y', 2), (1, 'x', 3);
        CREATE TABLE loose (x int);
    """)
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping))  # auto_safe: new tables are safe
    actions = {c["mapping"]: c["action"] for c in out["planned"]["decision"]["mapping_changes"]}
    if mode == "report":
        assert "budgets" not in mongo_local[db].list_collection_names()
        assert "reported" in actions["budgets"]
    else:
        docs = list(mongo_local[db].budgets.find({}, {"_ferry_hash": 0}).sort("_id", 1))
        assert [d["_id"] for d in docs] == [1, 2] and docs[1] == {"_id": 2, "amount": None, "note": None}
        assert str(docs[0]["amount"]) == "10.5"
        assert "created collection budgets" in actions["budgets"]
        # a composite primary key: _id is a sub-document of its columns in key order
        pairs = list(mongo_local[db].pairs.find({}, {"_ferry_hash": 0}))
        assert sorted((list(d["_id"].items()), d["w"]) for d in pairs) == [
            ([("a", 1), ("b", "x")], 3),
            ([("a", 1), ("b", "y")], 2),
            ([("a", 2), ("b", "x")], 1),
        ]
        assert "_id = (a, b)" in actions["pairs"]
        assert "no primary key nor a unique NOT NULL key" in actions["loose"]
        conn.execute("UPDATE pairs SET w = 30 WHERE a = 1 AND b = 'x'; DELETE FROM pairs WHERE a = 2")
        conn.commit()
        again = run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping), strategy="incremental")
        assert again["load"]["collections"]["budgets"]["read"] == 0  # part of the effective mapping from now on
        got = again["load"]["collections"]["pairs"]
        assert (got["read"], got["written"], got["deleted"]) == (1, 1, 1), got
        pairs = {(d["_id"]["a"], d["_id"]["b"]): d["w"] for d in mongo_local[db].pairs.find()}
        assert pairs == {(1, "x"): 30, (1, "y"): 2}
