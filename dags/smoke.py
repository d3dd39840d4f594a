"""
### Ferry smoke test

Touches every store Ferry moves data between, once, idempotently:
PostgreSQL (`ferry_pg_prod`) → MongoDB (`ferry_mongo_local`) → S3 (`ferry_s3`) → DuckDB (`ferry_duckdb`).

Each store gets one record keyed by the run (`run_key` param, default: the run id); a rerun
replaces that record. Use it after configuring connections to check that Ferry can reach them all.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from ferry.dagdefaults import default_args


def _run_key() -> str:
    ctx = get_current_context()
    return ctx["params"].get("run_key") or ctx["run_id"]


@dag(
    dag_id="ferry_smoke",
    schedule=None,
    catchup=False,
    tags=["ferry", "smoke"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "run_key": Param("", type="string", description="Key of this check's records (default: the run id)."),
        "mongo_db": Param("ferry_smoke", type="string", description="MongoDB database on ferry_mongo_local."),
        "bucket": Param("ferry-smoke", type="string", description="S3 bucket on ferry_s3 (created if missing)."),
    },
)
def ferry_smoke():
    @task
    def postgres() -> dict:
        from ferry import conns, smoke

        with conns.pg_connect(conns.PG_PROD) as conn:
            return smoke.postgres_roundtrip(conn, _run_key())

    @task
    def mongo(pg_result: dict) -> dict:
        from ferry import conns, smoke

        params = get_current_context()["params"]
        with conns.mongo_client(conns.MONGO_LOCAL) as client:
            return smoke.mongo_roundtrip(client[params["mongo_db"]], _run_key(), pg_result)

    @task
    def s3(pg_result: dict, mongo_result: dict) -> dict:
        from ferry import conns, smoke

        params = get_current_context()["params"]
        return smoke.s3_roundtrip(conns.s3_client(), params["bucket"], _run_key(), [pg_result, mongo_result])

    @task
    def duckdb(pg_result: dict, mongo_result: dict, s3_result: dict) -> list[dict]:
        import logging

        from ferry import conns, report, smoke

        results = [pg_result, mongo_result, s3_result]
        results.append(smoke.duckdb_roundtrip(conns.duckdb_path(), _run_key(), results))
        report.log_table(logging.getLogger(__name__), "Ferry smoke test", results)
        return results

    pg = postgres()
    mg = mongo(pg)
    s3_res = s3(pg, mg)
    duckdb(pg, mg, s3_res)


ferry_smoke()
