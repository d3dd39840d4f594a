"""Promotion against the two real MongoDB wire servers: summary, dry run, execute, rerun, failures, rollback."""

from __future__ import annotations

import json

import pytest

from ferry.promotion import execute as ex
from ferry.promotion import rollback as rb
from ferry.promotion import sink as sink_mod
from ferry.promotion.plan import plan_all
from tests.promotion.conftest import GHOST, L_B, L_C, P_A, T0, db_hash

pytestmark = pytest.mark.integration

ALL = ["companies", "documents", "meta_summaries"]


def _run(cfg, local_db, prod_db, sink, pid="p1", on_conflict="skip", collections=ALL, queries=None, lookup=None, **kw):
    selection = ex.Selection(collections, queries or {}, on_conflict)
    run = ex.Attempt(pid, sink, params={"collections": collections}, triggered_by="test", **kw)
    return ex.execute(cfg, local_db, prod_db, selection, run, lookup=lookup)


@pytest.mark.parametrize("lookup", ["in", "scan"])
def test_summary_counts_match_reality(dbs, cfg, lookup):
    local_db, prod_db, _ = dbs
    rows = {p.spec.name: p.summary_row() for p in plan_all(cfg, local_db, prod_db, ALL, {}, "skip", lookup=lookup)}
    assert rows["companies"] == {
        "collection": "companies",
        "local_total": 3,
        "local_selected": 3,
        "prod_total": 1,
        "insert": 2,
        "skip": 1,
        "update": 0,
        "reject": 0,
    }
    assert (rows["documents"]["insert"], rows["documents"]["skip"], rows["documents"]["reject"]) == (2, 1, 1)
    assert (rows["meta_summaries"]["insert"], rows["meta_summaries"]["skip"]) == (1, 1)
    assert rows["documents"]["prod_total"] == 1 and rows["documents"]["local_total"] == 4


def test_planning_queries_production_once_per_chunk_not_per_document(dbs, cfg, command_recorder, stack):
    local_db, _, name = dbs
    client, rec = command_recorder(stack.mongo_prod_uri)
    plans = plan_all(cfg, local_db, client[name], ["companies"], {}, "skip", lookup="in")
    finds = [c for c in rec.commands if c[0] == "find" and c[2].get("find") == "companies"]
    assert len(finds) == 1 and plans[0].local_selected == 3
    assert finds[0][2]["filter"] == {"domain": {"$in": ["a.com", "b.com", "c.com"]}}


def test_dry_run_writes_nothing_and_reports_every_document(dbs, cfg, sink, command_recorder, stack):
    local_db, prod_db, name = dbs
    before = db_hash(prod_db)
    client, rec = command_recorder(stack.mongo_prod_uri)
    out = sink_mod.dry_run(cfg, local_db, client[name], ALL, {}, "skip", sink)
    assert rec.writes() == []
    assert db_hash(prod_db) == before
    lines = [json.loads(x) for x in open(out["report"])]
    assert len(lines) == 3 + 4 + 2
    orphan = next(x for x in lines if x["local_id"] == "d4")
    assert orphan["action"] == "reject" and "missing on both sides" in orphan["reason"]
    d1 = next(x for x in lines if x["local_id"] == "d1")
    assert d1["action"] == "insert"


def test_execute_inserts_skips_remaps_and_rerun_writes_nothing(dbs, cfg, sink, command_recorder, stack):
    local_db, prod_db, name = dbs
    res = _run(cfg, local_db, prod_db, sink)
    assert res["status"] == "failed"  # the orphan document is rejected, listed, not written
    assert [r["local_id"] for r in res["rejects"]] == ["d4"] and res["failures"] == []
    out = {r["collection"]: r for r in res["outcome"]}
    assert (out["companies"]["inserted"], out["companies"]["skipped"]) == (2, 1)
    assert (out["documents"]["inserted"], out["documents"]["skipped"], out["documents"]["rejected"]) == (2, 1, 1)

    companies = {d["domain"]: d for d in prod_db.companies.find()}
    assert companies["a.com"] == {"_id": P_A, "domain": "a.com", "name": "A (prod)", "updated_at": T0}  # untouched
    assert companies["b.com"]["_id"] == L_B and companies["c.com"]["_id"] == L_C
    docs = {d["url"]: d for d in prod_db.documents.find()}
    assert docs["https://a.com/u1"]["company_id"] == P_A  # remapped to production's company
    assert docs["https://b.com/u2"]["company_id"] == L_B
    assert docs["https://a.com/u3"]["title"] == "prod u3"  # duplicate skipped
    assert "https://x.com/u4" not in docs and prod_db.documents.count_documents({"company_id": GHOST}) == 0
    metas = {(m["company_id"], m["kind"]): m["text"] for m in prod_db.meta_summaries.find()}
    assert metas == {(P_A, "privacy"): "prod", (L_B, "terms"): "b terms"}
    audit = prod_db["_ferry_promotions"].find_one({"_id": "p1"})
    assert audit["triggered_by"] == "test" and audit["status"] == "failed" and audit["reject_count"] == 1
    assert audit["report_location"] == res["report"]

    # rerun: nothing to write to the promoted collections
    snapshot = db_hash(prod_db)
    client, rec = command_recorder(stack.mongo_prod_uri)
    res2 = _run(cfg, local_db, client[name], sink, pid="p2")
    data_writes = [w for w in rec.writes() if w[2].get(w[0]) in ALL]
    assert data_writes == []
    assert db_hash(prod_db) == snapshot
    assert all(r["inserted"] == 0 and r["updated"] == 0 for r in res2["outcome"])


def test_validator_and_unique_index_violations_are_reported_while_the_rest_land(
    mongo_local, mongo_prod, mongo_db_name, cfg, sink
):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    prod_db.create_collection(
        "companies", validator={"$jsonSchema": {"properties": {"name": {"bsonType": "string", "maxLength": 20}}}}
    )
    prod_db.companies.create_index("domain", unique=True)
    prod_db.companies.create_index("ticker", unique=True, sparse=True)
    prod_db.companies.insert_one({"_id": "p", "domain": "p.com", "name": "P", "ticker": "PPP"})
    local_db.companies.insert_many(
        [
            {"_id": "ok1", "domain": "ok1.com", "name": "fine"},
            {"_id": "long", "domain": "long.com", "name": "x" * 50},  # validator: maxLength
            {"_id": "tick", "domain": "tick.com", "name": "T", "ticker": "PPP"},  # unique index on ticker
            {"_id": "ok2", "domain": "ok2.com", "name": "fine too"},
        ]
    )
    res = _run(cfg, local_db, prod_db, sink, collections=["companies"])
    assert res["status"] == "failed"
    failed = {f["_id"]: f for f in res["failures"]}
    assert set(failed) == {"long", "tick"}
    assert failed["long"]["code"] == 121 and "validation" in failed["long"]["error"].lower()
    assert failed["tick"]["code"] == 11000 and "ticker" in failed["tick"]["error"]
    assert sorted(d["_id"] for d in prod_db.companies.find()) == ["ok1", "ok2", "p"]
    assert res["outcome"][0]["inserted"] == 2 and res["outcome"][0]["failed"] == 2


def test_great_expectations_rejects_bad_documents_before_writing(mongo_local, mongo_prod, mongo_db_name, cfg, sink):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    local_db.companies.insert_many(
        [
            {"_id": 1, "domain": "a.com", "name": "A"},
            {"_id": 2, "domain": "b.com"},
            {"_id": 3, "domain": "c.com", "name": 7},
        ]
    )
    res = _run(cfg, local_db, prod_db, sink, collections=["companies"])
    rejects = {r["local_id"]: r["reason"] for r in res["rejects"]}
    assert "expect_column_values_to_not_be_null:name" in rejects[2]
    assert "expect_column_values_to_be_in_type_list:name" in rejects[3]
    assert [d["_id"] for d in prod_db.companies.find()] == [1]


@pytest.mark.parametrize("on_conflict", ["overwrite", "update_if_newer"])
def test_rollback_restores_the_exact_prior_state(dbs, cfg, sink, on_conflict):
    local_db, prod_db, _ = dbs
    prod_db.companies.insert_one({"_id": "old", "domain": "c.com", "name": "C old", "extra": 1, "updated_at": T0})
    before = db_hash(prod_db)
    res = _run(cfg, local_db, prod_db, sink, pid="px", on_conflict=on_conflict)
    assert db_hash(prod_db) != before
    comp = {r["collection"]: r for r in res["outcome"]}["companies"]
    assert comp["updated"] == 2 and comp["inserted"] == 1  # a.com and c.com changed, b.com new
    c = prod_db.companies.find_one({"domain": "c.com"})
    assert c["name"] == "C" and c["_id"] == "old"
    assert ("extra" in c) == (on_conflict == "update_if_newer")  # $set keeps fields, replace does not

    rows = rb.rollback(cfg, prod_db, "px")
    assert db_hash(prod_db) == before
    assert {r["collection"]: (r["deleted"], r["restored"]) for r in rows}["companies"] == (1, 2)
    assert prod_db["_ferry_promotions"].find_one({"_id": "px"})["status"] == "rolled_back"
    rb.rollback(cfg, prod_db, "px")  # idempotent
    assert db_hash(prod_db) == before


def test_rollback_of_unknown_promotion_is_a_clear_error(mongo_prod, mongo_db_name, cfg):
    with pytest.raises(LookupError, match="no promotion 'nope'"):
        rb.rollback(cfg, mongo_prod[mongo_db_name], "nope")


def test_same_server_different_databases_and_filter(mongo_prod, mongo_db_name, cfg, sink):
    from tests.promotion.conftest import seed

    local_db, prod_db = mongo_prod[mongo_db_name + "_src"], mongo_prod[mongo_db_name]
    seed(local_db, prod_db)
    res = _run(cfg, local_db, prod_db, sink, collections=["companies"], queries={"companies": {"domain": "b.com"}})
    assert res["status"] == "succeeded"
    assert sorted(d["domain"] for d in prod_db.companies.find()) == ["a.com", "b.com"]


def test_child_of_a_parent_not_promoted_in_this_run_is_rejected(dbs, cfg, sink):
    local_db, prod_db, _ = dbs
    res = _run(cfg, local_db, prod_db, sink, collections=["documents"])
    rejects = {r["local_id"]: r["reason"] for r in res["rejects"]}
    assert "not in production and not promoted in this run" in rejects["d2"]  # b.com exists only locally
    assert prod_db.documents.find_one({"url": "https://a.com/u1"})["company_id"] == P_A


def test_id_collision_is_a_reported_failure_and_rollback_never_deletes_the_production_document(
    mongo_local, mongo_prod, mongo_db_name, cfg, sink
):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    prod_db.companies.insert_one({"_id": 7, "domain": "prod-only.com", "name": "Prod"})
    local_db.companies.insert_many(
        [{"_id": 7, "domain": "new.com", "name": "New"}, {"_id": 8, "domain": "n8.com", "name": "N8"}]
    )
    before = db_hash(prod_db)
    res = _run(cfg, local_db, prod_db, sink, pid="pc", collections=["companies"])  # no unique index: upsert path
    assert [(f["_id"], f["code"]) for f in res["failures"]] == [("7", 11000)]
    assert prod_db.companies.find_one({"_id": 7})["domain"] == "prod-only.com"
    rb.rollback(cfg, prod_db, "pc")
    assert db_hash(prod_db) == before


def test_rollback_after_a_crash_between_write_and_confirmation_uses_content_hashes(dbs, cfg, sink):
    local_db, prod_db, _ = dbs
    before = db_hash(prod_db)
    _run(cfg, local_db, prod_db, sink, pid="pk", collections=["companies"])
    backups = prod_db["_ferry_promotion_backups"]
    backups.update_many({"promotion_id": "pk", "kind": "inserts"}, {"$set": {"inserted": None}})  # as if it crashed
    prod_db.companies.update_one({"domain": "c.com"}, {"$set": {"name": "edited after promotion"}})
    rows = rb.rollback(cfg, prod_db, "pk")
    assert {r["collection"]: r["deleted"] for r in rows}["companies"] == 1  # b.com; the edited c.com is kept
    assert sorted(d["domain"] for d in prod_db.companies.find()) == ["a.com", "c.com"]
    prod_db.companies.delete_one({"domain": "c.com"})
    assert db_hash(prod_db) == before
