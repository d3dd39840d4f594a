"""The run request of the sales load DAGs (``nightly_sales_sync`` and ``sales_manual_load`` share it): each
param declared once, with its form schema and checks. The DAG files give ``SalesLoadRequest.params()`` /
``ManualLoadRequest.params()`` to their DAGs; each task reads ``SalesLoadRequest.from_context(ctx)``.
Imported by DAG files at parse time: keep it light (no DuckDB, no requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ferry.request import Bucket, BundlePath, Request, Text, param

_DATE = {"format": "date"}  # the trigger form shows a date picker


class SalesLoadRequest(Request):
    """A ``nightly_sales_sync`` run's params (``sales_manual_load``: ``ManualLoadRequest``)."""

    source: Literal["api", "csv"] = param("api", "Where the day's sales come from.")
    csv_path: BundlePath | None = param(None, "CSV file or glob for source=csv; `{date}` becomes the day (YYYY-MM-DD).")
    target_date: Text | None = param(
        None, "Manual runs: the (last) day. Empty: the data interval's, else yesterday.", form=_DATE
    )
    days: int = param(1, "Days up to target_date.", minimum=1, maximum=366)
    api_profile: Text | None = param(
        None,
        "API profile in include/sales/api_profiles.yaml (original, ferry_v2, ...). "
        "Empty: the `profile` extra of ferry_sales_api, else ferry_v2.",
    )
    rules_path: BundlePath | None = param(None, "Business rules YAML. Empty: include/sales/rules.yaml.")
    gx: Literal["weekly", "always", "never"] = param(
        "weekly",
        "Great Expectations sample check: every 7th data day, every day, or never "
        "(the SQL rules check every row every day).",
    )
    max_reject_ratio: float = param(0.01, "Fail a day above this.", minimum=0, maximum=1)
    page_size: int = param(500, "API page size.", minimum=1)
    api_attempts: int = param(5, "Tries per page on 5xx/timeout.", minimum=1, maximum=10)
    api_backoff_seconds: float = param(2.0, "First backoff; doubles per try.", minimum=0)


class ManualLoadRequest(SalesLoadRequest):
    """A ``sales_manual_load`` run's params: the same, with no data interval to fall back on."""

    target_date: Text | None = param(None, "The (last) day to load. Empty: yesterday (UTC).", form=_DATE)


class UsersRequest(Request):
    """An ``import_users`` run's params."""

    csv_path: BundlePath | None = param(None, "Users CSV: username,email,role,initial_password (required to import).")
    update_existing: bool = param(False, "Overwrite existing users (else report them).")
    bcrypt_rounds: int = param(12, "bcrypt cost factor.", minimum=4, maximum=16)


class HealthRequest(Request):
    """A ``sales_health_check`` run's params."""

    days: int = param(7, "Check the last N days for gaps.", minimum=1)
    end_date: Text | None = param(
        None, "Last day to check. Empty: the last day loaded by now (run time - 1 day 3 h).", form=_DATE
    )
    rules_path: BundlePath | None = param(None, "Business rules YAML. Empty: include/sales/rules.yaml.")


_BACKUP_DIR = "Local backup folder. Empty: <duckdb dir>/backups."
_BUCKET = "S3 bucket on ferry_s3. Empty: local only."
_PREFIX = "Key prefix in the bucket."


class _Backups:
    """What the backup requests derive (a mixin: pydantic keeps the fields in each request's own order)."""

    if TYPE_CHECKING:
        backup_dir: str | None
        bucket: str | None
        prefix: str

    def root(self, duckdb_file: str):
        """The local backup folder: ``backup_dir``, else ``<duckdb dir>/backups``."""
        from pathlib import Path

        return Path(self.backup_dir or Path(duckdb_file).parent / "backups")

    @property
    def key_prefix(self) -> str:
        return self.prefix or "duckdb-backups"


class BackupRequest(_Backups, Request):
    """A ``sales_backup`` run's params: a local folder and, with a bucket, S3 too."""

    backup_dir: BundlePath | None = param(None, _BACKUP_DIR)
    bucket: Bucket | None = param("ferry-backups", _BUCKET)
    prefix: Text = param("duckdb-backups", _PREFIX)


class RetentionRequest(_Backups, Request):
    """A ``sales_backup_retention`` run's params."""

    retention_days: int = param(30, "Keep backups younger than this.", minimum=1)
    backup_dir: BundlePath | None = param(None, _BACKUP_DIR)
    bucket: Bucket | None = param("ferry-backups", _BUCKET)
    prefix: Text = param("duckdb-backups", _PREFIX)
    dry_run: bool = param(False, "Only report what would be deleted.")
