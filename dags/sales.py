"""
### Ferry sales: nightly sync into DuckDB, user import, health checks, backups

- **nightly_sales_sync** (02:00 UTC, daily data intervals, catchup): each run replaces the partition of its
  day (`sales`, and its rejects in `sales_rejects`) in one DuckDB transaction, from the API
  (`ferry_sales_api`, read as the profile in `include/sales/api_profiles.yaml` says) or CSV drops; rows are
  checked against `include/sales/rules.yaml`, rejects quarantined with line/record, column, reason and rule.
- **sales_manual_load** (manual only, `dags/sales_manual.py`): ad-hoc days; never waits behind or starts catchup.
- **import_users** (manual): users CSV → `users` with bcrypt hashes.
- **sales_health_check** (hourly, and after each load): gaps, nulls, types, rules, duplicate order ids.
- **sales_backup** (03:00, and after each load): verified Parquet export, locally and to S3 (`ferry_s3`).
- **sales_backup_retention** (Sundays 04:00): deletes backups older than `retention_days`, never the newest.

Tasks opening the DuckDB file share the one-slot pool `ferry_duckdb`. See `docs/sales.md`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, CronTriggerTimetable, dag, task

from ferry import settings
from ferry.dagdefaults import default_args
from ferry.sales.request import BackupRequest, HealthRequest, RetentionRequest, SalesLoadRequest, UsersRequest
from ferry.sales.store import ASSET_URI

LONG = {"execution_timeout": timedelta(hours=2)}

SALES_ASSET = Asset(name="ferry_duckdb.sales", uri=ASSET_URI)
COMMON = {"tags": ["ferry", "sales"], "doc_md": __doc__}
SINCE = {"start_date": datetime(2024, 1, 1, tzinfo=UTC), "catchup": False}  # scheduled, no catchup


DUCKDB = {"pool": "ferry_duckdb"}  # one DuckDB writer at a time: `airflow pools set ferry_duckdb 1 "DuckDB"`
# Catchup fills every day from here (one run, one API pull, per day): set FERRY_SALES_START_DATE (YYYY-MM-DD).
SYNC_START = settings.sales_start_date()


@dag(
    dag_id="nightly_sales_sync",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
    start_date=SYNC_START,
    catchup=True,
    max_active_runs=1,
    **COMMON,
    default_args=default_args(),
    params=SalesLoadRequest.params(),
)
def nightly_sales_sync():
    from ferry.sales import runs

    days = task(runs.plan)()
    loaded = task(runs.load_day, outlets=[SALES_ASSET], max_active_tis_per_dagrun=1, **DUCKDB, **LONG).expand(day=days)
    task(runs.summary)(loaded)


@dag(
    dag_id="import_users",
    schedule=None,
    catchup=False,
    **COMMON,
    default_args=default_args(retries=0),
    params=UsersRequest.params(),
)
def import_users():
    from ferry.sales import runs

    task(runs.import_users, task_id="import_csv", **DUCKDB)()


@dag(
    dag_id="sales_health_check",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=SALES_ASSET),
    **SINCE,
    max_active_runs=1,
    **COMMON,
    default_args=default_args(retries=0),
    params=HealthRequest.params(),
)
def sales_health_check():
    from ferry.sales import runs

    task(runs.health, task_id="check", inlets=[SALES_ASSET], **DUCKDB)()


@dag(
    dag_id="sales_backup",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=SALES_ASSET),
    **SINCE,
    **COMMON,
    default_args=default_args(),
    params=BackupRequest.params(),
)
def sales_backup():
    from ferry.sales import runs

    task(runs.backup, **DUCKDB, **LONG)()


@dag(
    dag_id="sales_backup_retention",
    schedule="0 4 * * 0",
    **SINCE,
    **COMMON,
    default_args=default_args(),
    params=RetentionRequest.params(),
)
def sales_backup_retention():
    from ferry.sales import runs

    task(runs.retention, task_id="prune")()


nightly_sales_sync()
import_users()
sales_health_check()
sales_backup()
sales_backup_retention()
