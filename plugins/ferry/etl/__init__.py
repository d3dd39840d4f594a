"""Production ETL: PostgreSQL -> MongoDB with schema-change detection (see docs/etl.md).

Modules: ``mapping`` (YAML), ``schema`` (snapshots, diff, classes), ``policy`` (decisions),
``acquire`` (server-side cursors, pg_dump from S3), ``transform``, ``load``, ``backup``, ``checks``
(GX source-vs-target), ``publish`` (S3), ``jsonschema``, ``audit``.
"""

from __future__ import annotations

import os

META_SUFFIX = "__ferry"


def target_db(base: str) -> str:
    """The MongoDB database to load (``ferry.mongo.db_name``: ``<base>_dev`` under USE_DEV_MONGO_DB)."""
    from ferry.mongo import db_name

    return db_name(base)


def meta_db(base: str) -> str:
    """Where snapshots, versions, runs and quarantined rows of ``base`` live (same server)."""
    return target_db(base) + META_SUFFIX


def backup_location(kind: str, bucket: str, folder: str = "") -> str:
    """``s3://<bucket>/backups`` or a folder (``folder``, ``$FERRY_ETL_BACKUP_DIR``, artifacts/etl-backups)."""
    if kind == "s3":
        return f"s3://{bucket}/backups"
    if folder:
        return folder
    if os.environ.get("FERRY_ETL_BACKUP_DIR"):
        return os.environ["FERRY_ETL_BACKUP_DIR"]
    from ferry.report import artifacts_dir

    return str(artifacts_dir("etl-backups"))
