"""Versioned backups of a MongoDB database (gzip'd canonical Extended JSON lines per collection),
stored by URL (``ferry.storage``: S3 by default, or a folder), recorded in ``_ferry_etl_versions``;
list and restore.

Version ids look like ``2026-11-22-001`` (date of the backup, then a counter for that day).
A restore loads each collection into a scratch database, recreates its indexes, checks the content
hash recorded at backup time and swaps it in with ``renameCollection`` (``dropTarget``); collections
that did not exist at backup time are dropped, so the database is exactly what it was.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bson import json_util

from ferry import storage
from ferry.errors import FerryError
from ferry.hashing import db_digest, file_digests
from ferry.mongo import create_indexes, index_specs, swap_in

log = logging.getLogger(__name__)

VERSIONS = "_ferry_etl_versions"
#: change-capture state of incremental loads (``ferry.etl.load``): forgotten when a database is restored
STATE = "_ferry_etl_watermarks"
RESTORE_SUFFIX = "__ferry_restore"
_JSON = json_util.CANONICAL_JSON_OPTIONS


class UnknownVersion(FerryError, LookupError):
    pass


class BackupCorrupt(FerryError):
    """A backup file or its restored content does not match what was recorded; the target is untouched."""


def _write_lines(path: Path, docs: Iterable[Any]) -> dict:
    """Write ``docs`` as gzip'd canonical Extended JSON lines; count, sha256 and size of the file."""
    n = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=5) as f:
        for doc in docs:
            f.write(json_util.dumps(doc, json_options=_JSON))
            f.write("\n")
            n += 1
    size, sha, _ = file_digests(path)
    return {"count": n, "file_sha256": sha, "bytes": size}


def _read_lines(path: Path) -> Iterator[dict]:
    """The documents of a file ``_write_lines`` wrote, in order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json_util.loads(line, json_options=_JSON)


def export_jsonl_gz(coll, path: Path) -> dict:
    """Write ``coll`` (``_id`` order) as gzip'd canonical Extended JSON lines; count + sha256 of the file."""
    return _write_lines(path, coll.find({}, sort=[("_id", 1)]))


def _collections(db) -> list[str]:
    return sorted(n for n in db.list_collection_names() if not n.startswith("system."))


def _next_version(meta_db, today: str) -> str:
    n = meta_db[VERSIONS].count_documents({"_id": {"$regex": f"^{today}-"}})
    while True:
        n += 1
        v = f"{today}-{n:03d}"
        if meta_db[VERSIONS].find_one({"_id": v}, {"_id": 1}) is None:
            return v


def create(
    client, db: str, meta_db, location: str, *, s3=None, run_id: str = "", note: str = "", logger: logging.Logger = log
) -> dict:
    """Back up every collection of ``client[db]`` under the URL ``location`` (``s3://bucket/prefix`` or a folder);
    every file is verified where it landed before the version is recorded."""
    now = dt.datetime.now(dt.UTC)
    version = _next_version(meta_db, now.strftime("%Y-%m-%d"))
    source = client[db]
    names = _collections(source)
    hashes = db_digest(source, names)
    colls = {}
    with tempfile.TemporaryDirectory(prefix="ferry-etl-backup-") as tmp:
        for name in names:
            fname = f"{name}.jsonl.gz"
            info = export_jsonl_gz(source[name], Path(tmp) / fname)
            colls[name] = {
                **info,
                "file": fname,
                "sha256": hashes[name]["sha256"],
                "indexes": index_specs(source[name]),
            }
        base = storage.join(location, db, version)
        for info in colls.values():
            storage.put_file(storage.join(base, info["file"]), Path(tmp) / info["file"], s3=s3)
    record = {
        "_id": version,
        "db": db,
        "location": base,
        "collections": colls,
        "created_at": now,
        "run_id": run_id,
        "note": note,
        "documents": sum(c["count"] for c in colls.values()),
    }
    meta_db[VERSIONS].insert_one(record)
    logger.info(
        "backup %s of %s: %d collection(s), %d document(s) -> %s", version, db, len(colls), record["documents"], base
    )
    return record


# --------------------------------------------------------------------------- pre-image (delta) backups


def open_delta(client, db: str, meta_db, location: str, *, run_id: str = "", note: str = "") -> dict:
    """A version that holds only pre-images (incremental runs): the load adds one part per batch that changes
    something (``add_delta_part``, written and verified before that batch's write), so a no-change run
    backs up nothing and a rollback still restores exactly."""
    now = dt.datetime.now(dt.UTC)
    version = _next_version(meta_db, now.strftime("%Y-%m-%d"))
    record = {
        "_id": version,
        "db": db,
        "kind": "delta",
        "location": storage.join(location, db, version),
        "collections": {},
        "existed": _collections(client[db]),
        "parts": [],
        "created_at": now,
        "run_id": run_id,
        "note": note,
        "documents": 0,
    }
    meta_db[VERSIONS].insert_one(record)
    return record


def add_delta_part(meta_db, version: str, collection: str, entries: list[dict], *, s3=None) -> dict | None:
    """Store ``entries`` (``{"_id", "doc"}`` = the document before the write, ``{"_id", "absent": True}`` =
    it did not exist) as the next part of delta ``version``; recorded once verified where it landed."""
    if not entries:
        return None
    rec = meta_db[VERSIONS].find_one({"_id": version}, {"location": 1, "parts": 1})
    fname = f"{collection}.{len(rec['parts']):06d}.delta.jsonl.gz"
    with tempfile.TemporaryDirectory(prefix="ferry-etl-delta-") as tmp:
        path = Path(tmp) / fname
        written = _write_lines(path, entries)
        storage.put_file(storage.join(rec["location"], fname), path, s3=s3)
    part = {"collection": collection, "file": fname, **written}
    meta_db[VERSIONS].update_one(
        {"_id": version},
        {
            "$push": {"parts": part},
            "$inc": {f"collections.{collection}.count": len(entries), "documents": len(entries)},
        },
    )
    return part


def _undo_delta(client, rec: dict, *, s3=None, logger: logging.Logger = log) -> int:
    """Put back every pre-image of delta ``rec`` (newest part first), drop what the run created. Idempotent,
    so a rerun after a crash finishes it."""
    from pymongo import DeleteOne, ReplaceOne

    db = client[rec["db"]]
    n = 0
    with tempfile.TemporaryDirectory(prefix="ferry-etl-undo-") as tmp:
        for part in reversed(rec.get("parts") or []):
            url = storage.join(rec["location"], part["file"])
            try:
                path = storage.get_file(url, Path(tmp) / part["file"], s3=s3, sha256=part["file_sha256"])
            except storage.StorageError as exc:
                raise BackupCorrupt(f"backup {rec['_id']}: {exc}") from exc
            ops: list = []
            for e in _read_lines(path):
                key = {"_id": e["_id"]}
                ops.append(DeleteOne(key) if e.get("absent") else ReplaceOne(key, e["doc"], upsert=True))
                if len(ops) >= 100:
                    db[part["collection"]].bulk_write(ops, ordered=True)
                    n += len(ops)
                    ops = []
            if ops:
                db[part["collection"]].bulk_write(ops, ordered=True)
                n += len(ops)
    existed = set(rec.get("existed") or [])
    for name in _collections(db):
        if name not in existed and db[name].estimated_document_count() == 0:
            db.drop_collection(name)
    logger.info("undid %s of %s: %d pre-image(s) put back", rec["_id"], rec["db"], n)
    return n


def _restore_delta(client, meta_db, rec: dict, *, s3=None, logger: logging.Logger = log) -> dict:
    """State before delta ``rec``'s run: from the first full backup after it (the state then) or the current
    state, undo every delta run since, newest first, then ``rec`` itself."""
    later = list(meta_db[VERSIONS].find({"db": rec["db"], "_id": {"$gt": rec["_id"]}}, sort=[("_id", 1)]))
    full = next((v for v in later if v.get("kind", "full") == "full"), None)
    if full is not None:
        restore(client, meta_db, full["_id"], s3=s3, logger=logger)
        later = [v for v in later if v["_id"] < full["_id"]]
    for v in reversed([rec, *later]):
        if v.get("kind") == "delta":
            _undo_delta(client, v, s3=s3, logger=logger)
    names = _collections(client[rec["db"]])
    meta_db[VERSIONS].update_one({"_id": rec["_id"]}, {"$set": {"restored_at": dt.datetime.now(dt.UTC)}})
    meta_db[STATE].delete_many({"db": rec["db"]})
    return {
        "version": rec["_id"],
        "db": rec["db"],
        "collections": {n: client[rec["db"]][n].estimated_document_count() for n in names},
        "dropped": [],
    }


def list_versions(meta_db, db: str | None = None) -> list[dict]:
    q = {"db": db} if db else {}
    rows = []
    for v in meta_db[VERSIONS].find(q, sort=[("_id", -1)]):
        rows.append(
            {
                "version": v["_id"],
                "db": v["db"],
                "created_at": v["created_at"].isoformat(timespec="seconds"),
                "collections": len(v["collections"]),
                "documents": v["documents"],
                "kind": v.get("kind", "full"),
                "run_id": v.get("run_id", ""),
                "location": v["location"],
                "contract": v.get("contract") or "",
                "restored_at": (v.get("restored_at") or ""),
            }
        )
    return rows


def restore(client, meta_db, version: str, *, s3=None, db: str | None = None, logger: logging.Logger = log) -> dict:
    """Make ``client[db]`` (default: the backed-up database) exactly what it was at ``version``."""
    rec = meta_db[VERSIONS].find_one({"_id": version})
    if rec is None:
        valid = [v["_id"] for v in meta_db[VERSIONS].find({}, {"_id": 1}, sort=[("_id", -1)])]
        raise UnknownVersion(f"unknown backup version {version!r}; valid versions: {', '.join(valid) or '(none)'}")
    if rec.get("kind") == "delta" and (db is None or db == rec["db"]):
        return _restore_delta(client, meta_db, rec, s3=s3, logger=logger)
    db = db or rec["db"]
    scratch = client[db + RESTORE_SUFFIX]
    if scratch.list_collection_names():
        logger.warning(
            "found %s left by an interrupted restore: dropped; restoring %s again from its backup",
            scratch.name,
            version,
        )
    client.drop_database(scratch.name)
    with tempfile.TemporaryDirectory(prefix="ferry-etl-restore-") as tmp:
        for name, info in rec["collections"].items():
            url = storage.join(rec["location"], info["file"])
            try:
                path = storage.get_file(url, Path(tmp) / info["file"], s3=s3, sha256=info["file_sha256"])
            except storage.StorageError as exc:
                raise BackupCorrupt(f"backup {version}: {exc}; target left unchanged") from exc
            scratch.create_collection(name)
            batch = []
            for doc in _read_lines(path):
                batch.append(doc)
                if len(batch) >= 5000:
                    scratch[name].insert_many(batch, ordered=False)
                    batch = []
            if batch:
                scratch[name].insert_many(batch, ordered=False)
            create_indexes(scratch[name], info["indexes"])
    got = db_digest(scratch, list(rec["collections"]))
    for name, info in rec["collections"].items():
        if got[name]["sha256"] != info["sha256"]:
            raise BackupCorrupt(f"restored {name} differs from backup {version} (content hash); target left unchanged")
    swap_in(client, scratch.name, db, list(rec["collections"]))
    seen = {n: client[db][n].count_documents({}) for n in rec["collections"]}
    wrong = {n: c for n, c in seen.items() if c != got[n]["count"]}
    if wrong:
        want = {n: got[n]["count"] for n in wrong}
        raise BackupCorrupt(f"after the swap {db} holds {wrong} documents, the restore held {want}: rerun the rollback")
    dropped = [n for n in _collections(client[db]) if n not in rec["collections"]]
    for name in dropped:
        client[db].drop_collection(name)
    client.drop_database(scratch.name)
    meta_db[VERSIONS].update_one({"_id": version}, {"$set": {"restored_at": dt.datetime.now(dt.UTC)}})
    meta_db[STATE].delete_many({"db": db})
    logger.info("restored %s into %s: %d collection(s); dropped %s", version, db, len(rec["collections"]), dropped)
    return {"version": version, "db": db, "collections": {n: got[n]["count"] for n in got}, "dropped": dropped}


def manifest_json(rec: dict) -> str:
    return json.dumps(rec, default=str, indent=2, sort_keys=True)


def changed_ids(meta_db, version: str, collection: str, *, s3=None) -> Iterator:
    """The ids whose pre-image delta ``version`` holds for ``collection``: what the run wrote or deleted
    there, part by part (streamed; the incremental check reads only these)."""
    rec = meta_db[VERSIONS].find_one({"_id": version}, {"location": 1, "parts": 1}) or {}
    for part in rec.get("parts") or []:
        if part["collection"] != collection:
            continue
        with tempfile.TemporaryDirectory(prefix="ferry-etl-delta-") as tmp:
            path = storage.get_file(storage.join(rec["location"], part["file"]), Path(tmp) / part["file"], s3=s3)
            for entry in _read_lines(path):
                yield entry["_id"]
