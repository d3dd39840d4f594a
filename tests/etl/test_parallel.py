"""also_publish_to: the same published load in parallel databases, each by its own write-audit-publish; a
failure in one leaves the others published and a rerun finishes only what is missing."""

from __future__ import annotations

import pytest

from ferry import hashing, locks
from ferry.etl.names import meta_db
from ferry_dev import dagtest
from ferry_dev import etl_demodata as demodata

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_parallel_databases_and_a_failure_in_one(
    airflow_conns, stack, pg_database, mongo_local, mongo_db_name, s3_bucket, monkeypatch
):
    from ferry.etl import contract_store as cs

    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=12, campaigns_per=2, items_per=2, tags_per=1)
    copies = [f"{mongo_db_name}-a", f"{mongo_db_name}-test"]
    conf = {
        "mongo_db": mongo_db_name,
        "bucket": s3_bucket,
        "batch_size": 10,
        "source": "direct",
        "refresh_strategy": "full",
        "schema_change_policy": "auto_safe",
        "apply_validators": False,
        "push_to_s3": False,
        "also_publish_to": copies,
    }
    meta = mongo_local[meta_db(mongo_db_name)]
    try:
        # a fault in the second database: another writer holds its lock past our wait
        monkeypatch.setenv("FERRY_LOCK_WAIT_SECONDS", "1")
        assert locks.try_acquire(meta, f"etl:{copies[1]}", owner="someone-else")
        dr = dagtest.run_dag("production_etl", conf, check=False)
        states = dagtest.task_states(dr)
        assert states["publish"] == "success" and states["publish_parallel"] == "failed"
        primary = hashing.db_digest(mongo_local[mongo_db_name], ["accounts", "campaigns"])
        assert primary["campaigns"]["count"] == 24
        assert hashing.db_digest(mongo_local[copies[0]], ["accounts", "campaigns"]) == primary  # published
        assert "campaigns" not in mongo_local[copies[1]].list_collection_names()  # untouched
        assert cs.latest(copies[0])["version"] == cs.latest(mongo_db_name)["version"]
        assert cs.latest(copies[1]) is None
        run = meta["_ferry_etl_runs"].find_one({"_id": dr.run_id})
        assert run["status"] == "failed" and run["failed_tasks"] == ["publish_parallel"]

        # the lock is free again: a rerun finishes only the missing database
        locks.release(meta, f"etl:{copies[1]}", owner="someone-else")
        dr = dagtest.run_dag("production_etl", conf)
        rows = {r["database"]: r for r in dagtest.xcom(dr, "publish_parallel")}
        assert rows[copies[0]]["result"] == "already equal (nothing to do)" and rows[copies[0]]["backup"] == ""
        assert rows[copies[1]]["result"] == "published" and rows[copies[1]]["backup"]
        for db in [mongo_db_name, *copies]:  # three identical databases, each with the same contract
            assert hashing.db_digest(mongo_local[db], ["accounts", "campaigns"]) == primary
            assert cs.latest(db)["version"] == dagtest.xcom(dr, "contract")["version"]
        assert mongo_local[copies[1]].campaigns.index_information().keys() == (
            mongo_local[mongo_db_name].campaigns.index_information().keys()
        )
        # each parallel database has its own backup version, restorable with production_etl_rollback
        backed = {v["db"] for v in meta["_ferry_etl_versions"].find()}
        assert {mongo_db_name, copies[1]} <= backed
    finally:
        for db in copies:
            mongo_local.drop_database(db)
            mongo_local.drop_database(db + "__ferry_staging")
