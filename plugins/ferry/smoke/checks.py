"""Smoke checks: one idempotent write and read-back per store (PostgreSQL, MongoDB, S3, DuckDB).

Every function is keyed by ``run_key`` so a rerun replaces its own record and never duplicates.
"""

from __future__ import annotations

import json
from typing import Any


def postgres_roundtrip(conn, run_key: str) -> dict:
    """Upsert one row into ``ferry_smoke`` and read the table back."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS ferry_smoke "
        "(run_key text PRIMARY KEY, checked_at timestamptz NOT NULL DEFAULT now())"
    )
    conn.execute(
        "INSERT INTO ferry_smoke (run_key) VALUES (%s) ON CONFLICT (run_key) DO UPDATE SET checked_at = now()",
        (run_key,),
    )
    conn.commit()
    (rows,) = conn.execute("SELECT count(*) FROM ferry_smoke").fetchone()
    version = conn.execute("SHOW server_version").fetchone()[0]
    return {"store": "postgres", "rows": rows, "server": version}


def mongo_roundtrip(db, run_key: str, pg_result: dict) -> dict:
    """Replace-by-``_id`` one document into ``smoke_runs`` and count the collection."""
    db.smoke_runs.replace_one({"_id": run_key}, {"_id": run_key, "postgres": pg_result}, upsert=True)
    return {"store": "mongo", "documents": db.smoke_runs.count_documents({}), "db": db.name}


def s3_roundtrip(s3, bucket: str, run_key: str, payload: Any) -> dict:
    """Put ``smoke/<run_key>.json`` (same key on rerun) and read its size back."""
    from ferry.storage import ensure_bucket

    ensure_bucket(s3, bucket)
    key = f"smoke/{run_key}.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(payload, default=str).encode())
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    return {"store": "s3", "key": f"s3://{bucket}/{key}", "bytes": size}


def duckdb_roundtrip(path: str, run_key: str, summary: list[dict]) -> dict:
    """Delete-then-insert this run's row in ``smoke_runs`` in one transaction."""
    import duckdb

    with duckdb.connect(path) as con:
        con.execute("CREATE TABLE IF NOT EXISTS smoke_runs (run_key VARCHAR PRIMARY KEY, summary JSON)")
        con.execute("BEGIN")
        con.execute("DELETE FROM smoke_runs WHERE run_key = ?", [run_key])
        con.execute("INSERT INTO smoke_runs VALUES (?, ?)", [run_key, json.dumps(summary, default=str)])
        con.execute("COMMIT")
        rows = con.execute("SELECT count(*) FROM smoke_runs").fetchone()[0]  # type: ignore[index]
    return {"store": "duckdb", "rows": rows, "path": path}
