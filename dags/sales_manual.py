"""
### Ferry sales: manual loads of ad-hoc days

**sales_manual_load** (no schedule, no catchup): loads `target_date` and the `days` before it exactly as
`nightly_sales_sync` does (same tasks, params, rules, partition replace), in its own DAG, so a manual run
never waits behind the nightly DAG's catchup runs (`max_active_runs=1` there) and never starts them.

In the trigger dialog, leave **"Unpause on trigger"** as it is here: unpausing this DAG creates no other
runs. Do not use it on `nightly_sales_sync` unless you want catchup to start. See `docs/sales.md`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, dag, task

from ferry.dagdefaults import default_args
from ferry.sales.request import ManualLoadRequest
from ferry.sales.store import ASSET_URI

SALES_ASSET = Asset(name="ferry_duckdb.sales", uri=ASSET_URI)


@dag(
    dag_id="sales_manual_load",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=2,
    tags=["ferry", "sales"],
    doc_md=__doc__,
    default_args=default_args(),
    params=ManualLoadRequest.params(),
)
def sales_manual_load():
    from ferry.sales import runs

    days = task(runs.plan_manual, task_id="plan")()
    loaded = task(
        runs.load_day,
        outlets=[SALES_ASSET],
        max_active_tis_per_dagrun=1,
        pool="ferry_duckdb",
        execution_timeout=timedelta(hours=2),
    ).expand(day=days)
    task(runs.summary)(loaded)


sales_manual_load()
