"""Demo step: nightly sales sync from CSV drops (one malformed), user import, health check, backup."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

ORDER = 20
DAYS = [date(2024, 1, 15), date(2024, 1, 16), date(2024, 1, 17), date(2024, 1, 18)]
# dag.test() in one process shares the DAG's Param objects between runs: spell every param out.
SYNC_DEFAULTS = {
    "source": "csv",
    "csv_path": None,
    "target_date": None,
    "days": 1,
    "max_reject_ratio": 0.01,
    "page_size": 500,
    "api_attempts": 5,
    "api_backoff_seconds": 2.0,
    "api_profile": None,
    "rules_path": None,
    "gx": "weekly",
}


def run(ctx) -> list[dict]:
    import duckdb

    from ferry_dev import dagtest
    from ferry_dev.devstack import REPO_ROOT

    src = REPO_ROOT / "include" / "sales"
    drop = ctx.workdir / "sales" / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv"):
        shutil.copy(f, drop / f.name)
    rows = []
    conf = {**SYNC_DEFAULTS, "csv_path": str(drop / "sales_{date}.csv"), "max_reject_ratio": 0.1}
    for day in DAYS:  # the scheduled run owning `day` has data interval [day 02:00, day+1 02:00)
        logical = datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)
        dr = ctx.run_dag("nightly_sales_sync", conf, logical_date=logical)
        res = dagtest.xcom(dr, "summary")[0]
        rows.append(
            {
                "dag": "nightly_sales_sync",
                "result": f"{res['day']}: {res['rows']} rows loaded, {res['reject_records']} quarantined "
                f"(interval {dr.data_interval_start:%Y-%m-%d %H:%M} → {dr.data_interval_end:%Y-%m-%d %H:%M})",
            }
        )
    dr = ctx.run_dag(
        "import_users", {"csv_path": str(drop / "users.csv"), "update_existing": False, "bcrypt_rounds": 10}
    )
    u = dagtest.xcom(dr, "import_csv")
    rows.append(
        {
            "dag": "import_users",
            "result": f"{u['inserted']} inserted, {u['rejected']} rejected rows, {u['duplicates']} duplicates reported",
        }
    )
    dr = ctx.run_dag("sales_health_check", {"end_date": DAYS[-1].isoformat(), "days": len(DAYS)})
    checks = dagtest.xcom(dr, "check")
    rows.append(
        {"dag": "sales_health_check", "result": f"{sum(c['status'] == 'ok' for c in checks)}/{len(checks)} checks ok"}
    )
    dr = ctx.run_dag(
        "sales_backup",
        {"backup_dir": str(ctx.workdir / "sales" / "backups"), "bucket": ctx.bucket, "prefix": "duckdb-backups"},
    )
    m = dagtest.xcom(dr, "backup")
    rows.append({"dag": "sales_backup", "result": f"{m['name']}: {m['tables']} verified, {m.get('s3', 'local only')}"})
    with duckdb.connect(str(ctx.duckdb_path), read_only=True) as con:
        total, distinct = con.execute("SELECT count(*), count(DISTINCT order_id) FROM sales").fetchone()
        rejects = con.execute("SELECT count(*) FROM sales_rejects").fetchone()[0]
    ctx.notes.append(
        f"sales: {total} rows ({distinct} distinct order ids), {rejects} quarantined in sales_rejects; "
        f"see docs/sales.md"
    )
    return rows
