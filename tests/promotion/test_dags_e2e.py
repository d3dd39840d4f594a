"""prod_promotion (dry run, execute with approval, guards), prod_promotion_rollback and dataset_promotion via dag.test()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry_dev import dagtest
from tests.promotion.conftest import P_A, db_hash

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_prod_promotion_dry_run_then_execute_then_rollback(airflow_conns, dbs, s3, s3_bucket):
    local_db, prod_db, name = dbs
    local_db.documents.delete_one({"_id": "d4"})  # the orphan (rejects fail execute; tested elsewhere)
    before = db_hash(prod_db)
    # collections given on every run: in one process, an array param from an earlier dag.test() run leaked
    # into the next run's defaults (the DagBag is cached by ferry_dev.dagtest)
    base = {"source_db": name, "target_db": name, "collections": ["companies", "documents", "meta_summaries"]}

    dr = dagtest.run_dag("prod_promotion", {**base, "mode": "summary", "collections": ["companies"]})
    summ = dagtest.xcom(dr, "plan")
    assert summ["report"] is None and "| companies" in summ["table"]
    assert [(r["collection"], r["local_total"], r["prod_total"], r["insert"], r["skip"]) for r in summ["summary"]] == [
        ("companies", 3, 1, 2, 1)
    ]

    dr = dagtest.run_dag("prod_promotion", {**base, "mode": "dry_run", "report_url": f"s3://{s3_bucket}/promotion"})
    assert dagtest.task_states(dr)["execute"] == "skipped"
    planned = dagtest.xcom(dr, "plan")
    assert {r["collection"]: r["insert"] for r in planned["summary"]} == {
        "companies": 2,
        "documents": 2,
        "meta_summaries": 1,
    }
    assert planned["report"].startswith(f"s3://{s3_bucket}/promotion/")
    key = planned["report"].split("/", 3)[3]
    lines = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode().splitlines()
    assert len(lines) == 3 + 3 + 2 and json.loads(lines[0])["collection"] == "companies"
    assert db_hash(prod_db) == before and "_ferry_promotions" not in prod_db.list_collection_names()

    dr = dagtest.run_dag(
        "prod_promotion",
        {**base, "mode": "execute", "confirm": name, "require_approval": True},
        mark_success_pattern="approve",
    )
    res = dagtest.xcom(dr, "execute")
    assert res["status"] == "succeeded"
    assert {r["collection"]: r["inserted"] for r in res["outcome"]} == {
        "companies": 2,
        "documents": 2,
        "meta_summaries": 1,
    }
    assert prod_db.documents.find_one({"url": "https://a.com/u1"})["company_id"] == P_A
    audit = prod_db["_ferry_promotions"].find_one({"_id": dr.run_id})
    assert audit["status"] == "succeeded" and audit["params"]["mode"] == "execute"
    assert Path(audit["report_location"]).exists()

    undo = {"promotion_id": dr.run_id, "target_db": name, "confirm": name}
    dr2 = dagtest.run_dag("prod_promotion_rollback", {**undo, "confirm": "production"}, check=False)
    assert dagtest.task_states(dr2)["check_rollback"] == "failed"  # checked before anyone is asked
    assert dagtest.task_states(dr2)["rollback"] == "upstream_failed" and dr2.state == "failed"
    dr2 = dagtest.run_dag(
        "prod_promotion_rollback", {**undo, "require_approval": True}, mark_success_pattern="approve_rollback"
    )
    assert "| promotion_id" in dagtest.xcom(dr2, "check_rollback")["table"]  # what the approver is shown
    assert {r["collection"]: r["deleted"] for r in dagtest.xcom(dr2, "rollback")}["documents"] == 2
    assert db_hash(prod_db) == before
    rec = prod_db["_ferry_promotions"].find_one({"_id": dr.run_id})
    assert rec["status"] == "rolled_back" and rec["rollback_by"]["run_id"] == dr2.run_id


@pytest.mark.parametrize(
    "conf",
    [{"mode": "execute", "confirm": "production"}, {"mode": "dry_run", "filter": {"$where": "sleep(1000)"}}],
    ids=["wrong-confirm", "where-filter"],
)
def test_prod_promotion_guards_refuse_before_any_write(airflow_conns, dbs, conf):
    """The messages themselves are asserted in test_unit.py (check_guards, filters.parse)."""
    local_db, prod_db, name = dbs
    before = db_hash(prod_db)
    dr = dagtest.run_dag("prod_promotion", {"source_db": name, "target_db": name, **conf}, check=False)
    states = dagtest.task_states(dr)
    assert states["check"] == "failed" and states["plan"] in ("upstream_failed", None)
    assert db_hash(prod_db) == before and "_ferry_promotions" not in prod_db.list_collection_names()
