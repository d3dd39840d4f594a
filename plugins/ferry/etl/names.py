"""Production ETL: PostgreSQL -> MongoDB with schema-change detection (see docs/etl.md).

Modules: ``mapping`` (YAML), ``schema`` (snapshots, diff, classes), ``policy`` (decisions),
``acquire`` (server-side cursors, pg_dump from S3), ``transform``, ``load``, ``backup``, ``checks``
(GX source-vs-target), ``publish`` (S3), ``jsonschema``; ``runs`` holds what each DAG task does.
"""

from __future__ import annotations

#: Audit records of production_etl / production_etl_rollback runs (in the bookkeeping database).
RUNS = "_ferry_etl_runs"


def target_db(base: str) -> str:
    """The MongoDB database to load (``ferry.mongo.db_name``: ``<base>_dev`` under USE_DEV_MONGO_DB)."""
    from ferry.mongo import db_name

    return db_name(base)


def meta_db(base: str) -> str:
    """Where snapshots, versions, runs and quarantined rows of ``base`` live (same server)."""
    from ferry.mongo import meta_db as bookkeeping

    return bookkeeping(target_db(base))


def backup_location(url: str | None = None) -> str:
    """Where backups go: ``url`` (the ``backup_url`` param), else ``<FERRY_STORAGE_URL>/etl-backups``."""
    from ferry import storage

    return (url or "").rstrip("/") or storage.join(storage.root(), "etl-backups")
