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
    schema, numeric = eff["source"]["schema"], eff["defaults"]["numeric"]
    quarantined = quarantined or {}
    tdb = client[db]
    live = {DELETED_FIELD: {"$ne": True}}
    rows: list[dict] = []
    for coll in eff["collections"]:
        name, target = coll["name"], tdb[coll["name"]]
        src = acquire.count(conn, schema, coll["table"]) - quarantined.get(name, 0)
        rows.append({"check": "documents", "collection": name, "expected": src, "actual": target.count_documents(live)})
        dup = list(
            target.aggregate(
                [{"$group": {"_id": "$_id", "n": {"$sum": 1}}}, {"$match": {"n": {"$gt": 1}}}, {"$count": "ids"}]
            )
        )
        rows.append(
            {"check": "duplicate _id", "collection": name, "expected": 0, "actual": dup[0]["ids"] if dup else 0}
        )
        rows.append(
            {"check": "null _id", "collection": name, "expected": 0, "actual": target.count_documents({"_id": None})}
        )
        for rel in coll["relations"]:
            if rel["kind"] == "embed_many":
                q = sql.SQL("SELECT count(*) FROM {s}.{c} WHERE {fk} IN (SELECT {id} FROM {s}.{p})").format(
                    s=sql.Identifier(schema),
                    c=sql.Identifier(rel["table"]),
                    fk=sql.Identifier(rel["foreign_key"]),
                    id=sql.Identifier(coll["id"]),
                    p=sql.Identifier(coll["table"]),
                )
                agg = list(
                    target.aggregate(
                        [
                            {"$match": live},
                            {"$group": {"_id": None, "n": {"$sum": {"$size": {"$ifNull": [f"${rel['as']}", []]}}}}},
                        ]
                    )
                )
                rows.append(
                    {
                        "check": f"embedded {rel['as']}",
                        "collection": name,
                        "expected": conn.execute(q).fetchone()[0],
                        "actual": agg[0]["n"] if agg else 0,
                    }
                )
            elif rel["kind"] == "reference":
                values = [v for v in target.distinct(rel["as"]) if v is not None]
                step = acquire.LOOKUP_CHUNK  # bounded $in: its cost grows with the square of the list
                found = sum(
                    tdb[rel["collection"]].count_documents({"_id": {"$in": values[i : i + step]}, **live})
                    for i in range(0, len(values), step)
                )
                rows.append(
                    {
                        "check": f"dangling {rel['as']} -> {rel['collection']}",
                        "collection": name,
                        "expected": 0,
                        "actual": len(values) - found,
                    }
                )
        # checksum of a sample: rebuild documents from the source and compare with the target
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
        rows.append({"check": f"sample checksum ({len(docs)} docs)", "collection": name, "expected": 0, "actual": bad})
    return rows


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
