"""Publish processed data to S3: gzip'd JSON lines per collection + ``manifest.json`` (written last), and
``latest.json`` beside the run folders pointing at the newest manifest.

Each file is verified where it landed (``ferry.storage``) before the manifest that lists it is written, so
a reader who finds a manifest finds every file it names, intact. A full export holds every document; an
incremental run publishes a **delta** (``kind: delta``): per collection the current document of every id
written since the last export (``{"_id", "doc"}``) or its deletion (``{"_id", "deleted": true}``), and the
manifest's ``base`` (the full export) and ``chain`` (the deltas since it, oldest first, this one last). A
reader assembles the current state with ``assemble``: the base, then each delta of the chain in order.
A full export is written instead when asked, when there is no earlier export, after ``MAX_DELTAS`` deltas,
or when the target changed other than by incremental runs since the last export (a full load, a rollback).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from ferry import storage
from ferry.etl import backup
from ferry.etl.backup import export_jsonl_gz
from ferry.etl.transform import DELETED_FIELD

LATEST = "latest.json"
#: Deltas on one full export before the next export is full again.
MAX_DELTAS = 30


def push(
    client,
    db: str,
    names: list[str],
    s3,
    base: str,
    extra: dict | None = None,
    *,
    version: str | None = None,
    full: bool = True,
) -> dict:
    """Upload each collection to ``<base>/<collection>.jsonl.gz`` (``base``: ``s3://bucket/prefix``) then the
    manifest, then point ``<base's parent>/latest.json`` at it. ``version`` (this run's backup version) and
    ``full=False``: a delta on top of the last export when the versions since it allow (``_delta_since``)."""
    base = base.rstrip("/")
    bucket = storage.split_s3(base)[0]
    latest_url = storage.join(base.rsplit("/", 1)[0], LATEST)
    meta = client[_meta_name(db)]
    since = None if full or version is None else _delta_since(meta, db, names, version, _read_json(latest_url, s3))
    with tempfile.TemporaryDirectory(prefix="ferry-etl-push-") as tmp:
        if since is None:
            files = {n: _put_full(client[db][n], Path(tmp), base, s3) for n in names}
        else:
            files = {n: _put_delta(client[db][n], since["ids"](n), Path(tmp), base, s3) for n in names}
    manifest = {
        "db": db,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "format": "jsonl.gz (canonical Extended JSON)",
        "kind": "full" if since is None else "delta",
        "version": version,
        "collections": files,
        **(extra or {}),
    }
    key = storage.split_s3(storage.join(base, "manifest.json"))[1]
    if since is not None:
        manifest.update(base=since["base"], chain=[*since["chain"], key])
    stored = storage.put_text(storage.join(base, "manifest.json"), json.dumps(manifest, indent=2, default=str), s3=s3)
    pointer = {
        "manifest": key,
        "kind": manifest["kind"],
        "base": manifest.get("base", key),
        "chain": manifest.get("chain", []),
        "version": version,
        "collections": sorted(names),
        "exported_at": manifest["created_at"],
    }
    storage.put_text(latest_url, json.dumps(pointer, indent=2), s3=s3)
    return {
        "bucket": bucket,
        "manifest": storage.split_s3(stored.url)[1],
        "kind": manifest["kind"],
        "collections": {n: f["count"] for n, f in files.items()},
    }


def _meta_name(db: str) -> str:
    from ferry.etl.names import meta_db

    return meta_db(db)


def _read_json(url: str, s3) -> dict | None:
    if not storage.exists(url, s3=s3):
        return None
    return json.loads(storage.read_text(url, s3=s3))


def _put_full(coll, tmp: Path, base: str, s3) -> dict:
    path = tmp / f"{coll.name}.jsonl.gz"
    info = export_jsonl_gz(coll, path)
    stored = storage.put_file(storage.join(base, path.name), path, s3=s3)
    return {**info, "key": storage.split_s3(stored.url)[1]}


def _put_delta(coll, ids, tmp: Path, base: str, s3) -> dict:
    """The current document (or the deletion) of each of ``ids``, looked up ``LOOKUP_CHUNK`` at a time."""
    from ferry.etl.acquire import LOOKUP_CHUNK, chunked

    def lines():
        unique = (i for i in dict.fromkeys(ids) if i is not None)  # a null id was never exported
        for chunk in chunked(unique, LOOKUP_CHUNK):
            found = {d["_id"]: d for d in coll.find({"_id": {"$in": chunk}})}
            for k in chunk:
                d = found.get(k)
                live = d is not None and not d.get(DELETED_FIELD)
                yield {"_id": k, "doc": d} if live else {"_id": k, "deleted": True}

    path = tmp / f"{coll.name}.changes.jsonl.gz"
    info = backup._write_lines(path, lines())
    stored = storage.put_file(storage.join(base, path.name), path, s3=s3)
    return {**info, "key": storage.split_s3(stored.url)[1]}


def _delta_since(meta_db, db: str, names: list[str], version: str, latest: dict | None) -> dict | None:
    """What a delta export covers (``{"base", "chain", "ids": name -> ids}``), or ``None`` when the export
    must be full: no earlier export of these collections, ``MAX_DELTAS`` reached, or a version since the
    last export that is not an incremental run's delta, or a rollback since."""
    if not latest or not latest.get("version") or sorted(names) != latest.get("collections"):
        return None
    if len(latest.get("chain") or []) >= MAX_DELTAS:
        return None
    VERSIONS = backup.VERSIONS
    since = list(
        meta_db[VERSIONS].find({"db": db, "_id": {"$gt": latest["version"], "$lte": version}}, sort=[("_id", 1)])
    )
    if not since or since[-1]["_id"] != version or any(v.get("kind") != "delta" for v in since):
        return None
    rolled_back = meta_db[VERSIONS].find_one(
        {"db": db, "restored_at": {"$gte": dt.datetime.fromisoformat(latest["exported_at"])}}
    )
    if rolled_back is not None:
        return None

    def ids(name: str):
        for v in since:
            yield from backup.changed_ids(meta_db, v["_id"], name)

    return {"base": latest["base"], "chain": latest.get("chain") or [], "ids": ids}


def assemble(bucket: str, manifest_key: str, *, s3=None) -> dict[str, dict]:
    """The documents a published manifest stands for, per collection ``{_id: document}`` (a reader's way, in
    memory: for tests and small exports; a large reader streams the same steps): the base full export,
    then each delta of the chain in order (a document replaces, a deletion removes)."""
    manifest = json.loads(storage.read_text(f"s3://{bucket}/{manifest_key}", s3=s3))
    steps = [manifest_key] if manifest["kind"] == "full" else [manifest["base"], *manifest["chain"]]
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ferry-etl-assemble-") as tmp:
        for step in steps:
            m = json.loads(storage.read_text(f"s3://{bucket}/{step}", s3=s3))
            for name, f in m["collections"].items():
                path = storage.get_file(f"s3://{bucket}/{f['key']}", Path(tmp) / Path(f["key"]).name, s3=s3)
                docs = out.setdefault(name, {})
                for line in backup._read_lines(path):
                    if m["kind"] == "full":
                        docs[line["_id"]] = line
                    elif line.get("deleted"):
                        docs.pop(line["_id"], None)
                    else:
                        docs[line["_id"]] = line["doc"]
    return out
