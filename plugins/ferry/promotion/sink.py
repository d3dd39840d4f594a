"""Promotion reports: the summary table and per-document JSON lines, stored by URL (``ferry.storage``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ferry import storage
from ferry.promotion.plan import CollectionPlan, plan_all

SUMMARY_HEADERS = ["collection", "local_total", "local_selected", "prod_total", "insert", "skip", "update", "reject"]


class ReportSink:
    """JSON-lines reports under one base URL (``s3://bucket/prefix`` or a folder); each file verified where it lands."""

    def __init__(self, base_url: str | Path, s3=None):
        self.base, self.s3 = str(base_url).rstrip("/"), s3

    def write(self, name: str, lines) -> str:
        with tempfile.TemporaryDirectory(prefix="ferry-promotion-report-") as tmp:
            path = Path(tmp) / name
            with open(path, "w") as fh:
                for line in lines:
                    fh.write(json.dumps(line, default=str) + "\n")
            return storage.put_file(storage.join(self.base, name), path, s3=self.s3).url


def summary(plans: list[CollectionPlan]) -> list[dict]:
    return [p.summary_row() for p in plans]


def dry_run(cfg, local_db, prod_db, collections, queries, on_conflict, sink: ReportSink, *, lookup=None) -> dict:
    """Plan every document and write the plan as JSON lines; reads only."""
    plans = plan_all(cfg, local_db, prod_db, collections, queries, on_conflict, lookup=lookup)
    location = sink.write("plan.jsonl", (a.report() for p in plans for a in p.actions))
    return {"summary": summary(plans), "report": location, "queries": sum(p.prod_queries for p in plans)}
