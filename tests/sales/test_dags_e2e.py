"""The sales DAGs end to end with dag.test(): backfill exact-once, CSV quarantine, users, health, backups."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ferry_dev import dagtest
from tests.sales.conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "sales"
START = date(2024, 2, 1)
# Every param spelled out: in one process dag.test() runs share the DAG object, and a conf value
# given to one run was seen leaking into the next run's params when omitted there.
DEFAULTS = {
    "source": "api",
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
FAST_API = {**DEFAULTS, "api_attempts": 2, "api_backoff_seconds": 0.01}


def run_for_day(day: date, conf: dict, check: bool = True):
    """The scheduled run that owns ``day``: data interval [day 02:00, day+1 02:00).

    ``dag.test(logical_date=X)`` infers a manual run's interval as the last complete period before X
    (``CronDataIntervalTimetable.infer_manual_data_interval``), so the run owning ``day`` is started at
    day+1 02:00. A scheduler/backfill run of that interval has logical date = day 02:00 and the same interval.
    """
    logical = datetime(day.year, day.month, day.day, 2, tzinfo=UTC) + timedelta(days=1)
    return dagtest.run_dag("nightly_sales_sync", conf, logical_date=logical, check=check)


def sales_by_day(db: Path) -> dict[str, tuple[int, int]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT sale_date, count(*), count(DISTINCT order_id) FROM sales GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {d.isoformat(): (n, u) for d, n, u in rows}


def snapshot(db: Path):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT * EXCLUDE (run_id, loaded_at) FROM sales ORDER BY order_id").fetchall()


def test_backfill_after_api_outage_loads_each_day_exactly_once(sales_conns, sales_api, webhook, duckdb_path):
    days = sales_api.seed(START, 7, 15)
    sales_api.fail_days = {days[2], days[3]}  # the API was down for days 3-4 during the scheduled runs

    states = {}
    for k in range(7):
        dr = run_for_day(START + timedelta(days=k), FAST_API, check=False)
        d = START + timedelta(days=k)
        assert (dr.data_interval_start, dr.data_interval_end) == (
            datetime(d.year, d.month, d.day, 2, tzinfo=UTC),
            datetime(d.year, d.month, d.day, 2, tzinfo=UTC) + timedelta(days=1),
        )
        states[days[k]] = str(dr.state)
    assert [s for s in states.values()] == ["success", "success", "failed", "failed", "success", "success", "success"]
    assert sorted(sales_by_day(duckdb_path)) == [d for d in days if d not in sales_api.fail_days]
    # each failed run alerted through the webhook, naming the task and the 500
    failures = [p["text"] for p in webhook.payloads if "task failed" in p["text"]]
    assert len(failures) == 2 and all("nightly_sales_sync.load_day" in t and "HTTP 500" in t for t in failures)
    assert API_KEY not in json.dumps(webhook.payloads)

    sales_api.fail_days.clear()  # the API is back: backfill the failed days
    for k in (2, 3):
        run_for_day(START + timedelta(days=k), FAST_API)
    assert sales_by_day(duckdb_path) == {d: (15, 15) for d in days}
    before = snapshot(duckdb_path)

    for k in (0, 3, 6):  # rerunning any day (or the backfill) changes nothing
        run_for_day(START + timedelta(days=k), FAST_API)
    assert snapshot(duckdb_path) == before
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT order_id) FROM sales").fetchone() == (105, 105)
        assert con.execute("SELECT count(*) FROM sales_loads").fetchone()[0] == 7


def test_manual_run_with_target_date_and_days(sales_conns, sales_api, duckdb_path):
    days = sales_api.seed(START, 3, 4)
    dr = run_for_day(date(2030, 1, 1), {**FAST_API, "target_date": days[2], "days": 3})
    assert dagtest.xcom(dr, "plan") == days
    assert sales_by_day(duckdb_path) == {d: (4, 4) for d in days}
    assert [r["rows"] for r in dagtest.xcom(dr, "summary")] == [4, 4, 4]


def test_csv_source_quarantines_malformed_lines_and_fails_over_threshold(sales_conns, webhook, duckdb_path, tmp_path):
    conf = {**DEFAULTS, "source": "csv", "csv_path": str(INCLUDE / "sales_{date}.csv")}
    dr = run_for_day(date(2024, 1, 15), conf, check=False)  # 8 of 108 rejected > 1% default
    assert str(dr.state) == "failed"
    assert any("8 of 108 records for 2024-01-15 rejected" in p["text"] for p in webhook.payloads)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sales").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM sales_rejects").fetchone()[0] == 8

    dr = run_for_day(date(2024, 1, 15), {**conf, "max_reject_ratio": 0.1})
    res = dagtest.xcom(dr, "summary")[0]
    assert (res["rows"], res["reject_records"], res["swapped"]) == (100, 8, True)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        lines = [r[0] for r in con.execute("SELECT line FROM sales_rejects ORDER BY line").fetchall()]
    assert lines == [6, 21, 34, 48, 61, 72, 89, 96]
    assert sales_by_day(duckdb_path) == {"2024-01-15": (100, 100)}
    report = next((tmp_path / "storage" / "reports" / "sales").glob("*/rejects-2024-01-15.md")).read_text()
    assert "| line |" in report.replace("  ", " ") or "line" in report.splitlines()[1]
    assert "unknown region 'Atlantis'" in report


def test_api_page_with_a_bad_record_is_quarantined(sales_conns, sales_api, duckdb_path):
    days = sales_api.seed(START, 1, 12)
    sales_api.days[days[0]][7]["quantity"] = "lots"  # page 2, record 3 with page_size 5
    sales_api.days[days[0]][10]["region"] = "Atlantis"  # page 3, record 1
    dr = run_for_day(START, {**FAST_API, "page_size": 5, "max_reject_ratio": 0.2})
    res = dagtest.xcom(dr, "summary")[0]
    assert (res["rows"], res["reject_records"]) == (10, 2)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rej = con.execute('SELECT source, line, "column", reason FROM sales_rejects ORDER BY source').fetchall()
    assert rej == [
        ("api page 2", 3, "quantity", "CAST: could not convert 'lots' to BIGINT"),
        ("api page 3", 1, "region", "unknown region 'Atlantis'"),
    ]
    assert [r["page"] for r in sales_api.requests] == ["1", "2", "3"]


def test_zero_sales_alert(sales_conns, sales_api, webhook, duckdb_path):
    dr = run_for_day(date(2024, 5, 5), FAST_API)  # the API knows no sales that day
    assert dagtest.xcom(dr, "summary")[0]["rows"] == 0
    assert any("loaded 0 sales for 2024-05-05" in p["text"] for p in webhook.payloads)


def test_import_users_never_exposes_plain_passwords(sales_conns, duckdb_path, tmp_path, capfd, caplog):
    passwords = [line.rsplit(",", 1)[1] for line in (INCLUDE / "users.csv").read_text().splitlines()[1:]]
    dr = dagtest.run_dag("import_users", {"csv_path": str(INCLUDE / "users.csv"), "bcrypt_rounds": 4})
    out = dagtest.xcom(dr, "import_csv")
    assert (out["inserted"], out["rejected"], out["duplicates"]) == (3, 3, 2)
    assert [r["line"] for r in out["rejected_rows"]] == [4, 5, 9]
    from ferry.sales import users

    with duckdb.connect(str(duckdb_path)) as con:
        assert users.verify_password(con, "bob", "Bob-Initial-Pw2!")
    captured = capfd.readouterr()
    logs = captured.out + captured.err + caplog.text
    artifacts = "".join(p.read_text() for p in (tmp_path / "storage").rglob("*.md"))
    assert "Users import" in logs + artifacts
    blob = duckdb_path.read_bytes()
    for pw in passwords:
        assert pw not in json.dumps(out) and pw not in logs and pw not in artifacts
        assert pw.encode() not in blob


def test_health_check_passes_then_fails_on_a_gap_with_alert(sales_conns, sales_api, webhook, duckdb_path):
    days = sales_api.seed(START, 3, 5)
    run_for_day(START, {**FAST_API, "target_date": days[2], "days": 3})
    dr = dagtest.run_dag("sales_health_check", {"end_date": days[2], "days": 3})
    assert {c["status"] for c in dagtest.xcom(dr, "check")} == {"ok"}
    dr = dagtest.run_dag("sales_health_check", {"end_date": days[2], "days": 5}, check=False)
    assert str(dr.state) == "failed"
    text = next(p["text"] for p in webhook.payloads if "sales_health_check.check" in p["text"])
    assert "gaps in last 5 days" in text and "2024-01-30, 2024-01-31" in text


def test_backup_and_retention_dags(sales_conns, sales_api, duckdb_path, s3, tmp_path):
    days = sales_api.seed(START, 1, 6)
    run_for_day(START, FAST_API)
    bucket = "ferry-sales-backup-test"
    conf = {"backup_dir": str(tmp_path / "bk"), "bucket": bucket, "prefix": "t"}
    old = tmp_path / "bk" / "sales-20200101T030000Z"
    old.mkdir(parents=True)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="t/sales-20200101T030000Z/manifest.json", Body=b"{}")
    dr = dagtest.run_dag("sales_backup", conf)
    manifest = dagtest.xcom(dr, "backup")
    assert manifest["tables"]["sales"] == 6 and manifest["s3"].startswith(f"s3://{bucket}/t/sales-")
    dr = dagtest.run_dag("sales_backup_retention", {**conf, "retention_days": 30})
    assert [r["backup"] for r in dagtest.xcom(dr, "prune")] == [old.name, old.name]
    assert [p.name for p in (tmp_path / "bk").iterdir()] == [manifest["name"]]
    keys = {o["Key"].split("/")[1] for o in s3.list_objects_v2(Bucket=bucket, Prefix="t/")["Contents"]}
    assert keys == {manifest["name"]}
    assert days


def test_demo_step(sales_conns, stack, s3_bucket, duckdb_path, tmp_path):
    from types import SimpleNamespace

    from ferry_dev.demo import sales as demo_sales

    ctx = SimpleNamespace(
        stack=stack,
        workdir=tmp_path / "demo",
        bucket=s3_bucket,
        duckdb_path=duckdb_path,
        notes=[],
        run_dag=lambda dag_id, conf=None, **kw: dagtest.run_dag(dag_id, conf, **kw),
    )
    rows = demo_sales.run(ctx)
    assert [r["dag"] for r in rows] == ["nightly_sales_sync"] * 4 + [
        "import_users",
        "sales_health_check",
        "sales_backup",
    ]
    assert rows[0]["result"].startswith("2024-01-15: 100 rows loaded, 8 quarantined")
    assert "7/7 checks ok" in rows[5]["result"] or "checks ok" in rows[5]["result"]
    assert "220 rows (220 distinct order ids), 8 quarantined" in ctx.notes[0]


def test_catchup_starts_where_the_deployment_says(monkeypatch):
    """Unpausing must not create a run per day since some old hard-coded date."""
    import runpy
    from datetime import datetime

    from ferry_dev.devstack import REPO_ROOT

    monkeypatch.setenv("FERRY_SALES_START_DATE", "2026-03-05")
    ns = runpy.run_path(str(REPO_ROOT / "dags" / "sales.py"))
    assert ns["SYNC_START"] == datetime(2026, 3, 5, tzinfo=UTC)
    monkeypatch.delenv("FERRY_SALES_START_DATE")
    assert runpy.run_path(str(REPO_ROOT / "dags" / "sales.py"))["SYNC_START"] >= datetime(2026, 11, 1, tzinfo=UTC)


def test_original_plain_array_profile_end_to_end(sales_conns, sales_api, webhook, duckdb_path):
    """The original design's API: GET /sales?days=N, plain array, no order_id -> rows keyed by fingerprint."""
    sales_api.style = "original"
    day = START
    sales_api.today = day + timedelta(days=1)
    sales_api.seed(day - timedelta(days=1), 3, 6)  # the day before, the day, and "today" so far
    sales_api.days[day.isoformat()].append(dict(sales_api.days[day.isoformat()][1]))  # a sale sent twice
    conf = {
        **FAST_API,
        "api_profile": "original",
        "target_date": day.isoformat(),
        "gx": "always",
        "max_reject_ratio": 0.2,
    }
    dr = dagtest.run_dag("sales_manual_load", conf)
    res = dagtest.xcom(dr, "summary")[0]
    assert (res["day"], res["rows"], res["reject_records"]) == (day.isoformat(), 6, 1)
    assert "days" in sales_api.requests[0] and "page" not in sales_api.requests[0]
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT order_id) FROM sales").fetchone() == (6, 6)
        assert con.execute("SELECT count(*) FROM sales WHERE order_id LIKE 'fp-%'").fetchone()[0] == 6
        rej = con.execute("SELECT rule, raw FROM sales_rejects").fetchall()
    assert rej[0][0] == "duplicate_row" and json.loads(rej[0][1]) == {
        k: v for k, v in sales_api.days[day.isoformat()][1].items() if k != "order_id"
    }
    dagtest.run_dag("sales_manual_load", conf)  # a rerun replaces: still 6
    assert sales_by_day(duckdb_path) == {day.isoformat(): (6, 6)}
    assert API_KEY not in json.dumps(webhook.payloads)


def test_manual_load_dag_has_no_schedule_and_no_catchup(sales_conns):
    dagtest._migrated()
    dag = dagtest.get_dag("sales_manual_load", fresh=False)
    assert type(dag.timetable).__name__ == "NullTimetable"
    assert dag.catchup is False
    nightly = dagtest.get_dag("nightly_sales_sync", fresh=False)
    assert set(nightly.params) == set(dag.params)


def test_unknown_regions_configured_in_load_and_not_configured_are_quarantined(sales_conns, duckdb_path, tmp_path):
    day = date(2024, 4, 2)
    csv = tmp_path / f"sales_{day}.csv"
    lines = ["date,user_id,product_name,quantity,unit_price,total_amount,region"]  # the original CSV: no order_id
    regions = ["Asia Pacific", "Latin America", "Middle East", "Europe"]
    lines += [f"{day},{i},Widget {i},1,2.50,2.50,{regions[i % 4]}" for i in range(1, 41)]
    csv.write_text("\n".join(lines) + "\n")
    conf = {**DEFAULTS, "source": "csv", "csv_path": str(csv), "target_date": day.isoformat(), "max_reject_ratio": 1}
    res = dagtest.xcom(dagtest.run_dag("sales_manual_load", conf), "summary")[0]  # shipped rules.yaml has them
    assert (res["rows"], res["reject_records"]) == (40, 0)

    narrow = tmp_path / "rules.yaml"
    shipped = (INCLUDE / "rules.yaml").read_text()
    narrow.write_text(shipped.replace("      - Asia Pacific\n", "").replace("version: 1", "version: 2"))
    res = dagtest.xcom(dagtest.run_dag("sales_manual_load", {**conf, "rules_path": str(narrow)}), "summary")[0]
    assert (res["rows"], res["reject_records"]) == (30, 10)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rej = con.execute("SELECT line, rule, rules_version, reason, raw FROM sales_rejects ORDER BY line").fetchall()
    assert [r[0] for r in rej] == [i + 1 for i in range(1, 41) if i % 4 == 0]
    assert {(r[1], r[2], r[3]) for r in rej} == {("known_region", 2, "unknown region 'Asia Pacific'")}
    assert rej[0][4] == lines[4]  # the line as it was in the file (line 5)


def test_lost_order_first_line_rejected_later_valid_line_loads(sales_conns, duckdb_path, tmp_path):
    day = date(2024, 4, 3)
    csv = tmp_path / "sales.csv"
    rows = [
        "order_id,date,user_id,product_name,quantity,unit_price,total_amount,region",
        f"ORD-1,{day},1,Desk,1,10.00,10.00,Atlantis",  # rejected for its region
        f"ORD-2,{day},2,Lamp,2,5.00,10.00,Europe",
        f"ORD-1,{day},1,Desk,1,10.00,10.00,Europe",  # the corrected line: must load
        f"ORD-2,{day},2,Lamp,2,5.00,10.00,Europe",  # a real duplicate of a valid line
    ]
    csv.write_text("\n".join(rows) + "\n")
    conf = {**DEFAULTS, "source": "csv", "csv_path": str(csv), "target_date": day.isoformat(), "max_reject_ratio": 1}
    dagtest.run_dag("sales_manual_load", conf)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        loaded = con.execute("SELECT order_id, region FROM sales ORDER BY 1").fetchall()
        rej = con.execute("SELECT line, rule, reason, raw FROM sales_rejects ORDER BY line").fetchall()
    assert loaded == [("ORD-1", "Europe"), ("ORD-2", "Europe")]
    assert [(r[0], r[1]) for r in rej] == [(2, "known_region"), (5, "duplicate_key")]
    assert rej[1][2].endswith("line 3)") and rej[1][3] == rows[4] and rej[0][3] == rows[1]
