"""Source-vs-target validation with Great Expectations (``ferry.validation.validate``).

Each check is a row ``{check, collection, expected, actual}`` measured on both sides; one GX
expectation (the two columns are equal) runs over them, and a failure names every row that differs.
production_etl runs it on the *staging* database of a full or dated-copy load, before anything is
published (write-audit-publish): documents per collection, unique ``_id``, no null ``_id``, embedded
row counts, dangling references and a sample of documents rebuilt from the source and compared by hash.
A full check reads each collection once (``_scan``: one aggregation for every counter and the referenced
values); unique ``_id`` is what the collection's ``_id`` index guarantees (``_id_unique``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from psycopg import sql

from ferry.errors import FerryError
from ferry.etl import acquire
from ferry.etl import keys as keymod
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD, build_batch, doc_hash, doc_id

log = logging.getLogger(__name__)


class TargetDiffers(FerryError, AssertionError):
    """The loaded data differs from the source; nothing was published."""


def measure(
    conn,
    client,
    db: str,
    eff: dict,
    *,
    quarantined: dict[str, int] | None = None,
    sample: int = 50,
    changed: Changed | None = None,
) -> list[dict]:
    """Per collection: documents against source rows (less the quarantined), duplicate and null ``_id``,
    embedded children against the source, dangling references, and a sample rebuilt from the source.
    A full check (``_measure_full``) reads each collection once; ``changed`` (an incremental run): the checks
    that would read every document read only what the run wrote (``_measure_changed``)."""
    quarantined = quarantined or {}
    tdb = client[db]
    rows: list[dict] = []
    for coll in eff["collections"]:
        name = coll["name"]

        def row(check: str, expected: int, actual: int, name: str = name) -> None:
            rows.append({"check": check, "collection": name, "expected": expected, "actual": actual})

        if changed is not None and changed.usable(name):
            _measure_changed(conn, tdb, coll, eff, quarantined.get(name, 0), sample, changed, row)
        else:
            _measure_full(conn, tdb, coll, eff, quarantined.get(name, 0), sample, row)
    return rows


def _measure_full(conn, tdb, coll: dict, eff: dict, quarantined: int, sample: int, row) -> None:
    """A full or dated-copy load's checks, one aggregation over the collection (``_scan``: live documents,
    embedded children per embed_many, the first reference's dangling values); duplicate ``_id`` from its
    unique ``_id`` index (``_id_unique``; without one, a ``$group`` by ``_id``), null ``_id`` by a point
    lookup on that index, a second or later reference by ``distinct``, and the sample rebuilt from the
    source (a lookup of its ids)."""
    schema, numeric, name = eff["source"]["schema"], eff["defaults"]["numeric"], coll["name"]
    target = tdb[name]
    src = acquire.count(conn, schema, coll["table"]) - quarantined
    refs = [r for r in coll["relations"] if r["kind"] == "reference"]
    scan = _scan(tdb, target, coll, refs[0] if refs else None)
    row("documents", src, scan.live)
    row("duplicate _id", 0, 0 if _id_unique(target) else _duplicates(target))
    row("null _id", 0, target.count_documents({"_id": None}))
    for rel in coll["relations"]:
        if rel["kind"] == "embed_many":
            row(f"embedded {rel['as']}", _embedded_source(conn, schema, coll, rel), scan.embedded[rel["as"]])
        elif rel["kind"] == "reference":
            dangling = scan.dangling if rel is refs[0] else _dangling(tdb, rel, target)
            row(f"dangling {rel['as']} -> {rel['collection']}", 0, dangling)
    n, bad = _sample_mismatches(conn, schema, coll, target, numeric, sample)
    row(f"sample checksum ({n} docs)", 0, bad)


_LIVE = {DELETED_FIELD: {"$ne": True}}


@dataclass
class _Scanned:
    """What one pass over a collection counted: live documents, embedded children of live documents per
    embed_many (``as``), and the referenced values of the scanned reference without a live document."""

    live: int = 0
    embedded: dict[str, int] = field(default_factory=dict)
    dangling: int = 0


def _scan(tdb, target, coll: dict, ref: dict | None) -> _Scanned:
    """One aggregation over every document of ``target``, instead of a count, a ``$size`` sum per embed_many
    and a ``distinct``: documents are grouped by their deleted flag and ``ref``'s value (the first reference),
    then by that value alone, so each distinct referenced value comes once, in cursor batches, with the counts
    of its documents; the client adds the counts up and looks the values up ``LOOKUP_CHUNK`` at a time
    (``_missing``). The server holds one group per distinct value, as ``distinct`` does, without its 16 MB
    reply; the client holds one chunk. Live is the query ``{_ferry_deleted: {$ne: true}}``, decided here."""
    embeds = [r["as"] for r in coll["relations"] if r["kind"] == "embed_many"]
    sizes = {f"e{i}": {"$sum": {"$size": {"$ifNull": [f"${a}", []]}}} for i, a in enumerate(embeds)}
    key = {"d": f"${DELETED_FIELD}"} | ({"r": f"${ref['as']}"} if ref else {})
    pipeline = [
        {"$group": {"_id": key, "n": {"$sum": 1}, **sizes}},
        {"$group": {"_id": "$_id.r", "parts": {"$push": "$$ROOT"}}},
    ]
    out = _Scanned(embedded=dict.fromkeys(embeds, 0))
    pending: list = []
    for group in target.aggregate(pipeline):
        for part in group["parts"]:
            if not _deleted(part["_id"].get("d")):
                out.live += part["n"]
                for i, a in enumerate(embeds):
                    out.embedded[a] += part[f"e{i}"]
        if ref and group["_id"] is not None:
            pending.append(group["_id"])
            if len(pending) == acquire.LOOKUP_CHUNK:
                out.dangling, pending = out.dangling + _missing(tdb, ref["collection"], pending), []
    if ref and pending:
        out.dangling += _missing(tdb, ref["collection"], pending)
    return out


def _deleted(flag) -> bool:
    """Whether a document whose ``_ferry_deleted`` is ``flag`` fails ``{_ferry_deleted: {$ne: true}}`` (it is
    ``true``, or an array holding ``true``)."""
    return flag is True or (isinstance(flag, list) and any(v is True for v in flag))


def _id_unique(target) -> bool:
    """Whether MongoDB guarantees that ``target``'s ``_id``s are unique: it lists its ``_id`` index (``_id_``,
    key ``{_id: 1}``; mongod lists it without ``unique``: it is unique by definition) or another unique index
    on ``_id`` alone, neither partial nor marked ``unique: false``."""
    for name, spec in target.index_information().items():
        if [tuple(k) for k in spec.get("key", [])] != [("_id", 1)] or "partialFilterExpression" in spec:
            continue
        if spec.get("unique", name == "_id_"):
            return True
    return False


def _duplicates(target) -> int:
    """``_id``s held by more than one document (one more pass; only when no index makes them unique)."""
    dup = list(
        target.aggregate(
            [{"$group": {"_id": "$_id", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}, {"$count": "ids"}]
        )
    )
    return dup[0]["ids"] if dup else 0


@dataclass
class Changed:
    """What an incremental run wrote: ``ids(name)`` streams the ids it wrote or deleted in a collection (its
    delta version's pre-images), ``deleted`` the collections where it deleted or flagged documents. A
    collection whose ids are not integers or strings (they could not be looked up in the source as stored)
    is checked in full."""

    ids: Callable[[str], Iterable]
    deleted: set = field(default_factory=set)
    quiet: bool = False  # the run read no changed row: wrote, deleted and quarantined nothing
    _seen: dict = field(default_factory=dict)
    _started: dict = field(default_factory=dict)  # name -> (ids usable read, the rest of their stream)

    def usable(self, name: str) -> bool:
        """Whether ``name``'s first 1,000 ids are integers or strings; the stream is kept for ``written``."""
        if name not in self._seen:
            stream = iter(self.ids(name))
            head = list(itertools.islice(stream, 1000))
            self._seen[name] = all(type(i) in (int, str) for i in head)
            if self._seen[name]:
                self._started[name] = (head, stream)
        return self._seen[name]

    def written(self, name: str) -> Iterator:
        """``ids(name)``, going on from where ``usable`` stopped reading (the delta's parts are read once)."""
        if name not in self._started:
            return iter(self.ids(name))
        head, rest = self._started.pop(name)
        return itertools.chain(head, rest)


def _measure_changed(conn, tdb, coll: dict, eff: dict, quarantined: int, sample: int, changed: Changed, row) -> None:
    """An incremental run's checks, scaled with what it wrote: documents against source rows (the target's
    count from its metadata when deletes delete), no null ``_id`` (a point lookup; duplicates cannot exist
    in place: the ``_id`` index is unique), every written document rebuilt from the source and compared
    (values, embedded parents and children, hash), dangling references among the written documents (in
    every document when the referenced collection lost some this run), and the random sample of a full
    check."""
    schema, numeric, name = eff["source"]["schema"], eff["defaults"]["numeric"], coll["name"]
    target = tdb[name]
    src = acquire.count(conn, schema, coll["table"]) - quarantined
    in_place = eff["defaults"]["on_source_delete"] == "delete"
    row("documents", src, target.estimated_document_count() if in_place else target.count_documents(_LIVE))
    row("null _id", 0, 0 if target.find_one({"_id": None}, {"_id": 1}) is None else 1)
    refs = [r for r in coll["relations"] if r["kind"] == "reference"]
    n = bad = 0
    values: dict[str, set] = {r["as"]: set() for r in refs}
    step = acquire.LOOKUP_CHUNK
    for ids in acquire.chunked(changed.written(name), step):
        m, b, stored = _rebuilt_mismatches(conn, schema, coll, target, numeric, ids)
        n, bad = n + m, bad + b
        for r in refs:
            values[r["as"]].update(keymod.stored(d[r["as"]]) for d in stored.values() if d.get(r["as"]) is not None)
    row(f"written documents rebuilt ({n} docs)", 0, bad)
    for r in refs:
        full = r["collection"] in changed.deleted
        dangling = (
            _dangling(tdb, r, target) if full else _missing(tdb, r["collection"], sorted(values[r["as"]], key=str))
        )
        row(f"dangling {r['as']} -> {r['collection']}" + ("" if full else " (written)"), 0, dangling)
    m, b = _sample_mismatches(conn, schema, coll, target, numeric, sample)
    row(f"sample checksum ({m} docs)", 0, b)


def _embedded_source(conn, schema: str, coll: dict, rel: dict) -> int:
    """Children rows of live parents in the source (their target side: ``_scan``)."""
    q = sql.SQL("SELECT count(*) FROM {s}.{c} WHERE {fk} IN (SELECT {id} FROM {s}.{p})").format(
        s=sql.Identifier(schema),
        c=sql.Identifier(rel["table"]),
        fk=keymod.row_expr(acquire.foreign_key(rel)),
        id=keymod.idents(keymod.columns(coll)),
        p=sql.Identifier(coll["table"]),
    )
    return conn.execute(q).fetchone()[0]


def _dangling(tdb, rel: dict, target) -> int:
    """Referenced ids with no live document in the referenced collection."""
    return _missing(tdb, rel["collection"], [v for v in target.distinct(rel["as"]) if v is not None])


def _missing(tdb, collection: str, values: list) -> int:
    """How many of ``values`` have no live document in ``collection``."""
    step = acquire.LOOKUP_CHUNK  # bounded $in: its cost grows with the square of the list
    found = sum(
        tdb[collection].count_documents({"_id": {"$in": values[i : i + step]}, **_LIVE})
        for i in range(0, len(values), step)
    )
    return len(values) - found


def _sample_mismatches(conn, schema: str, coll: dict, target, numeric: str, sample: int) -> tuple[int, int]:
    """A random sample of source rows rebuilt into documents and compared with the stored ones (content hash
    as stored and as recomputed): ``(documents rebuilt, mismatches)``."""
    cols = keymod.columns(coll)
    q = sql.SQL("SELECT {id} FROM {s}.{t} ORDER BY random() LIMIT %s").format(
        id=keymod.idents(cols), s=sql.Identifier(schema), t=sql.Identifier(coll["table"])
    )
    ids = [r[0] if len(cols) == 1 else tuple(r) for r in conn.execute(q, (sample,)).fetchall()]
    n, bad, _stored = _rebuilt_mismatches(conn, schema, coll, target, numeric, ids)
    return n, bad


def _rebuilt_mismatches(conn, schema: str, coll: dict, target, numeric: str, ids: list) -> tuple[int, int, dict]:
    """The source rows of ``ids`` rebuilt into documents and compared with the stored ones (content hash as
    stored and as recomputed): ``(documents rebuilt, mismatches, stored documents)``. An id without a
    source row (deleted) must have no live document."""
    cols = keymod.columns(coll)
    src_rows, children = acquire.fetch_ids(conn, schema, coll, ids)
    docs, _rejected = build_batch(src_rows, coll, children, numeric)
    wanted = [doc_id(k, cols, numeric) for k in ids] if len(cols) > 1 else list(ids)
    stored = {keymod.stored(d["_id"]): d for d in target.find({"_id": {"$in": wanted}})}
    bad = sum(
        1
        for d in docs
        if d["_id"] not in stored
        or stored[d["_id"]].get(HASH_FIELD) != d[HASH_FIELD]
        or doc_hash(stored[d["_id"]]) != d[HASH_FIELD]
    )
    present = {doc_id(keymod.of_row(r, cols), cols, numeric) for r in src_rows}  # rejected rows too (quarantined)
    bad += sum(1 for k, d in stored.items() if k not in present and not d.get(DELETED_FIELD))
    return len(docs), bad, stored


def run(
    conn, client, db: str, eff: dict, *, quarantined=None, sample: int = 50, logger=log, changed: Changed | None = None
) -> list[dict]:
    """Measure, validate with GX (an incremental run that read no changed row, ``changed.quiet``, compares the
    same rows without it: its import alone costs ~5 s), raise ``TargetDiffers`` naming the differing checks."""
    from ferry.report import table

    suite = not (changed is not None and changed.quiet)
    rows = measure(conn, client, db, eff, quarantined=quarantined, sample=sample, changed=changed)
    res = _suite(rows) if suite else None
    for r in rows:
        r["ok"] = r["expected"] == r["actual"]
    logger.info("source vs target (%s)%s\n%s", db, "" if suite else ", nothing written: no GX suite", table(rows))
    bad = [r for r in rows if not r["ok"]]
    if res is not None and not res.success:
        bad = [rows[i] for idx in res.failed_indexes.values() for i in idx] or bad
    if bad:
        raise TargetDiffers(f"{db} differs from the source:\n{table(bad)}")
    return rows


def _suite(rows: list[dict]):
    """Great Expectations' check that every row's ``expected`` equals its ``actual``."""
    import pandas as pd

    from ferry.validation import validate

    pair = ("ExpectColumnPairValuesToBeEqual", {"column_A": "expected", "column_B": "actual"})
    return validate(pd.DataFrame(rows), [pair], name="production_etl")
