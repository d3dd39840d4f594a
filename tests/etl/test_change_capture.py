"""Incremental runs with change capture: watermarks per table, key-set comparison for deletes, pre-image
backups (real PostgreSQL and the MongoDB wire server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry import hashing
from ferry.etl import backup
from ferry.etl.names import meta_db
from tests.etl.conftest import MAPPING, run_etl

pytestmark = pytest.mark.integration

CHANGES = """
    -- 10% of campaigns updated: 3 directly, 3 through an embedded child row
    UPDATE campaigns SET budget = coalesce(budget, 0) + 1 WHERE id IN (2, 12, 22);
    UPDATE line_items SET quantity = quantity + 5 WHERE campaign_id IN (32, 42, 52);
    -- an embedded child row deleted (no watermark sees a delete: the per-parent counts do)
    DELETE FROM line_items WHERE id = (SELECT min(id) FROM line_items WHERE campaign_id = 7);
    -- an embedded parent updated: every campaign embedding account 5 changes
    UPDATE accounts SET region = 'moved' WHERE id = 5;
    -- 1% deleted (with their children)
    DELETE FROM line_items WHERE campaign_id = 9; DELETE FROM campaign_tags WHERE campaign_id = 9;
    DELETE FROM campaigns WHERE id = 9;
    -- 5% inserted
    INSERT INTO campaigns (id, account_id, name, status) VALUES (901, 1, 'n1', 'live'), (902, 2, 'n2', 'live'),
        (903, 3, 'n3', 'draft');
    INSERT INTO line_items (id, campaign_id, description, rate, quantity) VALUES (90001, 901, 'x', 1.5, 2);
    INSERT INTO accounts (id, name) VALUES (777, 'Newco');
"""


def _clean_copy(conn, client, db, tmp_path):
    clean = f"{db}_clean"
    run_etl(conn, client, clean, tmp_path, batch_size=1000)
    return hashing.db_digest(client[clean])


def test_no_change_run_reads_nothing_and_backs_up_nothing(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")  # first incremental: a full read
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", batch_size=7)
    for name, c in out["load"]["collections"].items():
        assert (c["read"], c["written"], c["deleted"], c["backed_up"]) == (0, 0, 0, 0), name
        assert c["change_capture"] == "watermark"
    rec = mongo_local[meta_db(db)][backup.VERSIONS].find_one({"_id": out["backup"]["_id"]})
    assert rec["kind"] == "delta" and rec["parts"] == [] and rec["documents"] == 0


def test_incremental_with_updates_deletes_inserts_equals_a_full_load(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    conn.execute(CHANGES)
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", batch_size=4)
    camp = out["load"]["collections"]["campaigns"]
    assert camp["change_capture"] == "watermark"
    assert camp["deleted"] == 1
    assert camp["read"] < demo_pg.counts["campaigns"] // 2  # only what changed
    assert out["load"]["collections"]["accounts"]["read"] == 2  # account 5 and the new one
    assert hashing.db_digest(mongo_local[db]) == _clean_copy(conn, mongo_local, db, tmp_path)
    # the backup holds the pre-images of exactly the documents that were written or deleted
    rec = mongo_local[meta_db(db)][backup.VERSIONS].find_one({"_id": out["backup"]["_id"]})
    written = sum(c["written"] + c["deleted"] for c in out["load"]["collections"].values())
    assert rec["documents"] == written > 0


def test_rollback_of_an_incremental_run_restores_exactly(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    before = hashing.db_digest(mongo_local[db])
    conn.execute(CHANGES)
    conn.commit()
    first = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    after_first = hashing.db_digest(mongo_local[db])
    conn.execute("UPDATE campaigns SET name = name || '!' WHERE id < 20; DELETE FROM campaign_tags WHERE id < 5")
    conn.commit()
    second = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    assert hashing.db_digest(mongo_local[db]) != after_first
    meta = mongo_local[meta_db(db)]
    backup.restore(mongo_local, meta, second["backup"]["_id"])
    assert hashing.db_digest(mongo_local[db]) == after_first
    backup.restore(mongo_local, meta, first["backup"]["_id"])  # undoes the first run too
    assert hashing.db_digest(mongo_local[db]) == before
    assert meta[backup.STATE].count_documents({"db": db}) == 0  # the next incremental run reads everything
    again = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    assert again["load"]["collections"]["campaigns"]["change_capture"] == "full read"
    assert hashing.db_digest(mongo_local[db]) == _clean_copy(conn, mongo_local, db, tmp_path)


def test_updated_at_watermark_column(demo_pg, mongo_local, mongo_db_name, tmp_path):
    """A relation watermarked by its ``updated_at`` column: rows whose column moved (or is NULL) are read."""
    conn, db = demo_pg.conn, mongo_db_name
    text = Path(MAPPING).read_text().replace("as: lineItems\n", "as: lineItems\n        watermark: updated_at\n")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(text)
    conn.execute("UPDATE line_items SET updated_at = now() - interval '1 day' + id * interval '1 microsecond'")
    conn.commit()
    run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping))
    quiet = run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping), strategy="incremental")
    assert quiet["load"]["collections"]["campaigns"]["read"] == 1  # the parent of the row at the mark
    conn.execute("UPDATE line_items SET quantity = 7, updated_at = now() WHERE campaign_id IN (3, 4)")
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, mapping=str(mapping), strategy="incremental")
    assert out["load"]["collections"]["campaigns"]["read"] == 3  # the two, and the one at the old mark
    assert out["load"]["collections"]["campaigns"]["written"] == 2
    assert {i["quantity"] for i in mongo_local[db].campaigns.find_one({"_id": 3})["lineItems"]} == {7}


def _no_full_key_comparison(*_a, **_k):
    raise AssertionError("the delete check compared every key (the ranged check should have answered)")


def test_deletes_are_found_in_the_moved_key_ranges_only(demo_pg, mongo_local, mongo_db_name, tmp_path, monkeypatch):
    """Integer keys: the state keeps a fingerprint per key range; a run with deletes probes only the ids the
    source lost in the ranges whose fingerprint moved (never every key of the target), also after the ranges
    were re-cut because one grew, and ends equal to a fresh full load."""
    from ferry.etl import acquire, load

    monkeypatch.setattr(acquire, "RANGE_KEYS", 5)  # 60 campaigns: 12 ranges
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    state = mongo_local[meta_db(db)][backup.STATE].find_one({"_id": f"{db}:campaigns"})
    assert len(state["ranges"]["bounds"]) == 12 and state["ranges"]["span"] == [1, 60]
    monkeypatch.setattr(load, "_gone", _no_full_key_comparison)
    conn.execute(
        "DELETE FROM line_items WHERE campaign_id IN (7, 33); DELETE FROM campaign_tags WHERE campaign_id IN (7, 33);"
        "DELETE FROM campaigns WHERE id IN (7, 33);"
        "INSERT INTO campaigns (id, account_id, name, status) SELECT g, 1, 'n' || g, 'live'"
        " FROM generate_series(61, 90) g"  # the last range grows past twice its size: re-cut
    )
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    camp = out["load"]["collections"]["campaigns"]
    assert (camp["deleted"], camp["read"]) == (2, 30 + 0)
    assert mongo_local[db].campaigns.count_documents({"_id": {"$in": [7, 33]}}) == 0
    state = mongo_local[meta_db(db)][backup.STATE].find_one({"_id": f"{db}:campaigns"})
    assert len(state["ranges"]["bounds"]) == 18 and state["ranges"]["span"] == [1, 90]
    conn.execute(
        "DELETE FROM line_items WHERE campaign_id IN (2, 88); DELETE FROM campaign_tags WHERE campaign_id IN (2, 88);"
        "DELETE FROM campaigns WHERE id IN (2, 88); UPDATE campaigns SET name = 'x' WHERE id = 40"
    )
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    assert out["load"]["collections"]["campaigns"]["deleted"] == 2
    monkeypatch.undo()
    assert hashing.db_digest(mongo_local[db]) == _clean_copy(conn, mongo_local, db, tmp_path)


def test_a_row_committed_after_the_capture_waits_for_the_next_run(
    demo_pg, stack, pg_database, mongo_local, mongo_db_name, tmp_path, monkeypatch
):
    """The capture state and the rows are read in one snapshot: a row committed between the two is not
    loaded by that run (it would be missing from the state, and its later delete missed), the next run
    loads it, and the one after finds its delete by key range."""
    from ferry.etl import load

    conn, db = demo_pg.conn, mongo_db_name
    eff = run_etl(conn, mongo_local, db, tmp_path)["planned"]["effective_mapping"]
    meta = mongo_local[meta_db(db)]

    def incremental() -> dict:  # the load alone: the checks of run_etl would read a later snapshot
        res = load.load(conn, mongo_local, db, eff, load.Options(strategy="incremental", meta_db=meta))
        conn.commit()
        load.save_state(meta, res)
        return res["collections"]["campaigns"]

    capture = load._capture_state

    def capture_then_insert(*a, **k):
        state = capture(*a, **k)
        if a[2]["name"] == "campaigns":
            with stack.pg.connect(pg_database) as other:
                other.execute("INSERT INTO campaigns (id, account_id, name, status) VALUES (500, 1, 'late', 'live')")
                other.commit()
        return state

    monkeypatch.setattr(load, "_capture_state", capture_then_insert)
    assert incremental()["read"] == 0
    monkeypatch.setattr(load, "_capture_state", capture)
    assert mongo_local[db].campaigns.find_one({"_id": 500}) is None
    assert incremental()["read"] == 1
    state = meta[backup.STATE].find_one({"_id": f"{db}:campaigns"})
    assert state["ranges"]["span"] == [1, 500] and state["keys"][0] == 61
    monkeypatch.setattr(load, "_gone", _no_full_key_comparison)
    conn.execute("DELETE FROM campaigns WHERE id = 500")
    conn.commit()
    assert incremental()["deleted"] == 1
    assert mongo_local[db].campaigns.find_one({"_id": 500}) is None
    monkeypatch.undo()
    assert hashing.db_digest(mongo_local[db]) == _clean_copy(conn, mongo_local, db, tmp_path)


def test_sparse_keys_fall_back_to_comparing_every_key(demo_pg, mongo_local, mongo_db_name, tmp_path, monkeypatch):
    """More ids to probe than ``PROBE_LIMIT`` (sparse keys): every key is compared, the result is the same."""
    from ferry.etl import load

    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    monkeypatch.setattr(load, "PROBE_LIMIT", 0)
    calls = []
    gone = load._gone
    monkeypatch.setattr(load, "_gone", lambda *a, **k: calls.append(1) or gone(*a, **k))
    conn.execute(
        "DELETE FROM line_items WHERE campaign_id = 12; DELETE FROM campaign_tags WHERE campaign_id = 12;"
        "DELETE FROM campaigns WHERE id = 12"
    )
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    assert out["load"]["collections"]["campaigns"]["deleted"] == 1 and calls
    monkeypatch.undo()
    assert hashing.db_digest(mongo_local[db]) == _clean_copy(conn, mongo_local, db, tmp_path)


def test_an_incremental_check_reads_only_what_the_run_wrote(demo_pg, mongo_local, mongo_db_name, tmp_path, monkeypatch):
    """An incremental run's check rebuilds every document it wrote from the source (and the random sample),
    looks up references only among them, and still catches a written document that differs; references
    are checked in every document when the referenced collection lost documents."""
    from ferry.etl import checks, load

    conn, db = demo_pg.conn, mongo_db_name
    eff = run_etl(conn, mongo_local, db, tmp_path)["planned"]["effective_mapping"]
    conn.execute("UPDATE campaigns SET budget = coalesce(budget, 0) + 1 WHERE id IN (3, 4)")
    conn.commit()
    full_reference_scans = []
    dangling = checks._dangling
    monkeypatch.setattr(checks, "_dangling", lambda *a: full_reference_scans.append(a[1]["as"]) or dangling(*a))
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental")
    rows = {(r["check"], r["collection"]): (r["expected"], r["actual"]) for r in out["checks"]}
    assert rows[("written documents rebuilt (2 docs)", "campaigns")] == (0, 0)
    assert rows[("written documents rebuilt (0 docs)", "accounts")] == (0, 0)
    assert rows[("dangling accountId -> accounts (written)", "campaigns")] == (0, 0)
    assert ("duplicate _id", "campaigns") not in rows and full_reference_scans == []
    mongo_local[db].campaigns.update_one({"_id": 3}, {"$set": {"name": "tampered"}})
    changed = load.changed(mongo_local[meta_db(db)], out["load"])
    with pytest.raises(checks.TargetDiffers, match=r"written documents rebuilt \(2 docs\)"):
        checks.run(conn, mongo_local, db, eff, changed=changed)
    changed.deleted.add("accounts")
    with pytest.raises(checks.TargetDiffers):
        checks.run(conn, mongo_local, db, eff, changed=changed)
    assert full_reference_scans == ["accountId"]
