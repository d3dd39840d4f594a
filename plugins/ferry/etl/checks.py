"""Source-vs-target validation with Great Expectations (``ferry.validation.validate``).

Each check is a row ``{check, collection, expected, actual}`` measured on both sides; one GX
expectation (the two columns are equal) runs over them, and a failure names every row that differs.
production_etl runs it on the *staging* database of a full or dated-copy load, before anything is
published (write-audit-publish): documents per collection, unique ``_id``, no null ``_id``, embedded
row counts, dangling references and a sample of documents rebuilt from the source and compared by hash.
"""

from __future__ import annotations

import logging

from psycopg import sql

from ferry.errors import FerryError
from ferry.etl import acquire
from ferry.etl.transform import DELETED_FIELD, HASH_FIELD, build_batch, doc_hash

log = logging.getLogger(__name__)


class TargetDiffers(FerryError, AssertionError):
    """The loaded data differs from the source; nothing was published."""


def measure(
    conn, client, db: str, eff: dict, *, quarantined: dict[str, int] | None = None, sample: int = 50
) -> list[dict]:
    """Per collection: documents against source rows (less the quarantined), duplicate and null ``_id``,
    embedded children against the source, dangling references, and a sample rebuilt from the source."""
    schema, numeric = eff["source"]["schema"], eff["defaults"]["numeric"]
    quarantined = quarantined or {}
    tdb = client[db]
    rows: list[dict] = []
    for coll in eff["collections"]:
        name, target = coll["name"], tdb[coll["name"]]

        def row(check: str, expected: int, actual: int, name: str = name) -> None:
            rows.append({"check": check, "collection": name, "expected": expected, "actual": actual})

        src = acquire.count(conn, schema, coll["table"]) - quarantined.get(name, 0)
        row("documents", src, target.count_documents(_LIVE))
        dup = list(
            target.aggregate(
                [{"$group": {"_id": "$_id", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}, {"$count": "ids"}]
            )
        )
        row("duplicate _id", 0, dup[0]["ids"] if dup else 0)
        row("null _id", 0, target.count_documents({"_id": None}))
        for rel in coll["relations"]:
            if rel["kind"] == "embed_many":
                row(f"embedded {rel['as']}", *_embedded(conn, schema, coll, rel, target))
            elif rel["kind"] == "reference":
                row(f"dangling {rel['as']} -> {rel['collection']}", 0, _dangling(tdb, rel, target))
        n, bad = _sample_mismatches(conn, schema, coll, target, numeric, sample)
        row(f"sample checksum ({n} docs)", 0, bad)
    return rows


_LIVE = {DELETED_FIELD: {"$ne": True}}


def _embedded(conn, schema: str, coll: dict, rel: dict, target) -> tuple[int, int]:
    """Children rows of live parents in the source, and embedded children in the target."""
    q = sql.SQL("SELECT count(*) FROM {s}.{c} WHERE {fk} IN (SELECT {id} FROM {s}.{p})").format(
        s=sql.Identifier(schema),
        c=sql.Identifier(rel["table"]),
        fk=sql.Identifier(rel["foreign_key"]),
        id=sql.Identifier(coll["id"]),
        p=sql.Identifier(coll["table"]),
    )
    size = {"$sum": {"$size": {"$ifNull": [f"${rel['as']}", []]}}}
    agg = list(target.aggregate([{"$match": _LIVE}, {"$group": {"_id": None, "n": size}}]))
    return conn.execute(q).fetchone()[0], agg[0]["n"] if agg else 0


def _dangling(tdb, rel: dict, target) -> int:
    """Referenced ids with no live document in the referenced collection."""
    values = [v for v in target.distinct(rel["as"]) if v is not None]
    step = acquire.LOOKUP_CHUNK  # bounded $in: its cost grows with the square of the list
    found = sum(
        tdb[rel["collection"]].count_documents({"_id": {"$in": values[i : i + step]}, **_LIVE})
        for i in range(0, len(values), step)
    )
    return len(values) - found


def _sample_mismatches(conn, schema: str, coll: dict, target, numeric: str, sample: int) -> tuple[int, int]:
    """A random sample of source rows rebuilt into documents and compared with the stored ones (content hash
    as stored and as recomputed): ``(documents rebuilt, mismatches)``."""
    q = sql.SQL("SELECT {id} FROM {s}.{t} ORDER BY random() LIMIT %s").format(
        id=sql.Identifier(coll["id"]), s=sql.Identifier(schema), t=sql.Identifier(coll["table"])
    )
    ids = [r[0] for r in conn.execute(q, (sample,)).fetchall()]
    src_rows, children = acquire.fetch_ids(conn, schema, coll, ids)
    docs, _rejected = build_batch(src_rows, coll, children, numeric)
    stored = {d["_id"]: d for d in target.find({"_id": {"$in": [d["_id"] for d in docs]}})}
    bad = sum(
        1
        for d in docs
        if d["_id"] not in stored
        or stored[d["_id"]].get(HASH_FIELD) != d[HASH_FIELD]
        or doc_hash(stored[d["_id"]]) != d[HASH_FIELD]
    )
    return len(docs), bad


def run(conn, client, db: str, eff: dict, *, quarantined=None, sample: int = 50, logger=log) -> list[dict]:
    """Measure, validate with GX, raise ``TargetDiffers`` naming the differing checks."""
    import pandas as pd

    from ferry.report import table
    from ferry.validation import validate

    rows = measure(conn, client, db, eff, quarantined=quarantined, sample=sample)
    df = pd.DataFrame(rows)
    res = validate(
        df, [("ExpectColumnPairValuesToBeEqual", {"column_A": "expected", "column_B": "actual"})], name="production_etl"
    )
    for r in rows:
        r["ok"] = r["expected"] == r["actual"]
    logger.info("source vs target (%s)\n%s", db, table(rows))
    if not res.success:
        bad = [rows[i] for idx in res.failed_indexes.values() for i in idx] or [r for r in rows if not r["ok"]]
        raise TargetDiffers(f"{db} differs from the source:\n{table(bad)}")
    return rows
