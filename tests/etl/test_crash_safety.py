"""production_etl crash safety through the DAG: write-audit-publish, recovery on rerun, one writer per target."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from ferry import hashing, locks
from ferry.etl import load
from ferry.etl.names import RUNS, meta_db
from ferry_dev import dagtest
from ferry_dev import etl_demodata as demodata

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CONF = {"batch_size": 10, "source": "direct", "refresh_strategy": "full", "schema_change_policy": "auto_safe"}


@pytest.fixture
def seeded(airflow_conns, stack, pg_database, mongo_local, mongo_db_name, s3_bucket):
    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=12, campaigns_per=2, items_per=2, tags_per=1)
    return {**CONF, "mongo_db": mongo_db_name, "bucket": s3_bucket}


def test_a_failed_check_leaves_the_target_untouched_and_keeps_staging(seeded, stack, pg_database, mongo_local):
    db = mongo_local[seeded["mongo_db"]]
    dagtest.run_dag("production_etl", seeded)
    before = hashing.db_digest(db)
    with stack.pg.connect(pg_database) as conn:  # account 3 cannot be converted: quarantined; its campaigns dangle
        conn.execute("UPDATE accounts SET balance = 'NaN' WHERE id = 3")
    dr = dagtest.run_dag("production_etl", seeded, check=False)
    states = dagtest.task_states(dr)
    assert (states["load"], states["validate"], states["publish"]) == ("success", "failed", "upstream_failed")
    assert hashing.db_digest(db) == before  # readers still see the last good load
    staging = mongo_local[load.staging_db(seeded["mongo_db"])]
    assert staging.accounts.count_documents({}) == 11  # kept for inspection
    run = mongo_local[meta_db(seeded["mongo_db"])][RUNS].find_one({"_id": dr.run_id})
    assert run["outcome"] == "failed" and run["failed_tasks"] == [
        "publish",
        "publish_contract",
        "publish_parallel",
        "push_s3",
        "validate",
    ]
    assert run["staging_kept"] == staging.name
    assert mongo_local[meta_db(seeded["mongo_db"])][locks.LOCKS].count_documents({}) == 0  # the teardown released it


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_rerun_finds_what_a_crashed_run_left(seeded, stack, mongo_local):
    meta = mongo_local[meta_db(seeded["mongo_db"])]
    stack.pg.create_database("ferry_etl_scratch_crashed_run")
    meta[RUNS].insert_one(
        {
            "_id": "crashed-run",
            "outcome": "running",
            "status": "running",
            "target_db": seeded["mongo_db"],
            "source": {"database": "ferry_etl_scratch_crashed_run"},
        }
    )
    mongo_local[load.staging_db(seeded["mongo_db"])].accounts.insert_one({"_id": "half-loaded"})
    seen = _Messages()
    logging.getLogger("ferry.etl").addHandler(seen)  # Airflow's logging set-up may not propagate to caplog
    try:
        dagtest.run_dag("production_etl", seeded)
    finally:
        logging.getLogger("ferry.etl").removeHandler(seen)
    assert any("found run crashed-run left running by a crash" in m for m in seen.messages), seen.messages
    assert any("left by an earlier run" in m and "accounts" in m for m in seen.messages), seen.messages
    assert meta[RUNS].find_one({"_id": "crashed-run"})["status"] == "interrupted"
    with stack.pg.connect() as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = 'ferry_etl_scratch_crashed_run'").fetchone() is None
        )
    assert mongo_local[seeded["mongo_db"]].accounts.count_documents({}) == 12


def test_a_rollback_waits_for_the_etl_run_holding_the_target(seeded, mongo_local, monkeypatch):
    dr = dagtest.run_dag("production_etl", seeded)
    version = dagtest.xcom(dr, "backup")["version"]
    meta = mongo_local[meta_db(seeded["mongo_db"])]
    # another production_etl run holds the target (e.g. between its load and its publish)
    assert locks.try_acquire(
        meta, f"etl:{seeded['mongo_db']}", owner="etl-run-2", dag_id="production_etl", ttl=dt.timedelta(minutes=5)
    )
    before = hashing.db_digest(mongo_local[seeded["mongo_db"]])
    monkeypatch.setenv("FERRY_LOCK_WAIT_SECONDS", "3")
    dr = dagtest.run_dag("production_etl_rollback", {"mongo_db": seeded["mongo_db"], "version": version}, check=False)
    assert dagtest.task_states(dr)["restore"] == "failed"
    assert hashing.db_digest(mongo_local[seeded["mongo_db"]]) == before
    locks.release(meta, f"etl:{seeded['mongo_db']}", owner="etl-run-2")
    dagtest.run_dag("production_etl_rollback", {"mongo_db": seeded["mongo_db"], "version": version})
