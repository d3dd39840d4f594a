"""The run request of ``dataset_promotion``: each param declared once, with its form schema and checks, and what
the task derives from it (the databases under ``USE_DEV_MONGO_DB``, the metadata overrides, the bucket data is
copied to). ``dags/catalog.py`` gives ``CatalogRequest.params()`` to the DAG; the task reads
``CatalogRequest.from_context(ctx)``. Imported by the DAG file at parse time: keep it light.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ferry.request import Bucket, MongoDatabase, Request, Text, param

Target = Literal["catalog", "atmosphere"]
#: Entry fields a run may override (``name`` only when one dataset is promoted).
OVERRIDES = ("name", "description", "tags", "license")


class CatalogRequest(Request):
    """A ``dataset_promotion`` run's params."""

    target: Target = param("catalog", "catalog (MongoDB) or atmosphere (PDS).")
    dry_run: bool = param(True, "List what would be published; write nothing.")
    datasets: list[Text] | None = param(None, "Dataset names. Empty: all.")
    source_db: MongoDatabase = param("ferry_catalog", "Catalog database on ferry_mongo_local.")
    target_db: MongoDatabase = param("ferry_catalog", "Catalog database on ferry_mongo_prod (also the audit's).")
    copy_data: bool = param(False, "Copy data objects to target_bucket (else keep URLs).")
    target_bucket: Bucket | None = param(None, "S3 bucket (ferry_s3) for copied data (needed with copy_data).")
    name: Text | None = param(None, "Override the name (one dataset only). Empty: keep.")
    description: Text | None = param(None, "Override the description. Empty: keep.")
    tags: list[Text] | None = param(None, "Override the tags. Empty: keep.")
    license: Text | None = param(None, "Override the license. Empty: keep.")
    require_approval: bool = param(
        False, "With dry_run=false: an approver (FERRY_APPROVERS, never you) says yes to the plan before any write."
    )

    @model_validator(mode="after")
    def _bucket_for_copies(self) -> CatalogRequest:
        if self.copy_data and not self.target_bucket:
            raise ValueError("copy_data=true needs target_bucket")
        return self

    @property
    def source(self) -> str:
        """The local catalog database read (``_dev`` under USE_DEV_MONGO_DB)."""
        from ferry.mongo import db_name

        return db_name(self.source_db)

    @property
    def target_database(self) -> str:
        """The production catalog database written, and where the audit goes (``_dev`` under USE_DEV_MONGO_DB)."""
        from ferry.mongo import db_name

        return db_name(self.target_db)

    @property
    def names(self) -> list[str]:
        return list(self.datasets or [])

    @property
    def overrides(self) -> dict:
        """The entry fields this run overrides."""
        return {k: getattr(self, k) for k in OVERRIDES if getattr(self, k)}

    @property
    def bucket(self) -> str | None:
        """Where data objects are copied to; ``None``: URLs are kept."""
        return self.target_bucket if self.copy_data else None
