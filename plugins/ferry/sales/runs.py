"""What each task of the sales DAGs does (``dags/sales.py`` only declares): connections in (provider hooks),
domain modules called, reports logged and stored by URL, an audit record per load.

Each task function takes upstream results as arguments and the Airflow context as keyword arguments.
Bad data raises ``FerryError`` (no retries, via ``fails_fast``); transient trouble raises normally so
Airflow's retries with exponential backoff apply.
"""

from __future__ import annotations

import glob
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ferry import audit, conns, report
from ferry.errors import FerryError, fails_fast
from ferry.sales.request import (
    BackupRequest,
    HealthRequest,
    ManualLoadRequest,
    RetentionRequest,
    SalesLoadRequest,
    UsersRequest,
)

log = logging.getLogger("ferry.sales")
FAMILY = "sales"


def days_for_run(
    *, target_date: str | None, days: int, data_interval_start: datetime | None, run_after: datetime | None
) -> list[str]:
    """The days a run owns: ``target_date`` param, else its data interval's day, else the day before run_after."""
    if target_date:
        try:
            end = date.fromisoformat(target_date.strip())
        except ValueError as exc:
            raise FerryError(f"target_date {target_date!r} is not YYYY-MM-DD") from exc
    elif data_interval_start is not None:
        end = data_interval_start.astimezone(UTC).date()
    else:
        end = ((run_after or datetime.now(UTC)).astimezone(UTC) - timedelta(days=1)).date()
    n = max(int(days or 1), 1)
    return [(end - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


#: Great Expectations re-checks a sample of the accepted rows every GX_EVERY_DAYS-th data day (the SQL rules
#: check every row every day): most loads never pay GX's import (~5 s in a fresh task process).
GX_EVERY_DAYS = 7


def gx_due(day: date, mode: str | None) -> bool:
    """``gx`` param: ``weekly`` (default: days whose ordinal is a multiple of 7), ``always`` or ``never``."""
    mode = mode or "weekly"
    if mode not in ("weekly", "always", "never"):
        raise FerryError(f"gx {mode!r} is not one of weekly, always, never")
    return mode == "always" or (mode == "weekly" and day.toordinal() % GX_EVERY_DAYS == 0)


def duckdb_file() -> str:
    return conns.duckdb_path(conns.DUCKDB)


@fails_fast
def plan(**ctx) -> list[str]:
    """The days this run loads (its data interval's day, or the manual ``target_date`` and ``days``)."""
    r = SalesLoadRequest.from_context(ctx)
    days = days_for_run(
        target_date=r.target_date,
        days=r.days,
        data_interval_start=ctx.get("data_interval_start"),
        run_after=ctx["dag_run"].run_after,
    )
    log.info("data interval: %s -> %s; days: %s", ctx.get("data_interval_start"), ctx.get("data_interval_end"), days)
    return days


@fails_fast
def plan_manual(**ctx) -> list[str]:
    """``sales_manual_load``: ``target_date`` (empty: yesterday, UTC) and the ``days`` before it; no data interval."""
    r = ManualLoadRequest.from_context(ctx)
    days = days_for_run(
        target_date=r.target_date,
        days=r.days,
        data_interval_start=None,
        run_after=ctx["dag_run"].run_after,
    )
    log.info("manual load; days: %s", days)
    return days


def _fetch_api_pages(day: date, r: SalesLoadRequest, api_conn_id: str) -> list[tuple[str, list[dict], list[str]]]:
    """All pages of the day, fetched before the DuckDB file is opened for writing (no lock held while waiting).
    The profile (``include/sales/api_profiles.yaml``) is the ``api_profile`` param, else the connection's extra."""
    from ferry.sales import api

    session, base_url, conn = conns.http(api_conn_id)
    prof = api.profile(api.profile_name(r.api_profile, conn.extra_dejson))
    session.headers.pop("profile", None)  # HttpHook turns extras into headers: the profile's name is not one
    log.info("sales API %s: profile %s (%s, %s paging)", day, prof.name, prof.response["shape"], prof.paging["style"])
    progress = report.Progress(log, f"sales API {day}")
    pages = []
    with session:
        for src, records, raws in api.fetch_day(
            session,
            base_url,
            conn.password,
            day,
            prof,
            page_size=r.page_size,
            retry=api.Retry(attempts=r.api_attempts, backoff=r.api_backoff_seconds),
        ):
            pages.append((src, records, raws))
            progress.add(len(records))
    progress.log(final=True)
    return pages


@fails_fast
def load_day(day: str, **ctx) -> dict:
    """Replace one day's partition (and its rejects) in one DuckDB transaction; audited. The asset event it
    emits carries the day, so the health check it triggers looks at that day."""
    out = load_one_day(
        day,
        SalesLoadRequest.from_context(ctx),
        run=audit.Run.of(ctx),
        duckdb_file=duckdb_file(),
        api_conn_id=conns.SALES_API,
    )
    for outlet in getattr(ctx.get("task"), "outlets", None) or []:
        ctx["outlet_events"][outlet].extra = {"day": day, "rows": out["rows"]}
    return out


def load_one_day(day_s: str, r: SalesLoadRequest, *, run: audit.Run, duckdb_file: str, api_conn_id: str) -> dict:
    """One day: read it (CSV drop or all API pages) before opening DuckDB, then replace its partition."""
    from ferry import alerts
    from ferry.sales import api, load
    from ferry.sales import rules as rules_mod
    from ferry.sales.store import connect, ensure_schema
    from ferry.validation import ValidationFailed  # (GX itself is imported only when the gate runs)

    day, run_id, source = date.fromisoformat(day_s), run.run_id, r.source
    # The API client already retried 5xx/timeouts with exponential backoff: bad input and exhausted retries
    # fail the day at once (alert); a later backfill reloads it.
    fail_fast: tuple[type[Exception], ...] = (load.SalesInputError, api.ProfileError, api.SalesApiError)
    fail_fast += (api.SalesApiUnavailable, rules_mod.RulesError, ValidationFailed)
    try:
        rules = rules_mod.load(r.rules_path)
        files, pages = _read_day(day, r, api_conn_id)
    except fail_fast as exc:
        raise FerryError(str(exc)) from exc

    con = connect(duckdb_file)
    try:
        ensure_schema(con)
        stage = load.Stage(con)
        try:
            for f in files:
                log.info("staged %s: %d rows read by DuckDB", f, stage.add_csv(f))
            for src, records, raws in pages:
                stage.add_records(src, records, raws)
            result = load.replace_partition(
                con,
                stage,
                day,
                run_id=run_id,
                source=source,
                max_reject_ratio=r.max_reject_ratio,
                gx=gx_due(day, r.gx),
                rules=rules,
            )
        except load.RejectThresholdExceeded as exc:
            _log_rejects(con, day, run_id)
            _audit(con, day_s, run, r.as_params(), exc.result.as_dict(), "failed")
            raise FerryError(str(exc)) from exc
        except fail_fast as exc:
            raise FerryError(str(exc)) from exc
        out = result.as_dict()
        _audit(con, day_s, run, r.as_params(), out, "success")
        report.log_table(log, f"Sales partition {day_s} replaced", [out])
        if result.reject_records:
            _log_rejects(con, day, run_id)
        if result.rows == 0:
            alerts.zero_sales(day_s, run_id=run_id)
        return out
    finally:
        con.close()


def _read_day(day: date, r: SalesLoadRequest, api_conn_id: str):
    """The day's input, before DuckDB is opened: its CSV files (``csv_path`` with ``{date}``), or every API page."""
    from ferry.sales import load

    if r.source != "csv":
        return [], _fetch_api_pages(day, r, api_conn_id)
    pattern = (r.csv_path or "").replace("{date}", day.isoformat())
    if not pattern:
        raise load.SalesInputError("source=csv needs the csv_path param")
    return sorted(glob.glob(pattern)) or [pattern], []


def _audit(con, day: str, run: audit.Run, params: dict, counts: dict, outcome: str) -> None:
    rec = run.record(id=f"{run.run_id}:{day}", family=FAMILY, outcome=outcome, params=params, counts=counts, day=day)
    audit.to_duckdb(con, rec)


def _log_rejects(con, day: date, run_id: str) -> None:
    from ferry.sales import load

    rows = load.rejects_table(con, day, limit=1000)
    text = report.log_table(log, f"Quarantined records for {day} (sales_rejects)", rows[:50])
    report.publish(FAMILY, run_id, f"rejects-{day}.md", text + "\n")


def summary(results: list[dict], **ctx) -> list[dict]:
    rows = list(results)
    report.log_table(log, "Sales loaded", rows)
    return rows


@fails_fast
def import_users(**ctx) -> dict:
    """Users CSV -> ``users`` with bcrypt hashes; rejected and duplicate rows reported, never written."""
    from ferry.sales.store import connect
    from ferry.sales.users import import_users as run_import

    r = UsersRequest.from_context(ctx)
    if not r.csv_path:
        raise FerryError("import_users needs the csv_path param (a users CSV: username,email,role,initial_password)")
    con = connect(duckdb_file())
    try:
        rep = run_import(con, r.csv_path, update_existing=r.update_existing, rounds=r.bcrypt_rounds)
        audit.to_duckdb(
            con,
            audit.Run.of(ctx).record(family=FAMILY, outcome="success", params=r.as_params(), counts=rep.summary()),
        )
    finally:
        con.close()
    report.log_table(log, "Users import", [rep.summary()])
    text = report.log_table(log, "Rejected rows (not imported)", rep.rejected)
    text += "\n\n" + report.log_table(log, "Duplicates (reported, not written)", rep.duplicates)
    report.publish(FAMILY, ctx["run_id"], "import_users.md", text + "\n")
    return {**rep.summary(), "rejected_rows": rep.rejected, "duplicate_rows": rep.duplicates}


@fails_fast
def health(**ctx) -> list[dict]:
    """Gaps, nulls, types, business rules, duplicate order ids: a table; any FAIL fails the task."""
    from ferry.sales import health as checks_mod
    from ferry.sales import rules
    from ferry.sales.store import connect

    r, path = HealthRequest.from_context(ctx), duckdb_file()
    loaded = sorted(
        e.extra["day"]
        for events in (ctx.get("triggering_asset_events") or {}).values()
        for e in events
        if (e.extra or {}).get("day")
    )
    if r.end_date:
        end = date.fromisoformat(r.end_date)
    elif loaded:  # run after loads: check up to the newest day they loaded
        end = date.fromisoformat(loaded[-1])
    else:
        end = ((ctx["dag_run"].run_after or datetime.now(UTC)) - timedelta(days=1, hours=3)).date()
    if not Path(path).exists():
        raise FerryError(f"DuckDB file {path} does not exist (connection ferry_duckdb): nothing loaded yet?")
    con = connect(path, read_only=True)
    try:
        checks, counts = checks_mod.check(con, end, r.days, rules.load(r.rules_path))
    finally:
        con.close()
    text = report.log_table(log, f"Sales rows per day (last {r.days} days to {end})", counts)
    text += "\n\n" + report.log_table(log, "Sales health checks", checks)
    report.publish(FAMILY, ctx["run_id"], "health.md", text + "\n")
    new = [c for c in checks if c["status"] == "NEW"]
    if new:
        log.warning("finding: values never seen before: %s", "; ".join(f"{c['check']}: {c['detail']}" for c in new))
    failed = [c for c in checks if c["status"] == "FAIL"]
    if failed:
        raise FerryError(f"{len(failed)} sales health check(s) failed:\n{report.table(failed)}")
    return checks


def _s3(r: BackupRequest | RetentionRequest):
    if not r.bucket:
        return None
    from ferry import storage

    s3 = conns.s3_client(conns.S3)
    storage.ensure_bucket(s3, r.bucket)
    return s3


@fails_fast
def backup(**ctx) -> dict:
    """Verified Parquet export of the DuckDB file, to the local folder and S3."""
    from ferry.sales import backup as bk
    from ferry.sales.store import connect

    r, path = BackupRequest.from_context(ctx), duckdb_file()
    if not Path(path).exists():
        raise FerryError(f"DuckDB file {path} does not exist (connection ferry_duckdb): nothing to back up")
    connect(path, read_only=True).close()  # wait for a running writer to finish
    manifest = bk.backup(path, r.root(path), s3=_s3(r), bucket=r.bucket or "", prefix=r.key_prefix)
    report.log_table(
        log,
        f"Backup {manifest['name']} verified (restored counts match)",
        [{"table": t, "rows": n} for t, n in manifest["tables"].items()],
    )
    return manifest


@fails_fast
def retention(**ctx) -> list[dict]:
    """Delete backups older than ``retention_days`` locally and in S3, never the newest."""
    from ferry.sales import backup as bk

    r = RetentionRequest.from_context(ctx)
    rows = bk.retention(
        r.root(duckdb_file()),
        retention_days=r.retention_days,
        s3=_s3(r),
        bucket=r.bucket or "",
        prefix=r.key_prefix,
        dry_run=r.dry_run,
    )
    report.log_table(log, f"Backups older than {r.retention_days} days", rows)
    return rows
