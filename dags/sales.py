"""
### Ferry sales: nightly sync into DuckDB, user import, health checks, backups

DAGs of this file (one family, see `docs/sales.md`):

- **nightly_sales_sync** (02:00 UTC daily, real daily data intervals, catchup): each run owns the day
  `data_interval_start.date()` and replaces exactly that day's partition of `sales` (and its rejects in
  `sales_rejects`) in one DuckDB transaction. Source: the HTTP API (`ferry_sales_api`) or CSV drops.
  Rows failing validation are quarantined with source, line/record number, column and reason; the run
  fails if they exceed `max_reject_ratio`. Backfill: `airflow backfill create --dag-id nightly_sales_sync
  --from-date A --to-date B --reprocess-behavior failed`.
- **import_users** (manual): users CSV → `users` with bcrypt hashes.
- **sales_health_check** (hourly): gaps, nulls, types, business rules, duplicate order ids.
- **sales_backup** (03:00): verified Parquet export of the DuckDB file, locally and to S3 (`ferry_s3`).
- **sales_backup_retention** (Sundays 04:00): deletes backups older than `retention_days`, never the newest.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from ferry.dagdefaults import default_args

# A scheme-less name: a URI with a scheme makes Airflow load every provider's URI handlers (boto3...) at parse.
SALES_ASSET = Asset("ferry_duckdb.sales")
API_CONN = "ferry_sales_api"
TAGS = ["ferry", "sales"]


# Catchup fills every day from here: unpausing with an old start date creates a run (an API pull) per day.
# Set FERRY_SALES_START_DATE (YYYY-MM-DD) to the first day your history should start.
SYNC_START = datetime.fromisoformat(os.environ.get("FERRY_SALES_START_DATE", "2026-11-01")).replace(tzinfo=timezone.utc)


def _duckdb_file() -> str:
    from ferry import conns

    return conns.duckdb_path(conns.DUCKDB)


@dag(
    dag_id="nightly_sales_sync",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=SYNC_START,
    catchup=True,
    max_active_runs=1,
    tags=TAGS,
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "source": Param("api", type="string", enum=["api", "csv"], description="Where the day's sales come from."),
        "csv_path": Param(
            "", type="string",
            description="CSV file or glob for source=csv; `{date}` is replaced by the day (YYYY-MM-DD).",
        ),
        "target_date": Param(
            "", type="string",
            description="Manual runs: the (last) day to load, YYYY-MM-DD. Empty: the run's data interval, "
            "or the day before the run when it has no logical date.",
        ),
        "days": Param(1, type="integer", minimum=1, maximum=366,
                      description="Manual runs: load this many days ending at the target day (each replaced)."),
        "max_reject_ratio": Param(0.01, type="number", minimum=0, maximum=1,
                                  description="Fail the day if rejected records / records exceeds this."),
        "page_size": Param(500, type="integer", minimum=1, description="API page size."),
        "api_attempts": Param(5, type="integer", minimum=1, maximum=10,
                              description="Attempts per API page on 5xx/timeouts (exponential backoff)."),
        "api_backoff_seconds": Param(2.0, type="number", minimum=0,
                                     description="First backoff delay; doubles per attempt (2, 4, 8, 16 s)."),
    },
)
def nightly_sales_sync():
    @task
    def plan() -> list[str]:
        from ferry.sales.runs import days_for_run

        ctx = get_current_context()
        days = days_for_run(
            target_date=ctx["params"]["target_date"],
            days=ctx["params"]["days"],
            data_interval_start=ctx.get("data_interval_start"),
            run_after=ctx["dag_run"].run_after,
        )
        print(f"data interval: {ctx.get('data_interval_start')} -> {ctx.get('data_interval_end')}; days: {days}")
        return days

    @task(outlets=[SALES_ASSET], max_active_tis_per_dagrun=1)
    def load_day(day: str) -> dict:
        from ferry.sales.runs import load_one_day

        ctx = get_current_context()
        return load_one_day(day, params=ctx["params"], run_id=ctx["run_id"], duckdb_file=_duckdb_file(),
                            api_conn_id=API_CONN)

    @task
    def summary(results: list[dict]) -> list[dict]:
        import logging

        from ferry import report

        rows = list(results)
        report.log_table(logging.getLogger(__name__), "Sales loaded", rows)
        return rows

    summary(load_day.expand(day=plan()))


@dag(
    dag_id="import_users",
    schedule=None,
    catchup=False,
    tags=TAGS,
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "csv_path": Param("", type="string", description="Users CSV: username,email,role,initial_password."),
        "update_existing": Param(False, type="boolean",
                                 description="Overwrite existing users (email, role, password) instead of reporting."),
        "bcrypt_rounds": Param(12, type="integer", minimum=4, maximum=16, description="bcrypt cost factor."),
    },
)
def import_users():
    @task
    def import_csv() -> dict:
        from ferry.sales.runs import import_users_task

        ctx = get_current_context()
        return import_users_task(ctx["params"], duckdb_file=_duckdb_file())

    import_csv()


@dag(
    dag_id="sales_health_check",
    schedule="0 * * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "days": Param(7, type="integer", minimum=1, description="Check the last N days for gaps."),
        "end_date": Param("", type="string",
                          description="Last day to check (YYYY-MM-DD). Empty: the latest day the nightly "
                          "load should have finished (run time minus 1 day and 3 hours)."),
    },
)
def sales_health_check():
    @task(inlets=[SALES_ASSET])
    def check() -> list[dict]:
        from ferry.sales.runs import health_task

        ctx = get_current_context()
        return health_task(ctx["params"], run_after=ctx["dag_run"].run_after, duckdb_file=_duckdb_file())

    check()


@dag(
    dag_id="sales_backup",
    schedule="0 3 * * *",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=TAGS,
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "backup_dir": Param("", type="string", description="Local backup folder (empty: <duckdb dir>/backups)."),
        "bucket": Param("ferry-backups", type="string", description="S3 bucket on ferry_s3 (empty: local only)."),
        "prefix": Param("duckdb-backups", type="string", description="Key prefix in the bucket."),
    },
)
def sales_backup():
    @task
    def backup() -> dict:
        from ferry.sales.runs import backup_task

        return backup_task(get_current_context()["params"], duckdb_file=_duckdb_file())

    backup()


@dag(
    dag_id="sales_backup_retention",
    schedule="0 4 * * 0",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=TAGS,
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "retention_days": Param(30, type="integer", minimum=1, description="Keep backups younger than this."),
        "backup_dir": Param("", type="string", description="Local backup folder (empty: <duckdb dir>/backups)."),
        "bucket": Param("ferry-backups", type="string", description="S3 bucket on ferry_s3 (empty: local only)."),
        "prefix": Param("duckdb-backups", type="string", description="Key prefix in the bucket."),
        "dry_run": Param(False, type="boolean", description="Only report what would be deleted."),
    },
)
def sales_backup_retention():
    @task
    def prune() -> list[dict]:
        from ferry.sales.runs import retention_task

        return retention_task(get_current_context()["params"], duckdb_file=_duckdb_file())

    prune()


nightly_sales_sync()
import_users()
sales_health_check()
sales_backup()
sales_backup_retention()
