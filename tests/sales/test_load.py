"""Sales load without Airflow: DuckDB reader rejects, business rules, partition replace, API client."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import requests

from ferry.errors import FerryError
from ferry.sales import load
from ferry.sales.runs import days_for_run
from ferry.sales.store import ensure_schema
from tests.sales.conftest import API_KEY, make_records

MALFORMED = Path(__file__).resolve().parents[2] / "include" / "sales" / "sales_2024-01-15.csv"
DAY = date(2024, 1, 15)

# (line, column, reason fragment) for every bad line of include/sales/sales_2024-01-15.csv
EXPECTED_REJECTS = {
    (6, "date", 'Could not convert string "2024-13-45"'),
    (21, "quantity", 'Could not convert string "two"'),
    (34, "total_amount, region", "MISSING COLUMNS"),
    (48, "order_id", "duplicate order_id ORD-20240115-0007 (first at"),
    (61, "total_amount", "total_amount 999.00 != quantity x unit_price = 498.00"),
    (72, "region", "unknown region 'Atlantis'"),
    (89, "quantity", "quantity must be > 0"),
    (96, "date", "outside the run interval [2024-01-15, 2024-01-16)"),
}


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "s.duckdb"))
    ensure_schema(c)
    yield c
    c.close()


def _load_csv(con, path, day=DAY, run_id="r1", ratio=0.1, gx=False):
    stage = load.Stage(con)
    stage.add_csv(path)
    return load.replace_partition(con, stage, day, run_id=run_id, source="csv", max_reject_ratio=ratio, gx=gx)


def _rejects(con):
    return con.execute('SELECT line, "column", reason, raw, source FROM sales_rejects ORDER BY line').fetchall()


def test_malformed_csv_loads_good_rows_and_quarantines_each_bad_line(con, tmp_path):
    raw = MALFORMED.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw and b'"Cable, USB-C"' in raw  # BOM, CRLF, quoted commas
    res = _load_csv(con, MALFORMED, gx=True)
    assert (res.candidates, res.rows, res.reject_records, res.swapped) == (108, 100, 8, True)
    rows = _rejects(con)
    assert len(rows) == 8
    for (line, column, fragment), row in zip(sorted(EXPECTED_REJECTS), rows, strict=True):
        assert row[0] == line and row[1] == column and fragment in row[2], row
        assert row[4] == str(MALFORMED)
    # raw is the file's line as it was, for reader and rule rejects alike
    lines = MALFORMED.read_bytes().decode("utf-8-sig").split("\r\n")
    assert [r[3] for r in rows] == [lines[n - 1] for n, _, _ in sorted(EXPECTED_REJECTS)]
    assert rows[5][3] == "BAD-0005,2024-01-15,5,Desk,1,249.00,249.00,Atlantis"
    rules = [r[0] for r in con.execute("SELECT rule FROM sales_rejects ORDER BY line").fetchall()]
    assert rules == [
        "cast",
        "cast",
        "missing_columns",
        "duplicate_key",
        "total_matches",
        "known_region",
        "quantity_positive",
        "date_in_interval",
    ]
    assert {r[0] for r in con.execute("SELECT rules_version FROM sales_rejects").fetchall()} == {1}
    assert rows[3][2] == f"duplicate order_id ORD-20240115-0007 (first at {MALFORMED} line 9)"
    got = con.execute("SELECT count(*), count(DISTINCT order_id), min(sale_date), max(sale_date) FROM sales").fetchone()
    assert got == (100, 100, DAY, DAY)
    # quoted comma survived, the first occurrence of the duplicate order id was kept
    assert con.execute("SELECT count(*) FROM sales WHERE product_name = 'Cable, USB-C'").fetchone()[0] == 20
    assert con.execute("SELECT user_id FROM sales WHERE order_id = 'ORD-20240115-0007'").fetchone()[0] == 8


def test_rerun_replaces_partition_and_rejects_exactly(con):
    _load_csv(con, MALFORMED, run_id="r1")
    before = con.execute("SELECT * EXCLUDE (run_id, loaded_at) FROM sales ORDER BY order_id").fetchall()
    res = _load_csv(con, MALFORMED, run_id="r2")
    assert res.replaced_rows == 100
    after = con.execute("SELECT * EXCLUDE (run_id, loaded_at) FROM sales ORDER BY order_id").fetchall()
    assert after == before
    assert con.execute("SELECT count(*), min(run_id) FROM sales_rejects").fetchone() == (8, "r2")


def test_too_many_rejects_fails_and_leaves_the_partition_unchanged(con, tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(
        "order_id,date,user_id,product_name,quantity,unit_price,total_amount,region\n"
        "G1,2024-01-15,1,Desk,1,10.00,10.00,Europe\n"
    )
    _load_csv(con, good, ratio=0.01)
    with pytest.raises(load.RejectThresholdExceeded, match=r"8 of 108 records for 2024-01-15 rejected"):
        _load_csv(con, MALFORMED, ratio=0.01)
    assert con.execute("SELECT order_id FROM sales").fetchall() == [("G1",)]
    assert con.execute("SELECT count(*) FROM sales_rejects").fetchone()[0] == 8  # quarantined for inspection


def test_order_id_loaded_for_another_day_is_rejected(con, tmp_path):
    f1, f2 = tmp_path / "d1.csv", tmp_path / "d2.csv"
    head = "order_id,date,user_id,product_name,quantity,unit_price,total_amount,region\n"
    f1.write_text(head + "X1,2024-01-15,1,Desk,1,10.00,10.00,Europe\n")
    f2.write_text(head + "X1,2024-01-16,1,Desk,1,10.00,10.00,Europe\nX2,2024-01-16,1,Desk,2,10.00,20.00,Asia\n")
    _load_csv(con, f1)
    res = _load_csv(con, f2, day=date(2024, 1, 16), ratio=0.5)
    assert (res.rows, res.reject_records) == (1, 1)
    assert con.execute("SELECT reason FROM sales_rejects").fetchone()[0] == "order_id X1 already loaded for 2024-01-15"


def test_wrong_header_fails_fast_naming_the_file(con, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,day,user_id\nA,2024-01-15,1\n")
    with pytest.raises(load.SalesInputError, match=r"bad\.csv: header \['order_id', 'day', 'user_id'\]"):
        _load_csv(con, bad)


def test_api_records_with_bad_values_are_quarantined_with_page_and_record_number(con):
    recs = make_records(DAY, 5)
    recs[1]["quantity"] = "lots"
    recs[3].pop("region")
    stage = load.Stage(con)
    stage.add_records("api page 2", recs)
    res = load.replace_partition(con, stage, DAY, run_id="r", source="api", max_reject_ratio=0.5, gx=False)
    assert (res.rows, res.reject_records) == (3, 2)
    rows = _rejects(con)
    assert [(r[4], r[0], r[1]) for r in rows] == [("api page 2", 2, "quantity"), ("api page 2", 4, "region")]
    assert "could not convert 'lots' to BIGINT" in rows[0][2] and '"quantity": "lots"' in rows[0][3]
    assert rows[1][2] == "required value missing"


# ---------------------------------------------------------------- API client


def test_fetch_day_pages_retries_5xx_and_never_logs_the_key(sales_api, caplog):
    sales_api.seed(DAY, 1, 7)
    calls = {"n": 0}
    real = sales_api.fail_days

    def flaky_sleep(_s):
        calls["n"] += 1
        real.discard(DAY.isoformat())  # the API recovers after the first backoff

    real.add(DAY.isoformat())
    caplog.set_level(logging.DEBUG)
    with requests.Session() as s:
        pages = list(load.fetch_day(s, sales_api.url, API_KEY, DAY, page_size=3, attempts=3, sleep=flaky_sleep))
    assert [src for src, _ in pages] == ["api page 1", "api page 2", "api page 3"]
    assert sum(len(r) for _, r in pages) == 7 and calls["n"] == 1
    assert "HTTP 500" in caplog.text and API_KEY not in caplog.text


def test_fetch_day_gives_up_after_attempts_on_5xx(sales_api):
    sales_api.fail_days.add(DAY.isoformat())
    delays = []
    with requests.Session() as s, pytest.raises(load.SalesApiUnavailable, match="after 3 attempts: HTTP 500"):
        list(load.fetch_day(s, sales_api.url, API_KEY, DAY, attempts=3, backoff=0.5, sleep=delays.append))
    assert delays == [0.5, 1.0]  # exponential backoff


def test_fetch_day_fails_fast_on_4xx_with_the_body(sales_api):
    sales_api.client_error_days.add(DAY.isoformat())
    delays = []
    with requests.Session() as s, pytest.raises(load.SalesApiError, match="HTTP 422: .*not queryable yet"):
        list(load.fetch_day(s, sales_api.url, API_KEY, DAY, sleep=delays.append))
    assert delays == [] and len(sales_api.requests) == 1


def test_fetch_day_retries_timeouts():
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)  # accepts connections, never answers
    try:
        delays = []
        with requests.Session() as s, pytest.raises(load.SalesApiUnavailable, match="ReadTimeout"):
            list(
                load.fetch_day(
                    s,
                    f"http://127.0.0.1:{srv.getsockname()[1]}",
                    "k",
                    DAY,
                    timeout=0.2,
                    attempts=2,
                    sleep=delays.append,
                )
            )
        assert len(delays) == 1
    finally:
        srv.close()


# ---------------------------------------------------------------- which day a run owns


def test_days_for_run():
    start = datetime(2024, 1, 15, 2, tzinfo=UTC)
    assert days_for_run(target_date="", days=1, data_interval_start=start, run_after=None) == ["2024-01-15"]
    assert days_for_run(target_date="2024-02-03", days=3, data_interval_start=start, run_after=None) == [
        "2024-02-01",
        "2024-02-02",
        "2024-02-03",
    ]
    after = datetime(2024, 3, 1, 9, tzinfo=UTC)
    assert days_for_run(target_date="", days=1, data_interval_start=None, run_after=after) == ["2024-02-29"]
    with pytest.raises(FerryError, match="not YYYY-MM-DD"):
        days_for_run(target_date="15/01/2024", days=1, data_interval_start=None, run_after=after)


def test_a_failing_gx_gate_rolls_the_swap_back(con, tmp_path, monkeypatch):
    from ferry.validation import ValidationFailed

    _load_csv(con, MALFORMED)
    before = con.execute("SELECT count(*), max(run_id) FROM sales").fetchone()

    def fail(df, day, rules):
        assert len(df) == 100  # the accepted rows
        raise ValidationFailed("order_id not unique")

    monkeypatch.setattr(load, "gx_gate", fail)
    with pytest.raises(ValidationFailed):
        _load_csv(con, MALFORMED, run_id="r2", gx=True)
    assert con.execute("SELECT count(*), max(run_id) FROM sales").fetchone() == before
    assert con.execute("SELECT DISTINCT run_id FROM sales_rejects").fetchall() == [("r1",)]


def test_the_sales_asset_is_the_duckdb_sales_table():
    from airflow.sdk import Asset

    from ferry.sales import store as sales

    assert sales.ASSET_URI == "x-duckdb://ferry_duckdb/main/sales"  # the connection that locates the file, the table
    assert Asset(name="ferry_duckdb.sales", uri=sales.ASSET_URI).uri == sales.ASSET_URI  # Airflow keeps it as is


def test_old_sales_rejects_table_gets_rule_columns_idempotently(tmp_path):
    with duckdb.connect(str(tmp_path / "old.duckdb")) as c:
        c.execute(
            """CREATE TABLE sales_rejects (sale_date DATE, run_id VARCHAR, source VARCHAR, line BIGINT,
            "column" VARCHAR, reason VARCHAR, raw VARCHAR, rejected_at TIMESTAMP)"""
        )
        c.execute("INSERT INTO sales_rejects (sale_date, reason) VALUES (DATE '2024-01-01', 'old')")
        ensure_schema(c)
        ensure_schema(c)
        cols = [r[0] for r in c.execute("DESCRIBE sales_rejects").fetchall()]
        assert cols[-2:] == ["rule", "rules_version"]
        assert c.execute("SELECT reason, rule FROM sales_rejects").fetchall() == [("old", None)]
        _load_csv(c, MALFORMED)
        assert c.execute("SELECT count(*) FROM sales_rejects WHERE rule IS NOT NULL").fetchone()[0] == 8


def test_rules_file_errors_name_the_file_and_field(tmp_path):
    from ferry.sales import rules

    bad = tmp_path / "r.yaml"
    bad.write_text("version: 1\nranges:\n  - {name: q, column: quantity, gt: zero}\n")
    with pytest.raises(rules.RulesError, match=r"r\.yaml: ranges\[0\] \(q\): gt must be a number"):
        rules.load(bad)
    bad.write_text("allowed: []\n")
    with pytest.raises(rules.RulesError, match="version: an integer is required"):
        rules.load(bad)
    assert "Asia Pacific" in rules.load().allowed_values("region")


def test_read_lines_returns_lines_as_in_the_file(tmp_path):
    p = tmp_path / "f.csv"
    p.write_bytes(b"\xef\xbb\xbfh,x\r\na,1\r\nb,2\r\nc,3")
    assert load.read_lines(str(p), [1, 3, 4], chunk=4) == {1: "h,x", 3: "b,2", 4: "c,3"}
    assert load.read_lines(str(p), [2]) == {2: "a,1"}
