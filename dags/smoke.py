"""
### Ferry smoke test

Touches every store Ferry moves data between, once, idempotently:
PostgreSQL (`ferry_pg_prod`) → MongoDB (`ferry_mongo_local`) → S3 (`ferry_s3`) → DuckDB (`ferry_duckdb`).

Each store gets one record keyed by the run (`run_key` param, default: the run id); a rerun
replaces that record. Use it after configuring connections to check that Ferry can reach them all.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from ferry.dagdefaults import default_args
from ferry.smoke.request import SmokeRequest


@dag(
    dag_id="ferry_smoke",
    schedule=None,
    catchup=False,
    tags=["ferry", "smoke"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params=SmokeRequest.params(),
)
def ferry_smoke():
    from ferry.smoke import runs

    pg = task(runs.postgres)()
    mg = task(runs.mongo)(pg)
    task(runs.duckdb, pool="ferry_duckdb")(pg, mg, task(runs.s3)(pg, mg))


ferry_smoke()
