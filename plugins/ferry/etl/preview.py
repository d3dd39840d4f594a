"""A dry run of a mapping against the source: what ``production_etl``'s load would produce, with nothing
written anywhere (no target, no bookkeeping, no backup, no S3).

It resolves the mapping against the source's current schema (the checks of ``plan``: unknown tables and
columns, ids that are not keys, relation shapes), reads each collection's rows as the load does (or the
first ``rows`` of each), builds the documents, and reports per collection: rows read, documents, rows that
would be quarantined (with the first reasons), relation targets missing, and the largest and average
document size against MongoDB's 16 MiB limit; plus one sample document.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import bson
from bson import json_util

from ferry.etl import acquire, mapping
from ferry.etl.schema import snapshot
from ferry.etl.transform import HASH_FIELD, build_batch

log = logging.getLogger(__name__)

#: MongoDB's largest document
MAX_DOCUMENT = 16 * 1024 * 1024
#: reasons kept per collection for rows that would be quarantined
REASONS = 5


def preview(conn, mapping_path: str, schema: str = "public", *, rows: int = 0, batch_size: int = 1000) -> dict:
    """``{"collections": [row per collection], "samples": {name: document as JSON}, "rejected": {name: [..]}}``;
    ``rows`` > 0 reads only the first ``rows`` rows of each collection (in key order)."""
    m = mapping.load(mapping_path)
    if m["source"]["schema"] != schema:
        raise mapping.MappingError(
            f"{mapping_path}: source.schema is {m['source']['schema']!r} but pg_schema is {schema!r}"
        )
    snap = snapshot(conn, schema)
    eff = acquire.add_join_keys(mapping.resolve(m, snap), snap)
    numeric = eff["defaults"]["numeric"]
    out: dict[str, Any] = {"collections": [], "samples": {}, "rejected": {}}
    for coll in eff["collections"]:
        total = acquire.count(conn, schema, coll["table"])
        stats = {"read": 0, "documents": 0, "quarantined": 0, "largest": 0, "bytes": 0}
        missing: dict[str, int] = {}
        reasons: list[dict] = []
        batches = acquire.batches(conn, schema, coll, batch_size)
        if rows:
            batches = _first(batches, rows)
        for batch, children in batches:
            docs, rejected = build_batch(batch, coll, children, numeric, missing)
            stats["read"] += len(batch)
            stats["documents"] += len(docs)
            stats["quarantined"] += len(rejected)
            reasons += rejected[: max(0, REASONS - len(reasons))]
            for d in docs:
                size = len(bson.encode(d))
                stats["bytes"] += size
                stats["largest"] = max(stats["largest"], size)
            if docs and coll["name"] not in out["samples"]:
                sample = {k: v for k, v in docs[0].items() if k != HASH_FIELD}
                out["samples"][coll["name"]] = json.loads(json_util.dumps(sample))
        conn.commit()
        out["collections"].append(_row(coll, total, stats, missing))
        out["rejected"][coll["name"]] = reasons
    return out


def _first(batches, rows: int):
    """The batches up to ``rows`` rows (the last one cut); the source cursor is closed when done."""
    left = rows
    try:
        for batch, children in batches:
            yield batch[:left], children
            left -= len(batch)
            if left <= 0:
                break
    finally:
        batches.close()


def _row(coll: dict, total: int, stats: dict, missing: dict[str, int]) -> dict:
    avg = stats["bytes"] // stats["documents"] if stats["documents"] else 0
    return {
        "collection": coll["name"],
        "table": coll["table"],
        "source_rows": total,
        "read": stats["read"],
        "documents": stats["documents"],
        "quarantined": stats["quarantined"],
        "missing_relations": ", ".join(f"{k}: {v}" for k, v in sorted(missing.items()) if v) or "-",
        "avg_bytes": avg,
        "largest_bytes": stats["largest"],
        "of_16_MiB": f"{stats['largest'] / MAX_DOCUMENT:.2%}",
    }
