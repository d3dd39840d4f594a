"""Secrets never reach a log, an XCom, an audit record or an artifact (issue 28 item 5). The session's
deployment has a distinct secret in every connection that carries one (conftest.SECRETS). This module runs
last in the package (after the ETL, promotion, sales and HITL runs of the other modules) and adds runs of
its own that use each connection: the smoke DAG (PostgreSQL, MongoDB, S3), a sales load through the API
(the API key), a failing run whose alert goes to the webhook and a dataset promotion to a real local PDS
(the account's password, in a connection added through the REST API). Then it reads everything a run left:
every file under the deployment (task logs, component logs, the OpenLineage file), the metadata DB's XComs
and run confs, every Ferry bookkeeping collection on both MongoDB servers, every S3 object."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.deployment.conftest import SECRETS, run_dag

pytestmark = [pytest.mark.deployment, pytest.mark.integration]
SKIP_FILES = {"passwords.json"}  # the UI users' passwords: Airflow's own file, not a connection's secret
SKIP_SUFFIXES = (".duckdb", ".wal", ".sock", ".pid")


def _files(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and path.name not in SKIP_FILES and not path.name.endswith(SKIP_SUFFIXES):
            yield str(path.relative_to(root)), path.read_bytes()


def _metadata(stack, db: str):
    with stack.pg.connect(db) as conn:
        for table, sql in [
            ("xcom", "SELECT dag_id || '/' || run_id || '/' || task_id || '/' || key, value::text FROM xcom"),
            ("dag_run.conf", "SELECT dag_id || '/' || run_id, conf::text FROM dag_run"),
        ]:
            for where, value in conn.execute(sql).fetchall():
                yield f"{table} {where}", (value or "").encode()


def _mongo(clients: dict):
    from bson import json_util

    from ferry.request import SYSTEM_DATABASES

    for role, client in clients.items():
        for db_name in client.list_database_names():
            if db_name in SYSTEM_DATABASES:
                continue
            db = client[db_name]
            for coll in db.list_collection_names():
                if coll.startswith("_ferry") or db_name.endswith("__ferry"):
                    docs = list(db[coll].find().limit(20_000))
                    yield f"mongo-{role} {db_name}.{coll}", json_util.dumps(docs).encode()


def _s3(s3):
    for bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                if obj["Size"] <= 20 * 2**20:
                    yield f"s3://{bucket}/{obj['Key']}", s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()


def _promote_to_the_atmosphere(deployment, api, stack, s3, tmp_path) -> str:
    """A dataset promotion to a real local PDS; returns the account password the run used. When the session's
    PDS was up before the deployment started, the workers have its ``ferry_atproto`` in their environment (it
    wins over the metadata DB): that account is used. Else a new account whose password is
    ``SECRETS["atproto password"]``, with the connections added through the REST API."""
    import uuid

    from atdata.local import Index
    from atproto import Client
    from redis import Redis

    from ferry.catalog.atmosphere import ENTRY_COLLECTION, list_records, login
    from ferry_dev.devstack import atdata_index_conn_json
    from tests.catalog.test_atmosphere import seed_index

    pds, redis_url = stack.start_pds(), stack.start_redis()
    preset = deployment.env.get("AIRFLOW_CONN_FERRY_ATPROTO")
    if preset:
        handle, password = json.loads(preset)["login"], json.loads(preset)["password"]
    else:
        handle, password = f"s{uuid.uuid4().hex[:10]}.test", SECRETS["atproto password"]
        Client(base_url=pds["pds_url"]).com.atproto.server.create_account(
            {"handle": handle, "email": f"{handle}@ferry.test", "password": password}
        )
    Redis.from_url(redis_url).flushdb()  # atdata's keys are fixed
    bucket = f"ferry-secrets-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    seed_index(Index(redis=Redis.from_url(redis_url), atmosphere=None), stack, bucket, tmp_path, names=("feat-s",))
    index = json.loads(atdata_index_conn_json(redis_url))
    for conn_id, body in (
        ("ferry_atproto", {"conn_type": "http", "host": pds["pds_url"], "login": handle, "password": password}),
        ("ferry_atdata_index", {**index, "extra": json.dumps(index["extra"])}),
    ):
        if f"AIRFLOW_CONN_{conn_id.upper()}" not in deployment.env:
            api.request("POST", "/api/v2/connections", {"connection_id": conn_id, **body})
    before = len(list_records(login(pds["pds_url"], handle, password), ENTRY_COLLECTION))
    db = f"ferry_secrets_{uuid.uuid4().hex[:8]}"
    run_id, state = run_dag(api, "dataset_promotion", {"target": "atmosphere", "target_db": db, "dry_run": False})
    assert state == "success", api.failure_logs("dataset_promotion", run_id)
    assert len(list_records(login(pds["pds_url"], handle, password), ENTRY_COLLECTION)) == before + 1  # published
    return password


def test_no_secret_in_any_log_xcom_audit_record_or_artifact(
    deployment, api, stack, mongo_prod, mongo_local, s3, sales_api_server, webhook_server, tmp_path
):
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    sales_api_server.seed(yesterday, 1, 5)
    api_calls, alerts = len(sales_api_server.requests), len(webhook_server.payloads)
    assert run_dag(api, "ferry_smoke")[1] == "success"
    assert run_dag(api, "sales_manual_load", {"target_date": str(yesterday)})[1] == "success"
    assert run_dag(api, "ferry_smoke", {"run_key": "secrets", "dryrun": True})[1] == "failed"  # alerts
    assert len(sales_api_server.requests) > api_calls, "the sales API (its key) was not used"
    for _ in range(60):
        if len(webhook_server.payloads) > alerts:
            break
        time.sleep(1)
    assert len(webhook_server.payloads) > alerts, "the failure alert (the webhook URL) was not sent"
    secrets = {**SECRETS, "atproto password": _promote_to_the_atmosphere(deployment, api, stack, s3, tmp_path)}

    places = [
        *_files(deployment.root),
        *_metadata(stack, deployment.metadata_db),
        *_mongo({"prod": mongo_prod, "local": mongo_local}),
        *_s3(s3),
    ]
    assert len(places) > 30 and any(p.startswith("airflow/logs/") for p, _ in places)  # task logs were read
    hits = [(name, where) for where, data in places for name, secret in secrets.items() if secret.encode() in data]
    assert hits == [], f"secrets found: {hits[:20]}"
    print(f"\nsecrets: {len(secrets)} secrets, {len(places)} logs/XComs/records/objects, 0 hits")
