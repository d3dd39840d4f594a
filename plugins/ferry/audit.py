"""One audit-record shape for every family (ETL, sales, dev clone, promotion, catalog).

Every record has the same core fields, whatever writes it and wherever it is kept::

    {"_id", "family", "dag_id", "run_id", "who", "started_at", "finished_at",
     "params", "counts", "outcome", ...family-specific details}

``outcome`` is one of ``OUTCOMES``. Records are upserts by ``_id`` (a retried task replaces its record,
never duplicates it). Families keep them next to what they change: MongoDB targets in their bookkeeping
database (``<db>__ferry``) or collection, DuckDB in its ``ferry_audit`` table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

OUTCOMES = ("running", "success", "failed", "rejected", "dry_run", "rolled_back", "aborted")
CORE = ("family", "dag_id", "run_id", "who", "started_at", "finished_at", "params", "counts", "outcome")

DUCKDB_DDL = """
CREATE TABLE IF NOT EXISTS ferry_audit (
    id          VARCHAR PRIMARY KEY,
    family      VARCHAR NOT NULL,
    dag_id      VARCHAR,
    run_id      VARCHAR,
    who         VARCHAR,
    started_at  TIMESTAMP,
    finished_at TIMESTAMP,
    params      JSON,
    counts      JSON,
    outcome     VARCHAR NOT NULL,
    details     JSON
)
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def who(context: Any) -> str:
    """Who a run acts for: the user who triggered it, else its run type (``scheduled``, ``backfill`` ...)."""
    dr = context.get("dag_run") if hasattr(context, "get") else None
    user = getattr(dr, "triggering_user_name", None)
    if user:
        return str(user)
    run_type = getattr(dr, "run_type", None)
    return str(getattr(run_type, "value", run_type) or "unknown")


def record(*, id: str, family: str, dag_id: str, run_id: str, who: str, outcome: str, **fields: Any) -> dict:
    """The record as a document: the core fields first (``params``, ``counts``, ``started_at`` and
    ``finished_at`` among ``fields``; ``finished_at`` defaults to now unless the run is still running), then
    the family's details."""
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome {outcome!r} is not one of {OUTCOMES}")
    core = {k: fields.pop(k, None) for k in ("params", "counts", "started_at", "finished_at")}
    clash = set(fields) & {"_id", *CORE}
    if clash:
        raise ValueError(f"audit details may not reuse core fields {sorted(clash)}")
    finished = core["finished_at"]
    return {
        "_id": id,
        "family": family,
        "dag_id": dag_id,
        "run_id": run_id,
        "who": who,
        "started_at": core["started_at"],
        "finished_at": finished if finished is not None or outcome == "running" else now(),
        "params": dict(core["params"] or {}),
        "counts": core["counts"],
        "outcome": outcome,
        **fields,
    }


@dataclass(frozen=True)
class Run:
    """The DAG run a record speaks for: its DAG, its run id and who it acts for (the same in every record)."""

    dag_id: str
    run_id: str
    who: str = "unknown"

    @classmethod
    def of(cls, context: Any) -> Run:
        """The run of a task's ``context``."""
        return cls(dag_id=context["dag_run"].dag_id, run_id=context["run_id"], who=who(context))

    def record(self, *, family: str, outcome: str, id: str | None = None, **fields: Any) -> dict:
        """``record`` of this run; ``_id`` is the run id unless ``id`` names one record of several."""
        return record(
            id=self.run_id if id is None else id,
            family=family,
            dag_id=self.dag_id,
            run_id=self.run_id,
            who=self.who,
            outcome=outcome,
            **fields,
        )


def to_mongo(coll, rec: dict) -> dict:
    """Upsert ``rec`` into the MongoDB collection ``coll`` (majority, journaled)."""
    from pymongo import WriteConcern

    coll.with_options(write_concern=WriteConcern(w="majority", j=True)).replace_one(
        {"_id": rec["_id"]}, rec, upsert=True
    )
    return rec


def to_duckdb(con, rec: dict) -> dict:
    """Upsert ``rec`` into DuckDB's ``ferry_audit`` table (core columns, the rest as JSON ``details``)."""
    con.execute(DUCKDB_DDL)
    details = {k: v for k, v in rec.items() if k not in ("_id", *CORE)}

    def js(v: Any) -> str:
        return json.dumps(v, default=str)

    con.execute(
        "INSERT OR REPLACE INTO ferry_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            rec["_id"],
            rec["family"],
            rec["dag_id"],
            rec["run_id"],
            rec["who"],
            _naive(rec["started_at"]),
            _naive(rec["finished_at"]),
            js(rec["params"]),
            js(rec["counts"]),
            rec["outcome"],
            js(details),
        ],
    )
    return rec


def _naive(t: dt.datetime | None) -> dt.datetime | None:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t is not None and t.tzinfo else t
