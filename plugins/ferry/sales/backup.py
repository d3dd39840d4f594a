"""Timestamped, verified backups of the DuckDB file (EXPORT DATABASE to Parquet) locally and in S3,
and their retention.

A backup is a folder ``<root>/sales-YYYYmmddTHHMMSSZ/`` (schema.sql, load.sql, one Parquet file per table,
manifest.json with row counts) and the same files under ``s3://<bucket>/<prefix>/sales-.../``.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ferry.errors import FerryError

log = logging.getLogger(__name__)
PREFIX = "sales-"
STAMP = "%Y%m%dT%H%M%SZ"


class BackupVerificationFailed(FerryError):
    pass


def _counts(con) -> dict[str, int]:
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1"
        ).fetchall()
    ]
    return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def backup(
    db_path: str,
    root: str | Path,
    *,
    s3=None,
    bucket: str = "",
    prefix: str = "duckdb-backups",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Export ``db_path`` (read-only connection: a consistent snapshot), verify, upload; return the manifest."""
    import duckdb

    now = now or datetime.now(UTC)
    name = PREFIX + now.strftime(STAMP)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if dest.exists():
        shutil.rmtree(dest)  # a rerun of the same second replaces its own partial attempt
    with duckdb.connect(db_path, read_only=True) as con:
        counts = _counts(con)
        con.execute(f"EXPORT DATABASE '{dest}' (FORMAT parquet)")
    with duckdb.connect() as fresh:  # verify: import into an empty in-memory database
        fresh.execute(f"IMPORT DATABASE '{dest}'")
        restored = _counts(fresh)
    if restored != counts:
        raise BackupVerificationFailed(f"backup {dest}: restored counts {restored} != source {counts}")
    manifest: dict[str, Any] = {"name": name, "created": now.isoformat(), "source": str(db_path), "tables": counts}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    manifest["local"] = str(dest)
    manifest["files"] = len(files)
    manifest["bytes"] = sum(p.stat().st_size for p in files)
    if s3 is not None and bucket:
        keys = []
        for p in files:
            key = f"{prefix}/{name}/{p.relative_to(dest).as_posix()}"
            s3.upload_file(str(p), bucket, key)
            keys.append(key)
        listed = {o["Key"] for o in _list(s3, bucket, f"{prefix}/{name}/")}
        if listed != set(keys):
            raise BackupVerificationFailed(f"s3://{bucket}/{prefix}/{name}/ holds {sorted(listed)}, expected {keys}")
        manifest["s3"] = f"s3://{bucket}/{prefix}/{name}/"
    return manifest


def _list(s3, bucket: str, prefix: str) -> list[dict]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", []))
    return out


def _stamp(name: str) -> datetime | None:
    if not name.startswith(PREFIX):
        return None
    try:
        return datetime.strptime(name[len(PREFIX) :], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def expired(names: list[str], cutoff: datetime) -> list[str]:
    """Backup names older than ``cutoff``, never the newest one."""
    dated = sorted((s, n) for n in names if (s := _stamp(n)) is not None)
    if not dated:
        return []
    newest = dated[-1][1]
    return [n for s, n in dated if s < cutoff and n != newest]


def retention(
    root: str | Path,
    *,
    retention_days: int = 30,
    s3=None,
    bucket: str = "",
    prefix: str = "duckdb-backups",
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[dict]:
    """Delete backups older than ``retention_days`` locally and in S3 (never the newest); report rows."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    rows: list[dict] = []
    root = Path(root)
    local = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for name in expired(local, cutoff):
        if not dry_run:
            shutil.rmtree(root / name)
        rows.append({"where": "local", "backup": name, "action": "would delete" if dry_run else "deleted"})
    if s3 is not None and bucket:
        objs = _list(s3, bucket, prefix + "/")
        by_backup: dict[str, list[str]] = {}
        for o in objs:
            parts = o["Key"][len(prefix) + 1 :].split("/", 1)
            by_backup.setdefault(parts[0], []).append(o["Key"])
        for name in expired(list(by_backup), cutoff):
            keys = by_backup[name]
            if not dry_run:
                for i in range(0, len(keys), 1000):
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
            rows.append(
                {
                    "where": f"s3://{bucket}/{prefix}",
                    "backup": name,
                    "action": ("would delete" if dry_run else "deleted") + f" ({len(keys)} objects)",
                }
            )
    return rows
