"""Atlas Search / Vector Search index definitions: read, create (bounded wait), or hand over as a report.

Search indexes live outside ``listIndexes``: ``$listSearchIndexes`` (pymongo
``Collection.list_search_indexes``) reads them and ``createSearchIndexes`` creates them, on
Atlas or an Atlas-compatible deployment (mongot). Elsewhere the server answers with an error
(code 115 CommandNotSupported, 59 CommandNotFound, 31082 SearchNotEnabled, or "no such command");
then the definitions are written as JSON files plus step-by-step instructions (Atlas UI and
Atlas CLI) for a person to apply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Server answers meaning "this deployment has no search support".
UNSUPPORTED_CODES = {59, 115, 31082, 40324}


def is_unsupported(exc: BaseException) -> bool:
    """True when ``exc`` says the server does not support search commands (not a bad definition)."""
    code = getattr(exc, "code", None)
    msg = str(exc).lower()
    return code in UNSUPPORTED_CODES or "no such command" in msg or "no such cmd" in msg


def normalize(raw: dict) -> dict:
    """``{"name", "type", "definition"}`` from a ``$listSearchIndexes`` entry (status fields dropped)."""
    definition = raw.get("latestDefinition") or raw.get("definition") or {}
    return {"name": raw["name"], "type": raw.get("type", "search"), "definition": dict(definition)}


def read(collection) -> tuple[list[dict], str | None]:
    """``(definitions, None)`` or ``([], reason)`` when the server cannot list search indexes."""
    from pymongo.errors import OperationFailure

    try:
        return [normalize(r) for r in collection.list_search_indexes()], None
    except OperationFailure as exc:
        if is_unsupported(exc):
            return [], _errmsg(exc)
        raise


def create_command(collection: str, definitions: list[dict]) -> dict:
    """The ``createSearchIndexes`` command for ``definitions`` (one command per collection)."""
    return {
        "createSearchIndexes": collection,
        "indexes": [{"name": d["name"], "type": d["type"], "definition": d["definition"]} for d in definitions],
    }


def create(
    db,
    collection: str,
    definitions: list[dict],
    *,
    timeout: float = 600,
    poll: float = 5,
    sleep: Callable[[float], None] | None = None,
) -> dict:
    """Create ``definitions`` on ``db[collection]`` and wait (bounded) until each is queryable.

    Returns ``{"status": "created" | "unsupported" | "timeout", "error": ..., "pending": [...]}``.
    Other server errors (a bad definition) propagate.
    """
    from pymongo.errors import OperationFailure

    if not definitions:
        return {"status": "created", "error": None, "pending": []}
    try:
        db.command(create_command(collection, definitions))
    except OperationFailure as exc:
        if is_unsupported(exc):
            return {"status": "unsupported", "error": _errmsg(exc), "pending": [d["name"] for d in definitions]}
        raise
    wanted = {d["name"] for d in definitions}
    deadline = time.monotonic() + timeout
    while True:
        ready = {r["name"] for r in db[collection].list_search_indexes() if r.get("queryable")}
        pending = sorted(wanted - ready)
        if not pending:
            return {"status": "created", "error": None, "pending": []}
        if time.monotonic() >= deadline:
            return {"status": "timeout", "error": f"not queryable after {timeout:.0f}s", "pending": pending}
        (sleep or time.sleep)(poll)


def atlas_file(database: str, collection: str, d: dict) -> dict:
    """The JSON the Atlas CLI / Admin API takes: name, database, collectionName, type + definition."""
    return {"name": d["name"], "database": database, "collectionName": collection, "type": d["type"], **d["definition"]}


def write_manual_report(base_url: str | Path, database: str, pending: dict[str, list[dict]], reason: str) -> str:
    """One JSON file per index under ``base_url`` (a folder or ``s3://`` prefix, via ``ferry.storage``) and
    ``SEARCH_INDEXES.md`` with the steps; returns the URL of the .md."""
    from ferry import storage

    base = str(base_url)
    lines = [
        f"# Search indexes to create by hand in `{database}`",
        "",
        f"The target server did not accept search-index commands: {reason}",
        "",
        "Create each index below in Atlas, on the cluster that holds the target database.",
        "",
        "Atlas UI: cluster → *Atlas Search* → *Create Search Index* → *JSON Editor*; choose",
        "*Atlas Vector Search* for `vectorSearch` indexes, select the database and collection, name the",
        "index as below and paste the `definition` part of the file (everything but name/database/",
        "collectionName/type). Wait until the status is *Active* (queryable).",
        "",
        "Atlas CLI (one command per file):",
        "",
        "| collection | index | type | file | command |",
        "|---|---|---|---|---|",
    ]
    for coll, defs in sorted(pending.items()):
        for d in defs:
            fname = f"{database}.{coll}.{d['name']}.json"
            storage.put_text(
                storage.join(base, fname),
                json.dumps(atlas_file(database, coll, d), indent=2, sort_keys=True, default=str),
            )
            cmd = f"atlas clusters search indexes create --clusterName <CLUSTER> --file {fname}"
            lines.append(f"| {coll} | {d['name']} | {d['type']} | {fname} | `{cmd}` |")
    lines += [
        "",
        "Check with `atlas clusters search indexes list --clusterName <CLUSTER> --db "
        f"{database} --collection <COLLECTION>`, then rerun `dev_db_drift_check`.",
        "",
    ]
    return storage.put_text(storage.join(base, "SEARCH_INDEXES.md"), "\n".join(lines)).url


def vector_probe(collection, d: dict, *, max_time_ms: int = 5000) -> str:
    """Run a one-result ``$vectorSearch`` with a constant vector: ``"ok"`` or the server's error."""
    fields = [f for f in d["definition"].get("fields", []) if f.get("type") == "vector"]
    if not fields:
        return "not a vector index"
    f = fields[0]
    stage: dict[str, Any] = {
        "index": d["name"],
        "path": f["path"],
        "queryVector": [0.1] * int(f["numDimensions"]),
        "numCandidates": 1,
        "limit": 1,
    }
    try:
        list(collection.aggregate([{"$vectorSearch": stage}], maxTimeMS=max_time_ms))
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the probe reports, it does not fail the run
        return _errmsg(exc)


def _errmsg(exc: BaseException) -> str:
    details = getattr(exc, "details", None) or {}
    code = getattr(exc, "code", None)
    msg = details.get("errmsg") or str(exc).split(", full error")[0]
    return f"{msg} (code {code})" if code is not None else msg
