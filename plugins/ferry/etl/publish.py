"""Push processed data to S3: gzip'd JSON lines per collection + ``manifest.json``."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

from ferry.etl.backup import export_jsonl_gz


def push(client, db: str, names: list[str], s3, bucket: str, prefix: str, extra: dict | None = None) -> dict:
    """Upload each collection to ``s3://bucket/prefix/<collection>.jsonl.gz`` then the manifest (last)."""
    from ferry.conns import ensure_bucket

    ensure_bucket(s3, bucket)
    prefix = prefix.strip("/")
    files = {}
    with tempfile.TemporaryDirectory(prefix="ferry-etl-push-") as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.jsonl.gz"
            info = export_jsonl_gz(client[db][name], path)
            key = f"{prefix}/{path.name}"
            s3.upload_file(str(path), bucket, key)
            files[name] = {**info, "key": key}
    manifest = {"db": db, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "format": "jsonl.gz (canonical Extended JSON)",
                "collections": files, **(extra or {})}
    s3.put_object(Bucket=bucket, Key=f"{prefix}/manifest.json", Body=json.dumps(manifest, indent=2, default=str).encode())
    return {"bucket": bucket, "manifest": f"{prefix}/manifest.json", "collections": {n: f["count"] for n, f in files.items()}}
