"""ferry_smoke end to end: what landed in each store, and a rerun that duplicates nothing."""

from __future__ import annotations

import json

import pytest

from ferry_dev import dagtest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_smoke_dag_lands_one_record_per_store_and_is_idempotent(
    airflow_conns, stack, pg_database, mongo_local, s3, duckdb_path, mongo_db_name
):
    bucket = "ferry-smoke-test"
    conf = {"run_key": "k1", "mongo_db": mongo_db_name, "bucket": bucket}
    for _ in range(2):  # the rerun must replace, not add
        dr = dagtest.run_dag("ferry_smoke", conf)
        assert dr.state == "success"

    with stack.pg.connect(pg_database) as conn:
        assert conn.execute("SELECT run_key FROM ferry_smoke").fetchall() == [("k1",)]
    docs = list(mongo_local[mongo_db_name].smoke_runs.find())
    assert [d["_id"] for d in docs] == ["k1"] and docs[0]["postgres"]["rows"] == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="smoke/")["Contents"]]
    assert keys == ["smoke/k1.json"]
    body = json.loads(s3.get_object(Bucket=bucket, Key="smoke/k1.json")["Body"].read())
    assert body[1]["db"] == mongo_db_name

    import duckdb

    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rows = con.execute("SELECT run_key, summary FROM smoke_runs").fetchall()
    assert [r[0] for r in rows] == ["k1"]
    assert [s["store"] for s in json.loads(rows[0][1])] == ["postgres", "mongo", "s3"]
    assert dagtest.xcom(dr, "duckdb")[-1]["rows"] == 1


def test_an_unknown_conf_key_fails_the_run_before_any_write(
    airflow_conns, stack, pg_database, mongo_local, s3, duckdb_path, mongo_db_name
):
    conf = {"run_key": "typo", "mongo_db": mongo_db_name, "bucket": "ferry-smoke-typo", "dryrun": True}
    dr = dagtest.run_dag("ferry_smoke", conf, check=False)
    states = dagtest.task_states(dr)
    assert dr.state == "failed" and states["postgres"] == "failed"
    assert {s for t, s in states.items() if t != "postgres"} <= {"upstream_failed"}
    with stack.pg.connect(pg_database) as conn:  # nothing written anywhere
        assert conn.execute("SELECT to_regclass('ferry_smoke')").fetchone()[0] is None
    assert mongo_db_name not in mongo_local.list_database_names()
    assert "ferry-smoke-typo" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert not duckdb_path.exists()


def test_unknown_conf_keys_are_named_with_the_accepted_ones():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from ferry.params import refuse_unknown_conf

    dag = SimpleNamespace(dag_id="d", params={"dry_run": True, "mode": "summary"})
    ctx = {"task": SimpleNamespace(is_teardown=False), "dag": dag, "dag_run": SimpleNamespace(conf={"dryrun": 1})}
    with pytest.raises(AirflowFailException, match=r"unknown param\(s\) 'dryrun'.*accepted: dry_run, mode"):
        refuse_unknown_conf(ctx)
    refuse_unknown_conf({**ctx, "dag_run": SimpleNamespace(conf={"dry_run": False})})
    refuse_unknown_conf({**ctx, "task": SimpleNamespace(is_teardown=True)})  # teardowns still release


def test_the_smoke_request_refuses_a_foreign_bucket_and_a_system_database():
    from ferry.request import RequestError
    from ferry.smoke.request import SmokeRequest

    assert SmokeRequest.of({"run_key": ""}).key("manual__1") == "manual__1"
    with pytest.raises(RequestError, match="'admin' is a MongoDB system.*bucket 'prod-data' is not allowed"):
        SmokeRequest.of({"bucket": "prod-data", "mongo_db": "admin"})
