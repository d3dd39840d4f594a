"""Relations whose target row is missing: counted per relation, handled as ``on_missing`` says."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.errors import FerryError
from ferry.etl import load, runs
from ferry.etl.names import meta_db
from tests.etl.conftest import MAPPING, run_etl

pytestmark = pytest.mark.integration


def _mapping(tmp_path, mode: str | None) -> str:
    text = Path(MAPPING).read_text()
    if mode:
        text = text.replace("as: accountId\n", f"as: accountId\n        on_missing: {mode}\n")
        text = text.replace("as: account\n", f"as: account\n        on_missing: {mode}\n")
    path = tmp_path / f"mapping_{mode}.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def orphans(demo_pg):
    """Two campaigns whose account does not exist (no foreign key), one with no account at all."""
    conn = demo_pg.conn
    conn.execute("""
        ALTER TABLE campaigns DROP CONSTRAINT campaigns_account_id_fkey;
        INSERT INTO campaigns (id, account_id, name) VALUES (9001, 5555, 'orphan'), (9002, 5556, 'orphan 2');
    """)
    conn.commit()
    return conn


@pytest.mark.parametrize("mode", [None, "null", "omit", "quarantine"])
def test_missing_targets_are_counted_and_handled(mode, orphans, mongo_local, mongo_db_name, tmp_path):
    db = mongo_db_name
    out = run_etl(orphans, mongo_local, db, tmp_path, mapping=_mapping(tmp_path, mode))
    counts = out["load"]["collections"]["campaigns"]
    assert counts["missing"] == {"accountId": 2, "account": 2}  # always counted
    table = {(r["collection"], r["relation"]): r for r in runs.missing_rows(out["planned"], out["load"])}
    assert table["campaigns", "account"]["missing"] == 2
    assert table["campaigns", "account"]["on_missing"] == (mode or "null")
    assert table["campaigns", "accountId"]["kind"] == "reference"
    doc = mongo_local[db].campaigns.find_one({"_id": 9001})
    if mode in (None, "null"):
        assert doc["account"] is None and doc["accountId"] is None
    elif mode == "omit":
        assert "account" not in doc and "accountId" not in doc
    else:
        assert doc is None and counts["quarantined"] == 2
        q = mongo_local[meta_db(db)][load.QUARANTINE].find_one({"key": "9001"})
        assert "no accounts row with key 5555" in q["error"]
    fine = mongo_local[db].campaigns.find_one({"_id": 1})
    assert fine["account"] is not None and fine["accountId"] == 1  # rows with their parent are untouched


def test_on_missing_fail_stops_the_load_naming_the_relation(orphans, mongo_local, mongo_db_name, tmp_path):
    with pytest.raises(FerryError, match=r"campaigns\.accountId: no accounts row with key 5555 \(on_missing: fail"):
        run_etl(orphans, mongo_local, mongo_db_name, tmp_path, mapping=_mapping(tmp_path, "fail"))
    assert "campaigns" not in mongo_local[mongo_db_name].list_collection_names()  # staging only, never published
