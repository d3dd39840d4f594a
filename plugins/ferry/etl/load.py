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

import itertools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pymongo import DeleteMany, ReplaceOne, UpdateMany

from ferry.errors import FerryError
from ferry.etl import acquire
from ferry.etl import keys as keymod
from ferry.etl.backup import STATE
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD, build_batch, doc_id

log = logging.getLogger(__name__)

STRATEGIES = ("full", "incremental", "dated_copy")
#: Earlier name of ``dated_copy`` (it never meant parallel work), still accepted.
ALIASES = {"parallel": "dated_copy"}
STAGING_SUFFIX = "__ferry_staging"
QUARANTINE = "_ferry_etl_quarantine"


class PublishDiffers(FerryError):
    """A published collection does not hold what was checked in staging (counted right after the swap)."""


@dataclass(frozen=True)
class Options:
    """How ``load`` runs: the strategy and batch size, which collections, and where its bookkeeping goes.

    ``meta_db`` (the bookkeeping database) holds the change-capture state and the quarantine; ``run_id``
    labels quarantined rows; ``backup_version`` (an incremental's delta version) receives the pre-images of
    what it changes; ``s3`` stores large delta parts; ``chunk`` bounds ``$in`` lookups. ``after_batch`` is
    called with the number of batches written so far, after each batch's write completed (crash tests)."""

    strategy: str = "full"
    batch_size: int = 10000
    collections: list[str] | None = None
    publish_now: bool = True
    meta_db: Any = None
    run_id: str = ""
    backup_version: str | None = None
    logger: logging.Logger = log
    s3: Any = None
    chunk: int = acquire.LOOKUP_CHUNK
    after_batch: Callable[[int], None] | None = field(default=None, compare=False)


class Written(NamedTuple):
    """What one batch's write did (``_Writer``): documents written of those given, the ids it added (change
    capture's delete check: ``_Added``) and pre-images saved."""

    written: int
    given: int
    added: tuple = ()
    saved: int = 0
    span: tuple = ()  # smallest and largest integer id written


@dataclass
class _Added:
    """The ids an incremental run added to the target: their count and key-hash sum, per key range too when
    the key is an integer (``acquire.range_fingerprints``), and their smallest and largest."""

    bounds: list | None = None
    n: int = 0
    total: int = 0
    by_range: dict = field(default_factory=dict)
    span: list | None = None

    def add(self, keys) -> None:
        for k in keys:
            h = acquire.key_hash(k)
            self.n, self.total = self.n + 1, self.total + h
            if self.bounds is not None and isinstance(k, int):
                r = self.by_range.setdefault(acquire.range_of(self.bounds, k), [0, 0])
                r[0], r[1] = r[0] + 1, r[1] + h


def _span_union(a, b) -> list | None:
    """The smallest ``[lo, hi]`` covering the key spans ``a`` and ``b`` (each ``[lo, hi]`` / ``(lo, hi)``, or
    empty / ``None``); ``None`` when both are empty."""
    spans = [s for s in (a, b) if s]
    if not spans:
        return None
    return [min(s[0] for s in spans), max(s[1] for s in spans)]


def strategy_name(strategy: str) -> str:
    """``strategy`` with the old alias resolved; an unknown one is an error listing the choices."""
    name = ALIASES.get(strategy, strategy)
    if name not in STRATEGIES:
        raise FerryError(f"refresh_strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    return name


def staging_db(db: str) -> str:
    return db + STAGING_SUFFIX


def dated_db(db: str, day: str) -> str:
    """``<db>-YYYYMMDD`` for ``day`` (``YYYY-MM-DD`` or ``YYYYMMDD``)."""
    return f"{db}-{day.replace('-', '')}"


def load(conn, client, db: str, eff: dict, opts: Options | None = None) -> dict:
    """Load every collection of the effective mapping ``eff`` (or only those named in ``opts.collections``:
    one task per collection, see ``merge``) from ``conn`` (psycopg) into ``client[db]``.

    ``full`` / ``dated_copy`` load ``<db>__ferry_staging``; with ``publish_now=False`` it is left for the
    caller to check and ``publish`` (what production_etl does). ``incremental`` reads only what changed
    since the change-capture state of the last successful run (``meta_db[STATE]``, see ``save_state``)
    and, with ``backup_version`` (a delta version, ``backup.open_delta``), stores the pre-image of every
    document it changes or deletes before the write. Returns ``{"db", "staging", "strategy",
    "collections": {name: counts}, "quarantined": n, "state": {name: change-capture state}}``. With
    ``collections``, a full load replaces only those staging collections (the caller clears the staging
    database once, before the first of them: ``clear_staging``).
    """
    opts = opts or Options()
    strategy = strategy_name(opts.strategy)
    if opts.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {opts.batch_size}")
    full = strategy != "incremental"
    staging = client[staging_db(db)]
    picked = [c for c in eff["collections"] if opts.collections is None or c["name"] in opts.collections]
    unknown = sorted(set(opts.collections or ()) - {c["name"] for c in picked})
    if unknown:
        raise FerryError(f"no collection {', '.join(unknown)} in the effective mapping")
    if full and opts.collections is None:
        client.drop_database(staging.name)  # leftovers of a crashed or rejected run
    elif full:
        for name in opts.collections or ():  # an earlier attempt of this task
            staging.drop_collection(name)
    _consistent_read(conn)
    job = _Job(conn, client, db, eff, opts, full, acquire.source_identity(conn))
    result: dict[str, Any] = {
        "db": db,
        "staging": staging.name if full else None,
        "strategy": strategy,
        "collections": {},
        "quarantined": 0,
        "state": {},
    }
    # the writer thread is shut down (waiting for its last write) when the block ends, also on an error
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferry-etl-writer") as writer:
        for coll in picked:
            counts, state = job.collection(coll, writer)
            result["collections"][coll["name"]] = counts
            result["quarantined"] += counts["quarantined"]
            result["state"][coll["name"]] = state
    if full:
        for name in result["collections"]:  # an empty source table gives an empty collection
            if name not in client[staging.name].list_collection_names():
                client[staging.name].create_collection(name)
    if full and opts.publish_now:
        publish(client, staging.name, db, list(result["collections"]))
    return result


def _consistent_read(conn) -> None:
    """Read the capture state and the rows in one REPEATABLE READ transaction when the caller has not begun
    one (production_etl's tasks import the run's source snapshot first): a row committed between the two
    would otherwise be loaded without being in the state, and its later delete missed."""
    from psycopg.pq import TransactionStatus

    if not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _new_counts(total: int, coll: dict, capture: bool, full: bool) -> dict[str, Any]:
    return {
        "source_rows": total,
        "read": 0,
        "documents": 0,
        "written": 0,
        "unchanged": 0,
        "deleted": 0,
        "flagged": 0,
        "quarantined": 0,
        "backed_up": 0,
        "missing": {r["as"]: 0 for r in coll["relations"] if r["kind"] != "embed_many"},
        "change_capture": "watermark" if capture else ("full read" if not full else "-"),
    }


@dataclass
class _Job:
    """One ``load`` call: what every collection's load shares."""

    conn: Any
    client: Any
    db: str
    eff: dict
    opts: Options
    full: bool
    source_id: Any
    batches: int = 0

    def collection(self, coll: dict, writer: ThreadPoolExecutor) -> tuple[dict, dict]:
        """Read, transform and write one collection (one write in flight while the next batch is read and
        transformed); an incremental then handles the source's deletions. Returns (counts, capture state)."""
        from ferry.report import Progress

        opts, schema, name = self.opts, self.eff["source"]["schema"], coll["name"]
        found = opts.meta_db[STATE].find_one({"_id": f"{self.db}:{name}"}) if opts.meta_db is not None else None
        prev = found if not self.full else None
        now = _capture_state(self.conn, schema, coll, self.eff, self.db, self.source_id, prev)  # before reading
        compare = now.pop("compare", None)  # the key ranges' fingerprints under the previous run's bounds
        capture = _capture_valid(prev, now)
        counts = _new_counts(now["keys"][0], coll, capture, self.full)
        # what this run adds (change capture's delete check)
        new_keys = _Added(bounds=((prev or {}).get("ranges") or {}).get("bounds") if capture else None)
        target = self.client[staging_db(self.db)][name] if self.full else self.client[self.db][name]
        out = _Writer(target, opts.meta_db, opts.backup_version, name, opts.s3, opts.chunk)
        progress = Progress(opts.logger, f"{coll['table']} -> {self.db}.{name}", counts["source_rows"])
        pending = None
        for rows, docs, extra in self._batches(coll, target, prev if capture else None, now, counts):
            if pending is not None:
                _account(pending.result(), counts, new_keys)
            pending = writer.submit(out.insert, docs) if self.full else writer.submit(out.upsert_changed, docs, extra)
            progress.add(len(rows))
            self.batches += 1
            if opts.after_batch is not None:
                _account(pending.result(), counts, new_keys)
                pending = None
                opts.after_batch(self.batches)
        if pending is not None:
            _account(pending.result(), counts, new_keys)
        progress.log(final=True)
        if not self.full:
            self._deletions(coll, target, out, counts, prev if capture else None, now, new_keys, compare)
        if now.get("ranges") and new_keys.span:  # the next run probes up to the largest id this one wrote
            now["ranges"]["span"] = _span_union(now["ranges"]["span"], new_keys.span)
        for rel, n in counts["missing"].items():
            if n:
                opts.logger.warning("%s.%s: %d row(s) without their relation's target row", name, rel, n)
        return counts, now

    def _batches(self, coll: dict, target, prev: dict | None, now: dict, counts: dict):
        """(rows, documents, ids of rows that gave no document) per batch; rejected rows are quarantined."""
        schema, numeric, opts = self.eff["source"]["schema"], self.eff["defaults"]["numeric"], self.opts
        processed: set = set()
        cols = keymod.columns(coll)
        source: Any = acquire.batches(self.conn, schema, coll, opts.batch_size)
        if prev is not None:
            source = itertools.chain(
                acquire.changed_batches(self.conn, schema, coll, prev["marks"], opts.batch_size),
                self._dirty_batches(coll, target, prev, now, processed),
            )
        for rows, children in source:
            docs, rejected = build_batch(rows, coll, children, numeric, counts["missing"])
            if rejected:
                _quarantine(opts.meta_db, opts.run_id, rejected, opts.logger)
                counts["quarantined"] += len(rejected)
            extra: list = []
            if not self.full:
                ids = {d["_id"] for d in docs}
                extra = [k for k in (doc_id(keymod.of_row(r, cols), cols, numeric) for r in rows) if k not in ids]
                if prev is not None:
                    processed.update(keymod.of_row(r, cols) for r in rows)
            counts["documents"] += len(docs)
            counts["read"] += len(rows)
            yield rows, docs, extra

    def _dirty_batches(self, coll: dict, target, prev: dict, now: dict, processed: set):
        """The rows of parents that lost embedded children (after the changed rows: ``processed`` is complete)."""
        schema, numeric = self.eff["source"]["schema"], self.eff["defaults"]["numeric"]
        parents = _dirty_parents(self.conn, schema, coll, target, prev, now, numeric)
        dirty = [k for k in parents if k not in processed]
        for i in range(0, len(dirty), self.opts.chunk):
            rows, children = acquire.fetch_ids(self.conn, schema, coll, dirty[i : i + self.opts.chunk])
            if rows:
                yield rows, children

    def _deletions(self, coll: dict, target, out: _Writer, counts: dict, prev, now: dict, added: _Added, compare):
        """Incremental: when the key sets may differ (rows deleted at the source), delete or flag the gone ids:
        looked for only in the key ranges whose fingerprint moved (integer keys), else by comparing every key."""
        expected = [prev["keys"][0] + added.n, prev["keys"][1] + added.total] if prev else None
        if expected == now["keys"]:
            return
        on_delete = self.eff["defaults"]["on_source_delete"]
        numeric = self.eff["defaults"]["numeric"]
        schema = self.eff["source"]["schema"]
        gone = _gone_in_ranges(self.conn, schema, coll, target, prev, compare, added, self.opts) if prev else None
        if gone is None:
            gone = _gone(self.conn, schema, coll, target, on_delete, numeric)
        counts["deleted"], counts["flagged"], saved = out.delete(gone, on_delete)
        counts["backed_up"] += saved


def clear_staging(client, db: str) -> dict[str, int]:
    """Drop the staging database of ``db`` (what a crashed or rejected run left); returns what it held."""
    staging = client[staging_db(db)]
    left = {n: staging[n].estimated_document_count() for n in staging.list_collection_names()}
    client.drop_database(staging.name)
    return left


def merge(parts) -> dict:
    """One result from the per-collection results of ``load(..., collections=[name])`` (mapped tasks)."""
    parts = [parts] if isinstance(parts, dict) else [p for p in parts if p]
    if not parts:
        raise FerryError("no load results to merge")
    out = {k: parts[0].get(k) for k in ("db", "staging", "strategy", "snapshot", "backup_version")}
    out.update(collections={}, quarantined=0, state={})
    for p in parts:
        out["collections"].update(p["collections"])
        out["state"].update(p["state"])
        out["quarantined"] += p["quarantined"]
        if p.get("validators"):
            out.setdefault("validators", []).extend(p["validators"])
    return out


def changed(meta_db, loaded: dict, *, s3=None):
    """For ``checks.run``: what an incremental load wrote (``checks.Changed``, from its delta version), or
    ``None`` (a full or dated-copy load, or no delta version: every document is checked)."""
    from ferry.etl import backup, checks

    version = loaded.get("backup_version")
    if loaded.get("strategy") != "incremental" or not version:
        return None
    deleted = {n for n, c in loaded["collections"].items() if c.get("deleted") or c.get("flagged")}
    keys = ("read", "written", "deleted", "flagged", "quarantined")
    quiet = not any(c.get(k) for c in loaded["collections"].values() for k in keys)
    return checks.Changed(lambda name: backup.changed_ids(meta_db, version, name, s3=s3), deleted, quiet)


def _account(res: Written, counts: dict, new_keys: _Added) -> None:
    counts["written"] += res.written
    counts["unchanged"] += res.given - res.written
    counts["backed_up"] += res.saved
    new_keys.add(res.added)
    new_keys.span = _span_union(new_keys.span, res.span)


# --------------------------------------------------------------------------- change capture state


def _parts(coll: dict):
    """(part name, table, watermark) of every table a collection reads: ``""`` = the root."""
    yield "", coll["table"], coll.get("watermark", acquire.XMIN)
    for rel in coll["relations"]:
        if rel["kind"] != "reference":
            yield rel["as"], rel["table"], rel.get("watermark", acquire.XMIN)


def _capture_state(conn, schema: str, coll: dict, eff: dict, db: str, source_id: str, prev: dict | None) -> dict:
    """What the next incremental run compares with: each table's high-water mark, the key fingerprint of
    the root table (per key range too, for an integer key: ``_key_ranges``) and of every embedded child
    table, the collection's mapping, the source."""
    from ferry.hashing import json_digest

    part = {k: v for k, v in coll.items() if k != "line"}
    keys, ranges, compare = _key_ranges(conn, schema, coll, prev)
    return {
        "_id": f"{db}:{coll['name']}",
        "db": db,
        "collection": coll["name"],
        "source": source_id,
        "mapping": json_digest([part, eff["defaults"]["numeric"]], 16),
        "marks": {
            p: {"watermark": wm, "value": None if wm == "none" else acquire.take_watermark(conn, schema, t, wm)}
            for p, t, wm in _parts(coll)
        },
        "keys": keys,
        "ranges": ranges,
        "compare": compare,
        "children": {
            r["as"]: acquire.fingerprint(conn, schema, r["table"], r["foreign_key"])
            for r in coll["relations"]
            if r["kind"] == "embed_many"
        },
    }


def _key_ranges(conn, schema: str, coll: dict, prev: dict | None) -> tuple[list[int], dict | None, list | None]:
    """(key fingerprint, key ranges, the ranges' fingerprints under ``prev``'s bounds). An integer key's
    table is cut into ranges of about ``acquire.RANGE_KEYS`` keys, each with its fingerprint, and the
    smallest and largest key (``span``); the previous run's bounds are kept while no range has grown past
    twice its size. Other keys: one fingerprint, no ranges."""
    table, col = coll["table"], coll["id"]
    if keymod.composite(coll) or acquire.key_type(conn, schema, table, col) not in acquire.INT_KEYS:
        return acquire.fingerprint(conn, schema, table, keymod.columns(coll)), None, None
    old = (prev or {}).get("ranges") or {}
    compare = acquire.range_fingerprints(conn, schema, table, col, old["bounds"]) if old.get("bounds") else None
    rows = sum(n for n, _ in compare) if compare else acquire.count(conn, schema, table)
    size = max(acquire.RANGE_KEYS, -(-rows // acquire.MAX_RANGES))
    if compare is not None and max(n for n, _ in compare) <= 2 * size:
        bounds, fp = old["bounds"], compare
    else:
        bounds = acquire.range_bounds(conn, schema, table, col, rows)
        fp = acquire.range_fingerprints(conn, schema, table, col, bounds)
    span = _span_union(acquire.key_span(conn, schema, table, col), old.get("span"))
    keys = [sum(n for n, _ in fp), sum(h for _, h in fp)]
    return keys, {"bounds": bounds, "fp": fp, "span": span}, compare


#: A delete check probes at most this many ids by range (``_gone_in_ranges``); beyond, every key is compared.
PROBE_LIMIT = 20_000


def _gone_in_ranges(conn, schema: str, coll: dict, target, prev: dict, compare, added: _Added, opts) -> list | None:
    """Ids of live target documents whose source row is gone, looked for only in the key ranges whose
    fingerprint differs from the previous run's plus what this run added: the integers of such a range (within
    the smallest and largest id ever written) that the source no longer has are probed in the target
    (``$in``, ``opts.chunk`` at a time). ``None`` when that cannot answer (no ranges, or more than
    ``PROBE_LIMIT`` ids to probe: sparse keys): then the caller compares every key."""
    old = prev.get("ranges") or {}
    span = _span_union(old["span"], added.span) if old.get("span") else None  # every id ever written
    if compare is None or not old.get("bounds") or span is None or len(compare) != len(old["fp"]):
        return None
    bounds = old["bounds"]
    moved = [
        i
        for i, (now, was) in enumerate(zip(compare, old["fp"], strict=True))
        if now != [was[0] + added.by_range.get(i, [0, 0])[0], was[1] + added.by_range.get(i, [0, 0])[1]]
    ]
    probe: list[int] = []
    for i in moved:
        lo = max(bounds[i - 1] if i else span[0], span[0])
        hi = min(bounds[i] if i < len(bounds) else span[1] + 1, span[1] + 1)
        if hi - lo - (compare[i][0]) > PROBE_LIMIT - len(probe):
            return None
        have = acquire.keys_between(conn, schema, coll["table"], coll["id"], lo, hi)
        probe += [k for k in range(lo, hi) if k not in have]
    gone = []
    for i in range(0, len(probe), opts.chunk):
        found = target.find({"_id": {"$in": probe[i : i + opts.chunk]}}, {"_id": 1, DELETED_FIELD: 1})
        gone += [d["_id"] for d in found if not d.get(DELETED_FIELD)]
    opts.logger.info(
        "%s: delete check in %d of %d key ranges, %d ids probed, %d gone",
        coll["name"],
        len(moved),
        len(compare),
        len(probe),
        len(gone),
    )
    return sorted(gone)


def _capture_valid(prev: dict | None, now: dict) -> bool:
    if not prev or prev.get("mapping") != now["mapping"]:
        return False
    for p, m in now["marks"].items():
        old = prev["marks"].get(p)
        if not old or old["watermark"] != m["watermark"] or m["watermark"] == "none":
            return False
        if m["watermark"] == acquire.XMIN and prev.get("source") != now["source"]:
            return False  # xmin of another database (a restored dump) says nothing
    return True


def save_state(meta_db, loaded: dict) -> None:
    """Record the change-capture state of a load (call it once the load is published: the run succeeded)."""
    for state in (loaded.get("state") or {}).values():
        meta_db[STATE].replace_one({"_id": state["_id"]}, state, upsert=True)


class _Unordered(Exception):
    """Two key streams are not in the same order (then the comparison falls back to a set)."""


def _merge(left, right) -> Any:
    """Full outer merge of two iterators of (key, value) sorted by key: yields (key, lvalue, rvalue) with
    ``_NONE`` for a side without that key."""
    li, ri = iter(left), iter(right)
    lk: Any = _NONE
    rk: Any = _NONE
    last_l: Any = _NONE
    last_r: Any = _NONE
    lv = rv = None

    def nxt(it, last):
        for k, v in it:
            if last is not _NONE and not last < k:
                raise _Unordered(f"{last!r} then {k!r}")
            return k, v
        return _NONE, None

    lk, lv = nxt(li, last_l)
    rk, rv = nxt(ri, last_r)
    while lk is not _NONE or rk is not _NONE:
        try:
            if rk is _NONE or (lk is not _NONE and lk < rk):
                yield lk, lv, _NONE
                last_l = lk
                lk, lv = nxt(li, last_l)
            elif lk is _NONE or rk < lk:
                yield rk, _NONE, rv
                last_r = rk
                rk, rv = nxt(ri, last_r)
            else:
                yield lk, lv, rv
                last_l, last_r = lk, rk
                lk, lv = nxt(li, last_l)
                rk, rv = nxt(ri, last_r)
        except TypeError as exc:
            raise _Unordered(str(exc)) from exc


_NONE = object()


def _gone(conn, schema: str, coll: dict, target, on_delete: str, numeric: str) -> list:
    """Ids of live target documents whose source row is gone: sorted source keys against sorted target ids
    (streams; a set only if the two orders differ)."""
    cols, table = keymod.columns(coll), coll["table"]
    src = ((doc_id(k, cols, numeric), None) for k in acquire.sorted_keys(conn, schema, table, cols))
    found = target.find({}, {"_id": 1, DELETED_FIELD: 1}).sort("_id", 1)
    tgt = ((keymod.stored(d["_id"]), d.get(DELETED_FIELD)) for d in found)
    try:
        return [k for k, s, t in _merge(src, tgt) if s is _NONE and not t]
    except _Unordered:
        keys = {doc_id(k, cols, numeric) for k in acquire.sorted_keys(conn, schema, table, cols)}
        found = target.find({}, {"_id": 1, DELETED_FIELD: 1})
        ids = ((keymod.stored(d["_id"]), d.get(DELETED_FIELD)) for d in found)
        return [k for k, deleted in ids if k not in keys and not deleted]


def _source_key(value: Any, cols: list[str]) -> Any:
    """A stored ``_id`` as a source key (``keys.of_row``): a composite one's values in key order."""
    return tuple(value[c] for c in cols) if len(cols) > 1 else value


def _dirty_parents(conn, schema: str, coll: dict, target, prev: dict, now: dict, numeric: str) -> list:
    """Parents that lost embedded child rows (a delete is not seen by a watermark): where a child table's
    key fingerprint moved, the number of child rows per parent against the array lengths in the target."""
    dirty: list = []
    cols = keymod.columns(coll)
    for rel in coll["relations"]:
        if rel["kind"] != "embed_many" or prev.get("children", {}).get(rel["as"]) == now["children"][rel["as"]]:
            continue
        src = ((doc_id(k, cols, numeric), (k, n)) for k, n in acquire.child_counts(conn, schema, rel))
        field = f"${rel['as']}"
        tgt = (
            (keymod.stored(d["_id"]), d["n"])
            for d in target.aggregate([{"$sort": {"_id": 1}}, {"$project": {"n": {"$size": {"$ifNull": [field, []]}}}}])
        )
        try:
            for k, s, t in _merge(src, tgt):
                if t is _NONE:
                    continue  # no document (yet): a new row, read by its watermark
                if (s[1] if s is not _NONE else 0) != t:
                    dirty.append(s[0] if s is not _NONE else _source_key(k, cols))
        except _Unordered:
            counts = {doc_id(k, cols, numeric): (k, n) for k, n in acquire.child_counts(conn, schema, rel)}
            for d in target.aggregate([{"$project": {"n": {"$size": {"$ifNull": [field, []]}}}}]):
                s = counts.get(keymod.stored(d["_id"]))
                if (s[1] if s else 0) != d["n"]:
                    dirty.append(s[0] if s else _source_key(d["_id"], cols))
    return list(dict.fromkeys(dirty))


# --------------------------------------------------------------------------- writes


class _Writer:
    """The writes of one collection: inserts (full), or upserts of changed documents and deletes, each
    preceded by the pre-images of what it changes (a delta backup version)."""

    def __init__(self, target, meta_db, backup_version: str | None, name: str, s3, chunk: int):
        self.target, self.meta, self.name, self.s3, self.chunk = target, meta_db, name, s3, chunk
        #: the delta version that receives pre-images; ``None``: no backup (no version or no meta database)
        self.version = backup_version if meta_db is not None else None

    def _chunks(self, items: list):
        for i in range(0, len(items), self.chunk):
            yield items[i : i + self.chunk]

    def insert(self, docs: list[dict]):
        if docs:
            self.target.insert_many(docs, ordered=False)
        return Written(len(docs), len(docs), span=_int_span(docs))

    def _save_preimages(self, ids: list, existing: set, old: dict | None = None) -> int:
        """Store the pre-image of each of ``ids`` (``absent`` for one not in the target) in the delta version;
        ``old``: the documents already read (else they are read here)."""
        if self.version is None or not ids:
            return 0
        from ferry.etl import backup

        if old is None:
            old = {}
            for part in self._chunks([i for i in ids if i in existing]):
                old.update({keymod.stored(d["_id"]): d for d in self.target.find({"_id": {"$in": part}})})
        entries = [{"_id": i, "doc": old[i]} if i in old else {"_id": i, "absent": True} for i in ids]
        backup.add_delta_part(self.meta, self.version, self.name, entries, s3=self.s3)
        return len(entries)

    def upsert_changed(self, docs: list[dict], extra: list):
        """Replace the documents whose hash differs from the target's; one ``$in`` read per chunk gives the
        hashes and, when a delta version is open, the pre-images too."""
        existing: dict = {}
        old: dict | None = {} if self.version is not None else None
        projection = None if old is not None else {HASH_FIELD: 1, DELETED_FIELD: 1}
        for part in self._chunks([d["_id"] for d in docs] + extra):
            for d in self.target.find({"_id": {"$in": part}}, projection):
                k = keymod.stored(d["_id"])
                existing[k] = (d.get(HASH_FIELD), d.get(DELETED_FIELD))
                if old is not None:
                    old[k] = d
        added = [k for k in [d["_id"] for d in docs] + extra if k not in existing or existing[k][1]]
        changed = [d for d in docs if existing.get(d["_id"]) != (d[HASH_FIELD], None)]
        saved = self._save_preimages([d["_id"] for d in changed], set(existing), old)
        del old
        for part in self._chunks(changed):
            self.target.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in part], ordered=False)
        return Written(len(changed), len(docs), tuple(added), saved, _int_span(changed))

    def delete(self, gone: list, on_delete: str) -> tuple[int, int, int]:
        saved = self._save_preimages(gone, set(gone))
        deleted = flagged = 0
        for part in self._chunks(gone):
            if on_delete == "delete":
                deleted += self.target.bulk_write([DeleteMany({"_id": {"$in": part}})]).deleted_count
            else:
                flagged += self.target.bulk_write(
                    [UpdateMany({"_id": {"$in": part}}, {"$set": {DELETED_FIELD: True}})]
                ).modified_count
        return deleted, flagged, saved


def _int_span(docs: list[dict]) -> tuple:
    ids = [d["_id"] for d in docs if type(d["_id"]) is int]
    return (min(ids), max(ids)) if ids else ()


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
    """Move each checked, staged collection over its target (``ferry.mongo.swap_in``: ``renameCollection``
    with ``dropTarget``, journaled), then count what readers see against what was staged and drop the staging
    database. Indexes of the current target collection (other than ``_id``) are recreated on the staged one
    first. Rerunnable: a collection already moved is skipped. Raises ``PublishDiffers`` (staging gone, the
    target's documents named) when a published collection does not hold exactly the staged count."""
    from ferry.mongo import create_indexes, index_specs, swap_in

    staged = set(client[from_db].list_collection_names())
    current = set(client[to_db].list_collection_names())
    expected: dict[str, int] = {}
    for name in names:
        if name not in staged:
            continue  # moved by an earlier attempt of this publish
        if name in current:
            create_indexes(client[from_db][name], index_specs(client[to_db][name]))
        expected[name] = client[from_db][name].count_documents({})
        swap_in(client, from_db, to_db, [name])
    got = {name: client[to_db][name].count_documents({}) for name in expected}
    wrong = {n: (expected[n], got[n]) for n in expected if got[n] != expected[n]}
    if wrong:
        raise PublishDiffers(
            f"published {to_db} differs from the checked staging: "
            + "; ".join(f"{n}: staged {e} documents, readers see {g}" for n, (e, g) in sorted(wrong.items()))
            + ". Rerun the load (a full run replaces these collections)."
        )
    client.drop_database(from_db)
