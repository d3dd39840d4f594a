"""ferry.audit: one record shape; ``Run`` carries a run's identity into every record it writes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ferry import audit


def _ctx(**dag_run):
    dr = SimpleNamespace(**{"dag_id": "prod_promotion", "triggering_user_name": None, "run_type": "manual", **dag_run})
    return {"dag_run": dr, "run_id": "manual__2026-11-02", "params": {"mode": "execute"}}


def test_run_of_a_task_context():
    assert audit.Run.of(_ctx(triggering_user_name="alice")) == audit.Run(
        dag_id="prod_promotion", run_id="manual__2026-11-02", who="alice"
    )
    assert audit.Run.of(_ctx()).who == "manual"  # no user: the run type


def test_run_record_is_the_core_record_of_that_run():
    run = audit.Run(dag_id="nightly_sales_sync", run_id="scheduled__1", who="scheduled")
    rec = run.record(family="sales", outcome="success", params={"days": 1}, counts={"rows": 3}, day="2026-11-01")
    assert rec == audit.record(
        id="scheduled__1",
        family="sales",
        dag_id="nightly_sales_sync",
        run_id="scheduled__1",
        who="scheduled",
        outcome="success",
        params={"days": 1},
        counts={"rows": 3},
        finished_at=rec["finished_at"],
        day="2026-11-01",
    )
    assert list(rec)[:10] == ["_id", *audit.CORE]
    assert (
        run.record(id="scheduled__1:2026-11-01", family="sales", outcome="failed")["_id"] == "scheduled__1:2026-11-01"
    )


def test_run_record_refuses_unknown_outcomes_and_core_fields_as_details():
    run = audit.Run(dag_id="d", run_id="r")
    with pytest.raises(ValueError, match="outcome"):
        run.record(family="x", outcome="maybe")
    with pytest.raises(ValueError, match="core fields"):
        run.record(family="x", outcome="success", _id="other")
