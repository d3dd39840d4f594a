"""What each task of ``ferry_smoke`` does: one idempotent write and read-back per store, keyed by ``run_key``."""

from __future__ import annotations

import logging

from ferry import conns, report, smoke

log = logging.getLogger("ferry.smoke")


def _run_key(ctx) -> str:
    return ctx["params"].get("run_key") or ctx["run_id"]


def postgres(**ctx) -> dict:
    with conns.pg_connect(conns.PG_PROD) as conn:
        return smoke.postgres_roundtrip(conn, _run_key(ctx))


def mongo(pg_result: dict, **ctx) -> dict:
    with conns.mongo_client(conns.MONGO_LOCAL) as client:
        return smoke.mongo_roundtrip(client[ctx["params"]["mongo_db"]], _run_key(ctx), pg_result)


def s3(pg_result: dict, mongo_result: dict, **ctx) -> dict:
    return smoke.s3_roundtrip(conns.s3_client(), ctx["params"]["bucket"], _run_key(ctx), [pg_result, mongo_result])


def duckdb(pg_result: dict, mongo_result: dict, s3_result: dict, **ctx) -> list[dict]:
    results = [pg_result, mongo_result, s3_result]
    results.append(smoke.duckdb_roundtrip(conns.duckdb_path(), _run_key(ctx), results))
    report.log_table(log, "Ferry smoke test", results)
    return results
