"""One real Airflow deployment per test session (ferry_dev.deployment): PostgreSQL metadata DB,
api-server, scheduler, dag-processor, triggerer, CeleryExecutor on Redis with two workers whose local
folders differ. The tests drive it as users do: REST API, `airflow` CLI, and a real browser."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from ferry_dev.deployment import Deployment
from tests.sales.conftest import API_KEY, SalesApi, Webhook

pytestmark = [pytest.mark.deployment]
DAG_IDS = (
    "ferry_smoke",
    "production_etl",
    "production_etl_rollback",
    "prod_promotion",
    "prod_promotion_rollback",
    "dataset_promotion",
    "dev_db_structure_clone",
    "dev_db_drift_check",
    "nightly_sales_sync",
    "sales_manual_load",
    "import_users",
    "sales_health_check",
    "sales_backup",
    "sales_backup_retention",
)
PG_DB = f"ferry_deploy_prod_{os.getpid()}"  # per test process: two checkouts may test at once
#: A distinct secret in every connection that carries one (test_secrets.py greps every log, XCom, audit
#: record and artifact for each). The test servers accept any value: moto any key, a trust-auth PostgreSQL
#: any password, the webhook any path.
SECRETS = {
    "s3 secret key": "ferry-s3-secret-7f3a9c1e",
    "webhook url path": "/hook/T0FERRY-webhook-secret-b81d",
    "postgres password": "ferry-pg-secret-5e2c40aa",
    "sales api key": API_KEY,
    "atproto password": "ferry-atproto-secret-3d91b7c4",  # test_secrets.py adds ferry_atproto through the API
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/deployment/" in str(item.fspath):
            item.add_marker(pytest.mark.deployment)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def sales_api_server():
    api = SalesApi()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    api.seed(yesterday, 1, 20)  # what a manual nightly_sales_sync with defaults loads
    yield api
    api.close()


@pytest.fixture(scope="package")
def webhook_server():
    hook = Webhook()
    yield hook
    hook.close()


# package scope: the deployment (its scheduler runs the hourly health check, the nightly sync...) stops when the
# deployment tests end, so it writes nothing into the shared stack while later modules compare digests of it
@pytest.fixture(scope="package")
def deployment(stack, tmp_path_factory, sales_api_server, webhook_server):
    from ferry_dev import etl_demodata as demodata

    stack.pg.create_database(PG_DB, drop=True)
    with stack.pg.connect(PG_DB) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=30, campaigns_per=2, items_per=2, tags_per=1)
    conns = stack.connection_env(pg_db=PG_DB)
    s3 = {**json.loads(conns["AIRFLOW_CONN_FERRY_S3"]), "password": SECRETS["s3 secret key"]}
    pg = json.loads(conns["AIRFLOW_CONN_FERRY_PG_PROD"])
    if not pg.get("password"):  # a trust-auth server ignores it; one that needs a password has its own secret
        pg["password"] = SECRETS["postgres password"]
    else:
        SECRETS["postgres password"] = pg["password"]
    extra = {
        "AIRFLOW_CONN_FERRY_SALES_API": json.dumps(
            {"conn_type": "http", "host": sales_api_server.url, "password": API_KEY}
        ),
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK": json.dumps(
            {"conn_type": "slackwebhook", "password": webhook_server.url + SECRETS["webhook url path"]}
        ),
        "AIRFLOW_CONN_FERRY_S3": json.dumps(s3),
        "AIRFLOW_CONN_FERRY_PG_PROD": json.dumps(pg),
    }
    started = time.monotonic()
    dep = Deployment.start(stack, tmp_path_factory.mktemp("deployment"), pg_db=PG_DB, extra_env=extra)
    try:
        api = dep.client()
        for dag_id in DAG_IDS:
            api.wait_dag(dag_id, timeout=240)
        print(f"\ndeployment up and every DAG parsed in {time.monotonic() - started:.0f}s ({dep.url})")
        yield dep
    finally:
        dep.close()
        stack.pg.drop_database(PG_DB)


@pytest.fixture(scope="package")
def api(deployment):
    return deployment.client("admin")


@pytest.fixture(scope="package")
def approver(deployment):
    return deployment.client("approver")


def run_dag(api, dag_id: str, conf: dict | None = None, timeout: float = 420) -> tuple[str, str]:
    """Unpause, trigger as the form does, wait: (run_id, final state)."""
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, conf)
    return run_id, api.wait_run(dag_id, run_id, timeout)


def assert_promoted_by_operator_approved_by_approver(api, stack, promo_db: str, run_id: str) -> None:
    """The seeded promotion (``ferry_dev.demo.promotion``) ran to success once approved: prod holds the 3
    companies and the audit names the operator who triggered it and the approver."""
    assert api.wait_run("prod_promotion", run_id) == "success", api.failure_logs("prod_promotion", run_id)
    with stack.mongo_client("prod") as prod:
        assert prod[promo_db].companies.count_documents({}) == 3
        rec = prod[promo_db]["_ferry_promotions"].find_one({"_id": run_id})
    assert rec["status"] == "succeeded"
    assert (rec["who"], rec["triggered_by"], rec["approved_by"]) == ("operator", "operator", "approver")
