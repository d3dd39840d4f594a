"""Parallel target databases (``also_publish_to``): the same load, published to further databases.

Each listed database gets what the primary target holds after ``publish``, by the same write-audit-publish
swap: its own lock, a versioned backup of it first, a copy into its own staging database, a check (the
staging's content hash equals the primary's) and the swap in. A database that fails is reported and the
others stay published; a rerun skips every database that already equals the primary, so it finishes only
what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ferry.errors import FerryError
from ferry.etl.load import publish, staging_db
from ferry.hashing import db_digest

log = logging.getLogger(__name__)
BATCH = 1000


class ParallelDiffers(FerryError):
    """A parallel database's staging does not equal the primary: nothing was swapped in."""


@dataclass(frozen=True)
class Steps:
    """What the caller provides per database: its lock (a context manager) and its backup (returns the version)."""

    lock: Callable[[str], AbstractContextManager]
    backup: Callable[[str], str]


def copy_in(client, primary: str, target: str, names: list[str]) -> dict[str, dict]:
    """Copy ``names`` of ``primary`` (documents and indexes) into ``target``'s staging, check it, swap it in."""
    from ferry.mongo import create_indexes, index_specs

    client.drop_database(staging_db(target))
    staging = client[staging_db(target)]
    for name in names:
        src, dst = client[primary][name], staging[name]
        dst.database.create_collection(name)
        create_indexes(dst, index_specs(src))
        batch: list[dict] = []
        for doc in src.find(sort=[("_id", 1)]):
            batch.append(doc)
            if len(batch) >= BATCH:
                dst.insert_many(batch, ordered=False)
                batch = []
        if batch:
            dst.insert_many(batch, ordered=False)
    want, got = db_digest(client[primary], names), db_digest(staging, names)
    if want != got:
        differ = sorted(n for n in names if want[n] != got[n])
        raise ParallelDiffers(f"staging of {target} differs from {primary} in {differ}: nothing swapped in")
    publish(client, staging_db(target), target, names)
    return got


def publish_all(client, primary: str, targets: list[str], names: list[str], steps: Steps) -> list[dict]:
    """Publish ``primary``'s ``names`` to every database of ``targets``; one row per database."""
    want = db_digest(client[primary], names)
    rows = []
    for target in targets:
        row = {"database": target, "result": "", "documents": sum(d["count"] for d in want.values()), "backup": ""}
        try:
            if db_digest(client[target], names) == want:
                rows.append({**row, "result": "already equal (nothing to do)"})
                continue
            with steps.lock(target):
                row["backup"] = steps.backup(target)
                copy_in(client, primary, target, names)
            rows.append({**row, "result": "published"})
        except Exception as exc:  # noqa: BLE001 - one database failing leaves the others published
            log.exception("publishing %s to %s failed", primary, target)
            rows.append({**row, "result": f"FAILED: {type(exc).__name__}: {str(exc)[:200]}"})
    return rows
