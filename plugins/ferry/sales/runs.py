"""Task bodies of ``dags/sales.py``: connections in, domain modules called, reports logged.

Imported inside tasks only. Bad data raises ``AirflowFailException`` (no retries); transient API
trouble raises normally so Airflow's retries with exponential backoff apply.
"""

from __future__ import annotations

import glob
import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ferry import report

log = logging.getLogger(__name__)


def days_for_run(*, target_date: str, days: int, data_interval_start: datetime | None,
                 run_after: datetime | None) -> list[str]:
    """The days a run owns: ``target_date`` param, else its data interval's day, else the day before run_after."""
    if target_date:
        try:
            end = date.fromisoformat(target_date.strip())
        except ValueError as exc:
            raise ValueError(f"target_date {target_date!r} is not YYYY-MM-DD") from exc
    elif data_interval_start is not None:
        end = data_interval_start.astimezone(timezone.utc).date()
    else:
        end = ((run_after or datetime.now(timezone.utc)).astimezone(timezone.utc) - timedelta(days=1)).date()
    n = max(int(days or 1), 1)
    return [(end - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


def api_base_url(conn) -> str:
    host = (conn.host or "").strip().rstrip("/")
    if "://" in host:
        return host
    port = f":{conn.port}" if conn.port else ""
    return f"{conn.schema or 'https'}://{host}{port}"


def _fetch_api_pages(day: date, params: dict, api_conn_id: str) -> list[tuple[str, list[dict]]]:
    """All pages of the day, fetched before the DuckDB file is opened for writing (no lock held while waiting)."""
    import requests
    from airflow.sdk import BaseHook

    from ferry.sales import load

    conn = BaseHook.get_connection(api_conn_id)
    progress = report.Progress(log, f"sales API {day}")
    pages = []
    with requests.Session() as session:
        for src, records in load.fetch_day(session, api_base_url(conn), conn.password, day,
                                           page_size=int(params.get("page_size") or 500),
                                           attempts=int(params.get("api_attempts") or 5),
                                           backoff=float(params.get("api_backoff_seconds") or 0)):
            pages.append((src, records))
            progress.add(len(records))
    progress.log(final=True)
    return pages


def load_one_day(day_s: str, *, params: dict, run_id: str, duckdb_file: str, api_conn_id: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from ferry import alerts
    from ferry.sales import connect, ensure_schema, load
    from ferry.validation import ValidationFailed

    day = date.fromisoformat(day_s)
    source = params["source"]
    # The API client already retried 5xx/timeouts with exponential backoff: bad input and exhausted retries
    # fail the day at once (alert); a later backfill reloads it.
    fail_fast = (load.SalesInputError, load.SalesApiError, load.SalesApiUnavailable, ValidationFailed)
    files: list[str] = []
    pages: list[tuple[str, list[dict]]] = []
    try:
        if source == "csv":
            pattern = (params.get("csv_path") or "").replace("{date}", day_s)
            if not pattern:
                raise load.SalesInputError("source=csv needs the csv_path param")
            files = sorted(glob.glob(pattern)) or [pattern]
        else:
            pages = _fetch_api_pages(day, params, api_conn_id)
    except fail_fast as exc:
        raise AirflowFailException(str(exc)) from exc

    con = connect(duckdb_file)
    try:
        ensure_schema(con)
        stage = load.Stage(con)
        try:
            for f in files:
                log.info("staged %s: %d rows read by DuckDB", f, stage.add_csv(f))
            for src, records in pages:
                stage.add_records(src, records)
            result = load.replace_partition(
                con, stage, day, run_id=run_id, source=source,
                max_reject_ratio=float(params.get("max_reject_ratio", 0.01)),
            )
        except load.RejectThresholdExceeded as exc:
            _log_rejects(con, day)
            raise AirflowFailException(str(exc)) from exc
        except fail_fast as exc:
            raise AirflowFailException(str(exc)) from exc
        out = result.as_dict()
        report.log_table(log, f"Sales partition {day_s} replaced", [out])
        if result.reject_records:
            _log_rejects(con, day)
        if result.rows == 0:
            alerts.zero_sales(day_s, run_id=run_id)
        return out
    finally:
        con.close()


def _log_rejects(con, day: date) -> None:
    from ferry.sales import load

    rows = load.rejects_table(con, day, limit=1000)
    text = report.log_table(log, f"Quarantined records for {day} (sales_rejects)", rows[:50])
    (report.artifacts_dir("sales", "rejects") / f"{day}.md").write_text(text + "\n")


def import_users_task(params: dict, *, duckdb_file: str) -> dict:
    from airflow.sdk.exceptions import AirflowFailException

    from ferry.sales import connect
    from ferry.sales.users import UsersInputError, import_users

    if not params.get("csv_path"):
        raise AirflowFailException("import_users needs the csv_path param")
    con = connect(duckdb_file)
    try:
        rep = import_users(con, params["csv_path"], update_existing=bool(params.get("update_existing")),
                           rounds=int(params.get("bcrypt_rounds") or 12))
    except UsersInputError as exc:
        raise AirflowFailException(str(exc)) from exc
    finally:
        con.close()
    report.log_table(log, "Users import", [rep.summary()])
    text = report.log_table(log, "Rejected rows (not imported)", rep.rejected)
    text += "\n\n" + report.log_table(log, "Duplicates (reported, not written)", rep.duplicates)
    (report.artifacts_dir("sales") / "import_users.md").write_text(text + "\n")
    return {**rep.summary(), "rejected_rows": rep.rejected, "duplicate_rows": rep.duplicates}


def health_task(params: dict, *, run_after: datetime | None, duckdb_file: str) -> list[dict]:
    from airflow.sdk.exceptions import AirflowFailException

    from ferry.sales import connect, health

    if params.get("end_date"):
        end = date.fromisoformat(params["end_date"])
    else:
        end = ((run_after or datetime.now(timezone.utc)) - timedelta(days=1, hours=3)).date()
    if not Path(duckdb_file).exists():
        raise AirflowFailException(f"DuckDB file {duckdb_file} does not exist")
    con = connect(duckdb_file, read_only=True)
    try:
        checks, counts = health.check(con, end, int(params.get("days") or 7))
    finally:
        con.close()
    text = report.log_table(log, f"Sales rows per day (last {params.get('days')} days to {end})", counts)
    text += "\n\n" + report.log_table(log, "Sales health checks", checks)
    (report.artifacts_dir("sales") / "health.md").write_text(text + "\n")
    failed = [c for c in checks if c["status"] == "FAIL"]
    if failed:
        raise AirflowFailException(f"{len(failed)} sales health check(s) failed:\n{report.table(failed)}")
    return checks


def _backup_root(params: dict, duckdb_file: str) -> Path:
    return Path(params.get("backup_dir") or Path(duckdb_file).parent / "backups")


def _s3(params: dict):
    if not params.get("bucket"):
        return None
    from ferry import conns

    s3 = conns.s3_client(conns.S3)
    conns.ensure_bucket(s3, params["bucket"])
    return s3


def backup_task(params: dict, *, duckdb_file: str) -> dict:
    from ferry.sales import backup

    if not Path(duckdb_file).exists():
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"DuckDB file {duckdb_file} does not exist")
    from ferry.sales import connect

    connect(duckdb_file, read_only=True).close()  # wait for a running writer to finish
    manifest = backup.backup(duckdb_file, _backup_root(params, duckdb_file), s3=_s3(params),
                             bucket=params.get("bucket") or "", prefix=params.get("prefix") or "duckdb-backups")
    report.log_table(log, f"Backup {manifest['name']} verified (restored counts match)",
                     [{"table": t, "rows": n} for t, n in manifest["tables"].items()])
    return manifest


def retention_task(params: dict, *, duckdb_file: str) -> list[dict]:
    from ferry.sales import backup

    rows = backup.retention(_backup_root(params, duckdb_file), retention_days=int(params["retention_days"]),
                            s3=_s3(params), bucket=params.get("bucket") or "",
                            prefix=params.get("prefix") or "duckdb-backups", dry_run=bool(params.get("dry_run")))
    report.log_table(log, f"Backups older than {params['retention_days']} days", rows)
    return rows
