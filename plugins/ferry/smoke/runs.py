"""What each task of ``ferry_smoke`` does: one idempotent write and read-back per store, keyed by ``run_key``."""

from __future__ import annotations

import logging

from ferry import conns, lineage, report
from ferry.smoke import checks as smoke
from ferry.smoke.request import SmokeRequest

log = logging.getLogger("ferry.smoke")


def postgres(**ctx) -> dict:
    key = SmokeRequest.from_context(ctx).key(ctx["run_id"])
    with conns.pg_connect(conns.PG_PROD) as conn:
        out = smoke.postgres_roundtrip(conn, key)
        lineage.report(conn, outputs=[lineage.postgres(conn, "public", "ferry_smoke")])
        return out


def mongo(pg_result: dict, **ctx) -> dict:
    r = SmokeRequest.from_context(ctx)
    with conns.mongo_client(conns.MONGO_LOCAL) as client:
        out = smoke.mongo_roundtrip(client[r.mongo_db], r.key(ctx["run_id"]), pg_result)
        lineage.report(client, outputs=[lineage.mongo(client, r.mongo_db, "smoke_runs")])
        return out


def s3(pg_result: dict, mongo_result: dict, **ctx) -> dict:
    r = SmokeRequest.from_context(ctx)
    client = conns.s3_client()
    out = smoke.s3_roundtrip(client, r.bucket, r.key(ctx["run_id"]), [pg_result, mongo_result])
    lineage.report(client, outputs=[out["key"]])
    return out


def duckdb(pg_result: dict, mongo_result: dict, s3_result: dict, **ctx) -> list[dict]:
    results = [pg_result, mongo_result, s3_result]
    key = SmokeRequest.from_context(ctx).key(ctx["run_id"])
    results.append(smoke.duckdb_roundtrip(conns.duckdb_path(), key, results))
    lineage.report(results[-1], outputs=[lineage.file(conns.duckdb_path())])
    report.log_table(log, "Ferry smoke test", results)
    return results
