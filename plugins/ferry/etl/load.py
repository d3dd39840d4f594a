"""Batched loads into MongoDB: ``full`` (staging database, checked, then published), ``incremental`` (upsert
changed documents by ``_id``, handle source deletions), ``dated_copy`` (a new ``<db>-YYYYMMDD`` database,
loaded like ``full``).

Every path is idempotent. A full load rebuilds a staging database from scratch; the caller checks it
against the source and only then ``publish``es it: each collection is swapped in with ``renameCollection``
(``dropTarget``), so readers see the old or the new collection, never an empty or unchecked one. An
incremental load compares each document's ``_ferry_hash`` and writes only what changed, so a rerun with no
source change writes nothing.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pymongo import DeleteMany, ReplaceOne, UpdateMany

from ferry.etl import acquire
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD, build_batch

log = logging.getLogger(__name__)

STRATEGIES = ("full", "incremental", "dated_copy")
#: Earlier name of ``dated_copy`` (it never meant parallel work), still accepted.
ALIASES = {"parallel": "dated_copy"}
STAGING_SUFFIX = "__ferry_staging"
QUARANTINE = "_ferry_etl_quarantine"


class InjectedFailure(RuntimeError):
    """Raised by ``fail_after_batches`` (tests of crash recovery)."""


def strategy_name(strategy: str) -> str:
    """``strategy`` with the old alias resolved; an unknown one is an error listing the choices."""
    from ferry.errors import FerryError

    name = ALIASES.get(strategy, strategy)
    if name not in STRATEGIES:
        raise FerryError(f"refresh_strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    return name


def staging_db(db: str) -> str:
    return db + STAGING_SUFFIX


def dated_db(db: str, day: str) -> str:
    """``<db>-YYYYMMDD`` for ``day`` (``YYYY-MM-DD`` or ``YYYYMMDD``)."""
    return f"{db}-{day.replace('-', '')}"


def load(
    conn,
    client,
    db: str,
    eff: dict,
    *,
    strategy: str = "full",
    batch_size: int = 10000,
    meta_db=None,
    run_id: str = "",
    fail_after_batches: int | None = None,
    publish_now: bool = True,
    logger: logging.Logger = log,
) -> dict:
    """Load every collection of the effective mapping ``eff`` from ``conn`` (psycopg) into ``client[db]``.

    ``full`` / ``dated_copy`` load ``<db>__ferry_staging``; with ``publish_now=False`` it is left for the
    caller to check and ``publish`` (what production_etl does). Returns ``{"db", "staging", "strategy",
    "collections": {name: counts}, "quarantined": n}`` (``staging`` is None for incremental loads).
    """
    from ferry.report import Progress

    strategy = strategy_name(strategy)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    schema = eff["source"]["schema"]
    numeric = eff["defaults"]["numeric"]
    full = strategy != "incremental"
    staging = client[staging_db(db)]
    if full:
        client.drop_database(staging.name)  # leftovers of a crashed or rejected run
    # the writer thread is shut down (waiting for its last write) when the block ends, also on an error
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferry-etl-writer") as writer:
        batches_done = 0
        result: dict[str, Any] = {
            "db": db,
            "staging": staging.name if full else None,
            "strategy": strategy,
            "collections": {},
            "quarantined": 0,
        }
        for coll in eff["collections"]:
            name = coll["name"]
            total = acquire.count(conn, schema, coll["table"])
            progress = Progress(logger, f"{coll['table']} -> {db}.{name}", total)
            counts = {
                "source_rows": total,
                "documents": 0,
                "written": 0,
                "unchanged": 0,
                "deleted": 0,
                "flagged": 0,
                "quarantined": 0,
            }
            seen: set = set()
            target = staging[name] if full else client[db][name]
            pending = None  # one write in flight while the next batch is read and transformed
            for rows, children in acquire.batches(conn, schema, coll, batch_size):
                docs, rejected = build_batch(rows, coll, children, numeric)
                if rejected:
                    _quarantine(meta_db, run_id, rejected, logger)
                    counts["quarantined"] += len(rejected)
                if pending is not None:
                    _collect(pending.result(), counts, full)
                if full:
                    pending = writer.submit(_insert, target, docs)
                else:
                    pending = writer.submit(_upsert_changed, target, docs)
                    seen.update(d["_id"] for d in docs)
                counts["documents"] += len(docs)
                progress.add(len(rows))
                batches_done += 1
                if fail_after_batches is not None and batches_done >= fail_after_batches:
                    pending.result()
                    raise InjectedFailure(f"injected failure after {batches_done} batch(es)")
            if pending is not None:
                _collect(pending.result(), counts, full)
            progress.log(final=True)
            if not full:
                d, f = _handle_deleted(target, seen, eff["defaults"]["on_source_delete"])
                counts["deleted"], counts["flagged"] = d, f
            result["collections"][name] = counts
            result["quarantined"] += counts["quarantined"]
        if full:
            for name in result["collections"]:  # an empty source table gives an empty collection
                if name not in client[staging.name].list_collection_names():
                    client[staging.name].create_collection(name)
    if full and publish_now:
        publish(client, staging.name, db, list(result["collections"]))
    return result


def _insert(coll, docs: list[dict]) -> tuple[int, int]:
    if docs:
        coll.insert_many(docs, ordered=False)
    return len(docs), len(docs)


def _collect(res: tuple[int, int], counts: dict, full: bool) -> None:
    written, n = res
    counts["written"] += written
    counts["unchanged"] += n - written


def _upsert_changed(coll, docs: list[dict]) -> tuple[int, int]:
    if not docs:
        return 0, 0
    existing = {
        d["_id"]: (d.get(HASH_FIELD), d.get(DELETED_FIELD))
        for d in coll.find({"_id": {"$in": [d["_id"] for d in docs]}}, {HASH_FIELD: 1, DELETED_FIELD: 1})
    }
    ops = [
        ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs if existing.get(d["_id"]) != (d[HASH_FIELD], None)
    ]
    if ops:
        coll.bulk_write(ops, ordered=False)
    return len(ops), len(docs)


def _handle_deleted(coll, seen: set, on_delete: str, chunk: int = 1000) -> tuple[int, int]:
    gone, flagged_already = [], 0
    for d in coll.find({}, {"_id": 1, DELETED_FIELD: 1}):
        if d["_id"] not in seen:
            if on_delete == "flag" and d.get(DELETED_FIELD):
                flagged_already += 1
                continue
            gone.append(d["_id"])
    deleted = flagged = 0
    for i in range(0, len(gone), chunk):
        part = gone[i : i + chunk]
        if on_delete == "delete":
            deleted += coll.bulk_write([DeleteMany({"_id": {"$in": part}})]).deleted_count
        else:
            flagged += coll.bulk_write(
                [UpdateMany({"_id": {"$in": part}}, {"$set": {DELETED_FIELD: True}})]
            ).modified_count
    return deleted, flagged


def _quarantine(meta_db, run_id: str, rejected: list[dict], logger) -> None:
    for r in rejected:
        logger.warning("quarantined %s row %s=%s: %s", r["table"], r["collection"], r["key"], r["error"])
    if meta_db is not None:
        meta_db[QUARANTINE].bulk_write(
            [
                ReplaceOne({"_id": f"{run_id}:{r['collection']}:{r['key']}"}, {**r, "run_id": run_id}, upsert=True)
                for r in rejected
            ]
        )


def publish(client, from_db: str, to_db: str, names: list[str]) -> None:
    """Move each checked, staged collection over its target (``renameCollection`` with ``dropTarget``), then
    drop the staging database. Indexes of the current target collection (other than ``_id``) are recreated
    on the staged one first. Rerunnable: a collection already moved is skipped."""
    from ferry.mongo import create_indexes, index_specs

    staged = set(client[from_db].list_collection_names())
    current = set(client[to_db].list_collection_names())
    for name in names:
        if name not in staged:
            continue  # moved by an earlier attempt of this publish
        if name in current:
            create_indexes(client[from_db][name], index_specs(client[to_db][name]))
        client.admin.command("renameCollection", f"{from_db}.{name}", to=f"{to_db}.{name}", dropTarget=True)
    client.drop_database(from_db)
