"""The run requests of ``production_etl`` and ``production_etl_rollback``: each param declared once, with its
form schema, its checks and what the tasks derive from it (the metadata database, the target, the strategy,
where backups go). ``dags/etl.py`` gives ``EtlRequest.params()`` to the DAG; each task reads
``EtlRequest.from_context(ctx)``. Imported by the DAG file at parse time: keep it light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import model_validator

from ferry import settings
from ferry.etl.limits import DEFAULT as LIMITS
from ferry.etl.names import backup_location, meta_db, target_db
from ferry.etl.policy import Policy
from ferry.request import Bucket, BundlePath, Location, MongoDatabase, Request, Text, param

Strategy = Literal["full", "incremental", "dated_copy"]

_DB = "Target database on ferry_mongo_local (USE_DEV_MONGO_DB adds _dev)."


class EtlRequest(Request):
    """A ``production_etl`` run's params."""

    mapping: BundlePath = param(
        "include/etl/demo_mapping.yaml",
        "Mapping file (YAML; relative paths are from the repository root; inside include/ or FERRY_ALLOWED_DIRS).",
    )
    source: Literal["direct", "s3"] = param("direct", "Read ferry_pg_prod directly, or restore a pg_dump from S3.")
    pg_schema: Text = param("public", "PostgreSQL schema to snapshot (must match the mapping's source.schema).")
    source_name: Text | None = param(None, "Snapshot lineage name. Empty: the mapping file's name.")
    s3_key: Text | None = param(None, "source=s3: the dump's key. Empty: the newest dump under s3_prefix.")
    s3_prefix: Text = param("postgres-exports/", "source=s3: where dumps are.")
    bucket: Bucket = param("ferry-etl", "S3 bucket of dumps and published data (one of FERRY_ALLOWED_BUCKETS).")
    mongo_db: MongoDatabase = param("bravo-1", _DB)
    schema_change_policy: Policy = param(
        "auto_safe", "auto_safe: apply safe changes, stop on breaking ones before any write."
    )
    refresh_strategy: Strategy = param(
        "full",
        "full: staging database, checked, then swapped in; incremental: upsert changed documents; "
        "dated_copy: a new <db>-YYYYMMDD database.",
    )
    also_publish_to: list[MongoDatabase] | None = param(
        None,
        "Further databases on ferry_mongo_local that get the same published load (a second copy, a test copy), "
        "each with its own lock, backup and contract. Empty: none.",
    )
    batch_size: int = param(10000, "Rows per batch.", minimum=1)
    new_tables: Text | None = param(None, "report | create (a collection per new table). Empty: the mapping's.")
    backup_url: Location | None = param(
        None,
        "Where backups go (s3://bucket/prefix or a folder). Empty: $FERRY_STORAGE_URL/etl-backups (object "
        "storage, seen by every worker).",
    )
    apply_validators: bool = param(False, "Set each collection's $jsonSchema validator.")
    push_to_s3: bool = param(True, "Publish JSON lines + manifest to s3://bucket/processed/...")
    s3_export: Literal["auto", "full"] = param(
        "auto",
        "auto: an incremental run publishes a delta (what changed since the last export) on its base full "
        "export; full: every document.",
    )
    validate_sample: int = param(50, "Documents checked by checksum.", minimum=0)

    @model_validator(mode="after")
    def _parallel_is_not_the_target(self) -> EtlRequest:
        same = [n for n in self.also_publish_to or [] if n == self.mongo_db]
        if same:
            raise ValueError(f"also_publish_to: {same[0]!r} is mongo_db itself")
        return self

    @property
    def meta(self) -> str:
        """The metadata database of ``mongo_db`` (snapshots, runs, backups, locks)."""
        return meta_db(self.mongo_db)

    @property
    def target(self) -> str:
        """The database loaded (before a dated copy's suffix): ``mongo_db``, ``_dev`` under USE_DEV_MONGO_DB."""
        return target_db(self.mongo_db)

    @property
    def mapping_file(self) -> str:
        """The mapping path as given, or relative to the repository (bundle) root."""
        return str(settings.repo_path(self.mapping))

    @property
    def lineage_name(self) -> str:
        """Snapshot lineage name: ``source_name``, else the mapping file's stem."""
        return self.source_name or Path(self.mapping).stem

    @property
    def backups(self) -> str:
        """Where backups go: ``backup_url``, else ``$FERRY_STORAGE_URL/etl-backups``."""
        return backup_location(self.backup_url)

    @property
    def incremental(self) -> bool:
        return self.refresh_strategy == "incremental"

    @property
    def parallel(self) -> list[str]:
        """The ``also_publish_to`` databases (``USE_DEV_MONGO_DB`` applies)."""
        return [target_db(n) for n in self.also_publish_to or []]


class ScaffoldRequest(Request):
    """A ``production_etl_scaffold`` run's params (the limits: ``ferry.etl.limits.Limits``)."""

    pg_conn_id: Text = param(
        "ferry_pg_prod", "Airflow connection id of the PostgreSQL database to draft from.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    pg_schema: Text = param("public", "Schema to read.")
    tables: list[Text] | None = param(None, "Only these tables. Empty: every table of the schema.")
    output_url: Location | None = param(
        None, "Where the draft goes (a folder or s3://bucket/prefix). Empty: $FERRY_STORAGE_URL/etl-drafts/<run_id>."
    )
    embed_one_rows: int = param(LIMITS.embed_one_rows, "embed_one a parent of at most this many rows.", minimum=0)
    embed_one_churn: float = param(
        LIMITS.embed_one_churn, "... whose (updates + deletes) per row stay at most this.", minimum=0
    )
    embed_many_max: int = param(
        LIMITS.embed_many_max, "embed_many when a parent has at most this many children.", minimum=0
    )
    embed_many_p99: int = param(
        LIMITS.embed_many_p99, "... and the 99th percentile of children per parent at most this.", minimum=0
    )
    document_bytes: int = param(LIMITS.document_bytes, "Largest estimated document size to embed into.", minimum=1)


class PreviewRequest(Request):
    """A ``production_etl_preview`` run's params: a dry run of a mapping, nothing written."""

    mapping: BundlePath = param(
        "include/etl/demo_mapping.yaml",
        "Mapping file to try (inside include/ or FERRY_ALLOWED_DIRS), e.g. a draft of production_etl_scaffold.",
    )
    pg_conn_id: Text = param(
        "ferry_pg_prod", "Airflow connection id of the PostgreSQL source.", pattern=r"^[A-Za-z0-9_.-]+$"
    )
    pg_schema: Text = param("public", "PostgreSQL schema (must match the mapping's source.schema).")
    rows: int = param(
        0, "Read only the first this many rows of each collection (in key order). 0: every row.", minimum=0
    )
    batch_size: int = param(1000, "Rows per batch.", minimum=1)


class RollbackRequest(Request):
    """A ``production_etl_rollback`` run's params."""

    mongo_db: MongoDatabase = param("bravo-1", "Database on ferry_mongo_local.")
    version: Text | None = param(
        None, "Backup version to restore (e.g. 2026-11-22-001). Empty: only list the versions."
    )
    backup_url: Location | None = param(None, "Where the pre-rollback backup goes. Empty: as production_etl.")

    @property
    def meta(self) -> str:
        return meta_db(self.mongo_db)

    @property
    def target(self) -> str:
        return target_db(self.mongo_db)

    @property
    def backups(self) -> str:
        return backup_location(self.backup_url)
