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
