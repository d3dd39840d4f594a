"""A refused approval (the triggering user answered, or nobody but them could) is audited in production and
fails the run with the reason; nothing is written (ferry.promotion.runs.outcome)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from ferry.approvals import ANSWER_KEY
from tests.promotion.conftest import db_hash

pytestmark = [pytest.mark.integration]


def _ctx(name: str, answer: dict) -> dict:
    run = SimpleNamespace(dag_id="prod_promotion", run_id="manual__refused", triggering_user_name="alice",
                          run_type="manual", start_date=None)  # fmt: skip
    states = {"approve": "failed", "execute": "upstream_failed"}
    ti = SimpleNamespace(
        xcom_pull=lambda task_ids, key="return_value": answer if key == ANSWER_KEY else None,
        get_task_states=lambda dag_id, run_ids: {run.run_id: states},
    )
    params = {"mode": "execute", "confirm": name, "source_db": name, "target_db": name, "require_approval": True}
    return {"ti": ti, "dag_run": run, "run_id": run.run_id, "params": params}


def test_a_self_approval_is_audited_as_refused(airflow_conns, dbs):
    from ferry.promotion import runs

    _local, prod_db, name = dbs
    before = db_hash(prod_db)
    refused = "'alice' triggered this run and may not approve it too (four eyes ...)"
    answer = {"chosen_options": ["Approve"], "responded_by_user": {"id": "alice", "name": "alice"},
              "responded_at": "2026-12-06T10:00:00+00:00", "refused": refused}  # fmt: skip
    with pytest.raises(AirflowFailException, match="promotion manual__refused was refused: 'alice' triggered this run"):
        runs.outcome(**_ctx(name, answer))
    rec = prod_db["_ferry_promotions"].find_one({"_id": "manual__refused"})
    assert (rec["status"], rec["outcome"], rec["answer"]) == ("refused", "rejected", "Approve")
    assert (rec["who"], rec["triggered_by"], rec["rejected_by"], rec["refused"]) == ("alice", "alice", "alice", refused)
    prod_db["_ferry_promotions"].delete_one({"_id": "manual__refused"})
    assert db_hash(prod_db) == before


def test_nobody_to_approve_is_audited_as_refused(airflow_conns, dbs):
    from ferry.promotion import runs

    _local, prod_db, name = dbs
    with pytest.raises(AirflowFailException, match="was refused: nobody may approve"):
        runs.outcome(**_ctx(name, {"refused": "nobody may approve this run: ..."}))
    rec = prod_db["_ferry_promotions"].find_one({"_id": "manual__refused"})
    assert rec["status"] == "refused" and rec["rejected_by"] is None and rec["triggered_by"] == "alice"


def test_a_rejected_rollback_is_kept_in_the_promotions_record_and_undoes_nothing(airflow_conns, dbs):
    from ferry.promotion import runs

    _local, prod_db, name = dbs
    prod_db["_ferry_promotions"].insert_one({"_id": "p1", "status": "succeeded"})
    before = db_hash(prod_db)
    answer = {"chosen_options": ["Reject"], "responded_by_user": {"id": "bob", "name": "bob"},
              "responded_at": "2026-12-06T11:00:00+00:00"}  # fmt: skip
    ctx = _ctx(name, answer)
    ctx["params"] = {"promotion_id": "p1", "target_db": name, "confirm": name, "require_approval": True}
    for _ in range(2):  # a retried task records it once
        with pytest.raises(AirflowFailException, match="the rollback of p1 was rejected: rejected by bob at"):
            runs.rollback_outcome(**ctx)
    rec = prod_db["_ferry_promotions"].find_one({"_id": "p1"})
    assert rec["status"] == "succeeded" and rec["rollback_requests"] == [
        {"run_id": "manual__refused", "outcome": "rejected", "triggered_by": "alice", "answered_by": "bob",
         "at": "2026-12-06T11:00:00+00:00", "reason": None}
    ]  # fmt: skip
    prod_db["_ferry_promotions"].update_one({"_id": "p1"}, {"$unset": {"rollback_requests": 1}})
    assert db_hash(prod_db) == before


def test_a_rejected_dataset_promotion_is_audited_and_writes_nothing(airflow_conns, mongo_prod, mongo_db_name):
    from ferry.catalog import runs

    answer = {"chosen_options": ["Reject"], "responded_by_user": {"id": "bob", "name": "bob"},
              "responded_at": "2026-12-06T12:00:00+00:00"}  # fmt: skip
    ctx = _ctx(mongo_db_name, answer)
    ctx["params"] = {"target_db": mongo_db_name, "dry_run": False, "require_approval": True}
    ctx["dag_run"].dag_id = "dataset_promotion"
    with pytest.raises(AirflowFailException, match="was rejected: rejected by bob at 2026-12-06T12:00"):
        runs.outcome(**ctx)
    assert mongo_prod[mongo_db_name].list_collection_names() == ["_ferry_catalog_runs"]  # only the audit
    rec = mongo_prod[mongo_db_name]["_ferry_catalog_runs"].find_one({"_id": "manual__refused"})
    assert (rec["outcome"], rec["status"], rec["who"], rec["rejected_by"]) == ("rejected", "rejected", "alice", "bob")
