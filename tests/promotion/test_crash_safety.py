"""Promotion crash safety: durable intent before writes, rollback of an interrupted promotion, recovery on
rerun, and one writer per target (two promotions never interleave)."""

from __future__ import annotations

import threading
import time

import pytest

from ferry import locks
from ferry.promotion import execute as ex
from ferry.promotion import rollback as rb
from tests.promotion.conftest import db_hash

pytestmark = pytest.mark.integration

ALL = ["companies", "documents", "meta_summaries"]


def _execute(cfg, local_db, prod_db, sink, pid, on_conflict="skip", lookup=None, **kw):
    selection = ex.Selection(ALL, {c: {} for c in ALL}, on_conflict)
    run = ex.Attempt(pid, sink, params={}, triggered_by="test", **kw)
    return ex.execute(cfg, local_db, prod_db, selection, run, lookup=lookup)


def test_rollback_of_a_promotion_interrupted_before_confirming_its_upserts_deletes_every_insert(dbs, cfg, sink):
    """A crash between the writes and their confirmation: the rollback finds every insert from the intent
    records (written durably before the batch) by content, whatever field order the server stored (an upsert
    puts the query's fields first on a real mongod). The server-restart version of this regression (38 of 40
    meta summaries left) is replayed in tests/faults."""
    local_db, prod_db, _ = dbs
    local_db.documents.delete_one({"_id": "d4"})
    for i in range(40):  # 40 more summaries for b.com (kind unique per company)
        local_db.meta_summaries.insert_one(
            {
                "_id": f"mx{i}",
                "company_id": local_db.companies.find_one({"domain": "b.com"})["_id"],
                "kind": f"k{i}",
                "text": f"t{i}",
                "updated_at": i,
            }
        )
    before = db_hash(prod_db)
    res = _execute(cfg, local_db, prod_db, sink, "pcrash")
    assert {r["collection"]: r["inserted"] for r in res["outcome"]}["meta_summaries"] == 41
    # the crash: the writes landed, the confirmations did not
    backups = prod_db[cfg.backups_collection]
    assert backups.update_many(
        {"promotion_id": "pcrash", "kind": "inserts"}, {"$set": {"inserted": None}}
    ).modified_count
    prod_db[cfg.audit_collection].update_one({"_id": "pcrash"}, {"$set": {"status": "running"}})
    rows = {r["collection"]: r for r in rb.rollback(cfg, prod_db, "pcrash")}
    assert rows["meta_summaries"]["deleted"] == 41 and rows["meta_summaries"]["left"] == 0
    assert db_hash(prod_db) == before
    assert prod_db[cfg.audit_collection].find_one({"_id": "pcrash"})["status"] == "rolled_back"


def test_intent_is_durable_and_readable_before_the_first_write(dbs, cfg, sink, command_recorder, stack):
    """Every insert is recorded (ids + content hash) with w: majority, j: true before the batch is written."""
    local_db, _, name = dbs
    client, rec = command_recorder(stack.mongo_prod_uri)
    _execute(cfg, local_db, client[name], sink, "pintent")
    cmds = [(n, c) for n, d, c in rec.commands if d == name]
    first_write = next(i for i, (n, c) in enumerate(cmds) if n in ("insert", "update") and c.get(n) == "companies")
    intents = [c for n, c in cmds[:first_write] if n == "update" and c.get("update") == cfg.backups_collection]
    assert intents and all(c["writeConcern"] == {"w": "majority", "j": True} for c in intents)


def test_a_rerun_finds_what_a_crash_left_and_rollback_is_idempotent(dbs, cfg, sink, caplog):
    local_db, prod_db, _ = dbs
    local_db.documents.delete_one({"_id": "d4"})
    before = db_hash(prod_db)
    _execute(cfg, local_db, prod_db, sink, "p-crashed")
    prod_db[cfg.audit_collection].update_one({"_id": "p-crashed"}, {"$set": {"status": "running"}})  # died midway
    caplog.set_level("WARNING")
    _execute(cfg, local_db, prod_db, sink, "p-next")  # the next writer finds it
    assert "found promotion p-crashed left 'running' by a crash" in caplog.text
    assert prod_db[cfg.audit_collection].find_one({"_id": "p-crashed"})["status"] == "interrupted"
    rb.rollback(cfg, prod_db, "p-next")
    rb.rollback(cfg, prod_db, "p-crashed")  # an interrupted promotion can still be undone exactly
    assert db_hash(prod_db) == before
    again = rb.rollback(cfg, prod_db, "p-crashed")  # idempotent: nothing written again
    assert all(r["note"] == "already rolled back" for r in again) and db_hash(prod_db) == before


def test_two_promotions_against_one_target_never_interleave(dbs, cfg, sink, monkeypatch):
    """Both run at once in threads; the lock makes one wait until the other released the target."""
    local_db, prod_db, _ = dbs
    local_db.documents.delete_one({"_id": "d4"})
    spans: dict[str, list[float]] = {}
    real = ex._write_collection

    def slow_write(cfg_, prod, pid, *a, **kw):
        spans.setdefault(pid, []).append(time.monotonic())
        time.sleep(0.3)
        out = real(cfg_, prod, pid, *a, **kw)
        spans[pid].append(time.monotonic())
        return out

    monkeypatch.setattr(ex, "_write_collection", slow_write)
    errors = []

    def run(pid):
        try:
            _execute(cfg, local_db, prod_db, sink, pid)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(pid,)) for pid in ("pa", "pb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    (a0, a1), (b0, b1) = (min(spans["pa"]), max(spans["pa"])), (min(spans["pb"]), max(spans["pb"]))
    assert a1 <= b0 or b1 <= a0, f"writes interleaved: pa {a0:.2f}-{a1:.2f}, pb {b0:.2f}-{b1:.2f}"
    assert prod_db[locks.LOCKS].count_documents({}) == 0  # released


def test_a_crashed_holders_lock_frees_itself_after_its_lease(mongo_prod, mongo_db_name):
    import datetime as dt

    db = mongo_prod[mongo_db_name]
    assert locks.try_acquire(db, "t", owner="run-1", ttl=dt.timedelta(seconds=1))
    assert locks.try_acquire(db, "t", owner="run-2") is None  # held
    with pytest.raises(locks.Locked, match="run-1"):
        locks.acquire(db, "t", owner="run-2", wait=0.2, poll=0.1)
    time.sleep(1.2)  # run-1 died: nobody renews its lease
    assert locks.try_acquire(db, "t", owner="run-2")["owner"] == "run-2"
    assert locks.release(db, "t", owner="run-1") is False and locks.release(db, "t", owner="run-2") is True
