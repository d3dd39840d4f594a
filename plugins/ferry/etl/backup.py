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
from pathlib import Path

from bson import json_util

from ferry import storage
from ferry.errors import FerryError
from ferry.hashing import db_digest, file_digests
from ferry.mongo import create_indexes, index_specs

log = logging.getLogger(__name__)

VERSIONS = "_ferry_etl_versions"
RESTORE_SUFFIX = "__ferry_restore"
_JSON = json_util.CANONICAL_JSON_OPTIONS


class UnknownVersion(FerryError, LookupError):
    pass


class BackupCorrupt(FerryError):
    """A backup file or its restored content does not match what was recorded; the target is untouched."""


def export_jsonl_gz(coll, path: Path) -> dict:
    """Write ``coll`` (``_id`` order) as gzip'd canonical Extended JSON lines; count + sha256 of the file."""
    n = 0
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=5) as f:
        for doc in coll.find({}, sort=[("_id", 1)]):
            f.write(json_util.dumps(doc, json_options=_JSON))
            f.write("\n")
            n += 1
    size, sha, _ = file_digests(path)
    return {"count": n, "file_sha256": sha, "bytes": size}


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
                "run_id": v.get("run_id", ""),
                "location": v["location"],
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
            with gzip.open(path, "rt", encoding="utf-8") as f:
                for line in f:
                    batch.append(json_util.loads(line, json_options=_JSON))
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
    for name in rec["collections"]:
        client.admin.command("renameCollection", f"{scratch.name}.{name}", to=f"{db}.{name}", dropTarget=True)
    dropped = [n for n in _collections(client[db]) if n not in rec["collections"]]
    for name in dropped:
        client[db].drop_collection(name)
    client.drop_database(scratch.name)
    meta_db[VERSIONS].update_one({"_id": version}, {"$set": {"restored_at": dt.datetime.now(dt.UTC)}})
    logger.info("restored %s into %s: %d collection(s); dropped %s", version, db, len(rec["collections"]), dropped)
    return {"version": version, "db": db, "collections": {n: got[n]["count"] for n in got}, "dropped": dropped}


def manifest_json(rec: dict) -> str:
    return json.dumps(rec, default=str, indent=2, sort_keys=True)
