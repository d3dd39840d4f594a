"""Backfill through Airflow itself: `airflow backfill create` executed by a real scheduler + api-server + dag-processor.

Opt-in (``FERRY_SCHEDULER_TESTS=1``): it starts three Airflow processes and LocalExecutor workers for ~2 minutes,
heavy for the shared 2-core machines; ``test_dags_e2e.py`` proves the same with ``dag.test()`` per interval.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ferry_dev.devstack import REPO_ROOT, free_port
from tests.sales.conftest import API_KEY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("FERRY_SCHEDULER_TESTS") != "1",
        reason="starts a real scheduler/api-server/dag-processor: set FERRY_SCHEDULER_TESTS=1",
    ),
]

AIRFLOW = str(Path(sys.executable).parent / "airflow")
START = date(2024, 2, 1)
CONF = {"source": "api", "api_attempts": 2, "api_backoff_seconds": 0.01}


@pytest.fixture
def airflow_cluster(tmp_path, sales_api, webhook):
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "sales.py").write_text((REPO_ROOT / "dags" / "sales.py").read_text())  # only this family
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FERRY_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # busy timeout: the CLI, the scheduler and the api-server share one SQLite file
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}",
        "FERRY_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "FERRY_SALES_START_DATE": "2024-01-01",
        "AIRFLOW_CONN_FERRY_DUCKDB": json.dumps({"conn_type": "duckdb", "host": str(tmp_path / "sales.duckdb")}),
        "AIRFLOW_CONN_FERRY_SALES_API": json.dumps({"conn_type": "http", "host": sales_api.url, "password": API_KEY}),
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK": json.dumps(
            {"conn_type": "slackwebhook", "password": webhook.url + "/hook"}
        ),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    procs = []
    for name, argv in [
        ("dag-processor", ["dag-processor"]),
        ("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)]),
        ("scheduler", ["scheduler"]),
    ]:
        log = open(tmp_path / f"{name}.log", "wb")
        procs.append(
            subprocess.Popen([AIRFLOW, *argv], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    try:
        yield env, tmp_path
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _cli(env, *args, timeout=120) -> str:
    for _ in range(4):  # SQLite metadata DB shared with a busy scheduler: "database is locked" is transient
        out = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
        if out.returncode == 0 or "database is locked" not in out.stderr:
            break
        time.sleep(3)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _backfill_runs(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(
            "SELECT logical_date, data_interval_start, data_interval_end, state, run_id FROM dag_run "
            "WHERE dag_id = 'nightly_sales_sync' AND run_type = 'backfill' ORDER BY logical_date"
        ).fetchall()


def _open_backfills(home: Path) -> int:
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute("SELECT count(*) FROM backfill WHERE completed_at IS NULL").fetchone()[0]


def _wait(home: Path, n: int, until: float) -> list[tuple]:
    """Until ``n`` backfill runs are finished and the scheduler has marked the backfill completed."""
    while time.monotonic() < until:
        runs = _backfill_runs(home)
        if len(runs) == n and all(r[3] in ("success", "failed") for r in runs) and not _open_backfills(home):
            return runs
        time.sleep(3)
    raise AssertionError(f"backfill runs did not finish: {_backfill_runs(home)}")


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "T")).replace(tzinfo=UTC)


def test_airflow_backfill_create_with_a_real_scheduler(airflow_cluster, sales_api):
    env, tmp = airflow_cluster
    home = tmp / "home"
    days = sales_api.seed(START, 7, 15)
    sales_api.fail_days = {days[2], days[3]}
    deadline = time.monotonic() + 120
    while "nightly_sales_sync" not in _cli(env, "dags", "list"):  # parsed by the dag-processor
        assert time.monotonic() < deadline, "DAG never appeared"
        time.sleep(3)
    # logical date of the run owning day D is D 02:00 (interval [D 02:00, D+1 02:00)); --to-date is inclusive
    rng = ["--from-date", days[0], "--to-date", f"{days[-1]}T02:00:00+00:00"]
    _cli(env, "backfill", "create", "--dag-id", "nightly_sales_sync", *rng, "--dag-run-conf", json.dumps(CONF))
    _cli(env, "dags", "unpause", "nightly_sales_sync")
    runs = _wait(home, 7, time.monotonic() + 240)
    for k, (logical, start, end, _state, _run_id) in enumerate(runs):
        d = datetime.combine(START + timedelta(days=k), datetime.min.time(), UTC) + timedelta(hours=2)
        assert (_ts(logical), _ts(start), _ts(end)) == (d, d, d + timedelta(days=1))
    assert [r[3] for r in runs] == ["success", "success", "failed", "failed", "success", "success", "success"]

    sales_api.fail_days.clear()  # the API is back: reprocess the failed days
    _cli(
        env,
        "backfill",
        "create",
        "--dag-id",
        "nightly_sales_sync",
        *rng,
        "--dag-run-conf",
        json.dumps(CONF),
        "--reprocess-behavior",
        "failed",
    )
    runs = _wait(home, 7, time.monotonic() + 240)
    assert [r[3] for r in runs] == ["success"] * 7

    deadline = time.monotonic() + 60
    while True:  # read once no task holds the DuckDB file
        try:
            con = duckdb.connect(str(tmp / "sales.duckdb"), read_only=True)
            break
        except duckdb.IOException:
            assert time.monotonic() < deadline
            time.sleep(1)
    with con:
        got = con.execute(
            "SELECT sale_date, count(*), count(DISTINCT order_id) FROM sales WHERE sale_date >= ? "
            "GROUP BY 1 ORDER BY 1",
            [START],
        ).fetchall()
    assert [(d.isoformat(), n, u) for d, n, u in got] == [(d, 15, 15) for d in days]
