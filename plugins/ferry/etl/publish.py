"""Publish processed data to S3: gzip'd JSON lines per collection + ``manifest.json`` (written last).

Each file is verified where it landed (``ferry.storage``) before the manifest that lists it is written, so
a reader who finds a manifest finds every file it names, intact.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from ferry import storage
from ferry.etl.backup import export_jsonl_gz


def push(client, db: str, names: list[str], s3, bucket: str, prefix: str, extra: dict | None = None) -> dict:
    """Upload each collection to ``s3://bucket/prefix/<collection>.jsonl.gz`` then the manifest."""
    base = f"s3://{bucket}/{prefix.strip('/')}"
    files = {}
    with tempfile.TemporaryDirectory(prefix="ferry-etl-push-") as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.jsonl.gz"
            info = export_jsonl_gz(client[db][name], path)
            stored = storage.put_file(storage.join(base, path.name), path, s3=s3)
            files[name] = {**info, "key": storage.split_s3(stored.url)[1]}
    manifest = {
        "db": db,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "format": "jsonl.gz (canonical Extended JSON)",
        "collections": files,
        **(extra or {}),
    }
    stored = storage.put_text(storage.join(base, "manifest.json"), json.dumps(manifest, indent=2, default=str), s3=s3)
    return {
        "bucket": bucket,
        "manifest": storage.split_s3(stored.url)[1],
        "collections": {n: f["count"] for n, f in files.items()},
    }
