"""The audit trail: one ``_ferry_etl_runs`` record per production_etl run."""

from __future__ import annotations

import datetime as dt

RUNS = "_ferry_etl_runs"


def record(meta_db, run_id: str, **fields) -> dict:
    """Upsert the run's record (a retried audit task replaces it, never duplicates)."""
    doc = {"_id": run_id, "run_id": run_id, "recorded_at": dt.datetime.now(dt.timezone.utc), **fields}
    meta_db[RUNS].replace_one({"_id": run_id}, doc, upsert=True)
    return doc


def recent(meta_db, limit: int = 20) -> list[dict]:
    return list(meta_db[RUNS].find({}, sort=[("recorded_at", -1)], limit=limit))
