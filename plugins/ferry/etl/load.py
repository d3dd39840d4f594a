"""Batched loads into MongoDB: ``full`` (staging database, then swap), ``incremental`` (upsert changed
documents by ``_id``, handle source deletions), ``parallel`` (a new ``<db>-YYYYMMDD`` database, full).

Every path is idempotent: a full load rebuilds a staging database from scratch and swaps each
collection in with ``renameCollection`` (``dropTarget``), so readers see the old or the new
collection, never an empty one; an incremental load compares each document's ``_ferry_hash`` and
writes only what changed, so a rerun with no source change writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import bson
from pymongo import DeleteMany, ReplaceOne, UpdateMany

from ferry.etl import acquire
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD, build_batch

log = logging.getLogger(__name__)

STRATEGIES = ("full", "incremental", "parallel")
STAGING_SUFFIX = "__ferry_staging"
QUARANTINE = "_ferry_etl_quarantine"


class InjectedFailure(RuntimeError):
    """Raised by ``fail_after_batches`` (tests of crash recovery)."""


def parallel_db(db: str, day: str) -> str:
    """``<db>-YYYYMMDD`` for ``day`` (``YYYY-MM-DD`` or ``YYYYMMDD``)."""
    return f"{db}-{day.replace('-', '')}"


def load(conn, client, db: str, eff: dict, *, strategy: str = "full", batch_size: int = 10000,
         meta_db=None, run_id: str = "", fail_after_batches: int | None = None, logger: logging.Logger = log) -> dict:
    """Load every collection of the effective mapping ``eff`` from ``conn`` (psycopg) into ``client[db]``.

    Returns ``{"db", "strategy", "collections": {name: counts}, "quarantined": n}``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"refresh_strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    schema = eff["source"]["schema"]
    numeric = eff["defaults"]["numeric"]
    full = strategy in ("full", "parallel")
    staging = client[db + STAGING_SUFFIX]
    if full:
        client.drop_database(staging.name)  # leftovers of a crashed run
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferry-etl-writer")
    try:
        return _load(conn, client, db, eff, strategy, batch_size, meta_db, run_id, fail_after_batches, logger,
                     schema, numeric, full, staging, writer)
    finally:
        writer.shutdown(wait=True)


def _load(conn, client, db, eff, strategy, batch_size, meta_db, run_id, fail_after_batches, logger,
          schema, numeric, full, staging, writer) -> dict:
    from ferry.report import Progress

    batches_done = 0
    result = {"db": db, "strategy": strategy, "collections": {}, "quarantined": 0}
    for coll in eff["collections"]:
        name = coll["name"]
        total = acquire.count(conn, schema, coll["table"])
        progress = Progress(logger, f"{coll['table']} -> {db}.{name}", total)
        counts = {"source_rows": total, "documents": 0, "written": 0, "unchanged": 0, "deleted": 0, "flagged": 0,
                  "quarantined": 0}
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
        swap(client, staging.name, db, [c["name"] for c in eff["collections"]])
        client.drop_database(staging.name)
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
        ReplaceOne({"_id": d["_id"]}, d, upsert=True)
        for d in docs
        if existing.get(d["_id"]) != (d[HASH_FIELD], None)
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
            flagged += coll.bulk_write([UpdateMany({"_id": {"$in": part}}, {"$set": {DELETED_FIELD: True}})]).modified_count
    return deleted, flagged


def _quarantine(meta_db, run_id: str, rejected: list[dict], logger) -> None:
    for r in rejected:
        logger.warning("quarantined %s row %s=%s: %s", r["table"], r["collection"], r["key"], r["error"])
    if meta_db is not None:
        meta_db[QUARANTINE].bulk_write(
            [ReplaceOne({"_id": f"{run_id}:{r['collection']}:{r['key']}"}, {**r, "run_id": run_id}, upsert=True)
             for r in rejected]
        )


def swap(client, from_db: str, to_db: str, names: list[str]) -> None:
    """Move each staged collection over its target (``renameCollection`` with ``dropTarget``).

    Indexes of the current target collection (other than ``_id``) are recreated on the staged one first.
    """
    staged = set(client[from_db].list_collection_names())
    current = set(client[to_db].list_collection_names())
    for name in names:
        if name not in staged:
            client[from_db].create_collection(name)  # an empty source table gives an empty collection
        if name in current:
            create_indexes(client[from_db][name], index_specs(client[to_db][name]))
        client.admin.command("renameCollection", f"{from_db}.{name}", to=f"{to_db}.{name}", dropTarget=True)


def index_specs(coll) -> list[dict]:
    """Index specs without ``v``/``ns`` (as mongorestore normalises them), ``_id_`` left out."""
    out = []
    for spec in coll.list_indexes():
        spec = dict(spec)
        if spec.get("name") == "_id_":
            continue
        spec.pop("v", None)
        spec.pop("ns", None)
        spec["key"] = list(dict(spec["key"]).items())
        out.append(spec)
    return out


def create_indexes(coll, specs: list[dict]) -> None:
    from pymongo import IndexModel

    if specs:
        coll.create_indexes([IndexModel([tuple(k) for k in s["key"]], **{k: v for k, v in s.items() if k != "key"})
                             for s in specs])


def content_hash(db, names: list[str] | None = None, exclude: Callable[[str], bool] | None = None) -> dict:
    """``{collection: {"count", "sha256"}}`` over documents in ``_id`` order (BSON bytes)."""
    names = names if names is not None else sorted(n for n in db.list_collection_names() if not n.startswith("system."))
    out = {}
    for name in names:
        h = hashlib.sha256()
        n = 0
        for doc in db[name].find({}, sort=[("_id", 1)]):
            h.update(bson.encode(doc))
            n += 1
        out[name] = {"count": n, "sha256": h.hexdigest()}
    return out
