"""`airflow backfill create` for nightly_sales_sync on the real deployment (PostgreSQL metadata DB, scheduler,
Celery): 7 days with an API outage on two of them, then `--reprocess-behavior failed` once the API is back.
Each day is loaded exactly once, and nothing says `database is locked`."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

pytestmark = [pytest.mark.deployment, pytest.mark.integration]

DAG = "nightly_sales_sync"
START = date(2024, 2, 1)
CONF = {"source": "api", "api_attempts": 2, "api_backoff_seconds": 0.01}


def _backfill_runs(api) -> list[dict]:
    runs = api.get(f"/api/v2/dags/{DAG}/dagRuns?run_type=backfill&order_by=logical_date&limit=100")["dag_runs"]
    return [r for r in runs if r["logical_date"] and r["logical_date"].startswith("2024-02")]


def _wait(api, n: int, timeout: float = 420) -> list[dict]:
    """Until ``n`` backfill runs are finished and no backfill of the DAG is still open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _backfill_runs(api)
        open_ = [b for b in api.get(f"/api/v2/backfills?dag_id={DAG}")["backfills"] if not b["completed_at"]]
        if len(runs) == n and all(r["state"] in ("success", "failed") for r in runs) and not open_:
            return runs
        time.sleep(3)
    raise AssertionError(f"backfill runs did not finish: {[(r['logical_date'], r['state']) for r in runs]}")


def _day_counts(path) -> dict[str, int]:
    for _ in range(60):  # a health check or backup the load triggered may hold the file for a moment
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                rows = con.execute(
                    "SELECT CAST(sale_date AS VARCHAR), count(*) FROM sales WHERE sale_date BETWEEN ? AND ? GROUP BY 1",
                    [START, START + timedelta(days=6)],
                ).fetchall()
                return dict(rows)
        except duckdb.IOException:
            time.sleep(1)
    raise AssertionError("DuckDB file stayed locked")


def test_backfill_with_an_outage_then_reprocess_failed(deployment, api, sales_api_server):
    days = sales_api_server.seed(START, 7, 15)
    sales_api_server.fail_days = {days[2], days[3]}
    api.unpause(DAG)
    # the run owning day D has logical date D 02:00 (interval [D 02:00, D+1 02:00)); --to-date is inclusive
    rng = ["--from-date", days[0], "--to-date", f"{days[-1]}T02:00:00+00:00"]
    deployment.cli("backfill", "create", "--dag-id", DAG, *rng, "--dag-run-conf", json.dumps(CONF))
    runs = _wait(api, 7)
    for k, run in enumerate(runs):
        d = datetime.combine(START + timedelta(days=k), datetime.min.time(), UTC) + timedelta(hours=2)
        assert datetime.fromisoformat(run["logical_date"]) == d
        assert datetime.fromisoformat(run["data_interval_end"]) == d + timedelta(days=1)
    assert [r["state"] for r in runs] == ["success", "success", "failed", "failed", "success", "success", "success"]
    first_ids = {r["logical_date"]: r["dag_run_id"] for r in runs}
    assert "upstream database unavailable" in api.task_log(DAG, runs[2]["dag_run_id"], "load_day")

    sales_api_server.fail_days.clear()  # the API is back: reprocess only the failed days
    requests_before = len(sales_api_server.requests)
    deployment.cli("backfill", "create", "--dag-id", DAG, *rng, "--dag-run-conf", json.dumps(CONF),
                   "--reprocess-behavior", "failed")  # fmt: skip
    runs = _wait(api, 7)
    assert [r["state"] for r in runs] == ["success"] * 7
    assert {r["logical_date"]: r["dag_run_id"] for r in runs} == first_ids  # the same runs, cleared and rerun
    asked = {r["date"] for r in sales_api_server.requests[requests_before:] if "date" in r}
    assert asked == {days[2], days[3]}  # the days that had loaded were not pulled again
    assert _day_counts(deployment.root / "sales.duckdb") == dict.fromkeys(days, 15)

    logs = "".join(p.read_text(errors="replace") for p in (deployment.root / "airflow" / "logs").rglob("*.log"))
    logs += "".join(deployment.logs(name, 10_000) for name in deployment.procs)
    assert "database is locked" not in logs
