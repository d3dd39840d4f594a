"""import_users, health checks and backups without Airflow (real DuckDB files, moto S3 for backups)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ferry.sales import backup, health, load
from ferry.sales.store import ensure_schema
from ferry.sales.users import UsersInputError, import_users, verify_password
from tests.sales.conftest import make_records

USERS = Path(__file__).resolve().parents[2] / "include" / "sales" / "users.csv"
PASSWORDS = [line.rsplit(",", 1)[1] for line in USERS.read_text().splitlines()[1:]]


def test_import_users_hashes_rejects_and_reports_duplicates(tmp_path):
    db = tmp_path / "u.duckdb"
    with duckdb.connect(str(db)) as con:
        rep = import_users(con, USERS, rounds=4)
        assert rep.inserted == ["alice", "bob", "erin"]
        assert [(r["line"], r["field"]) for r in rep.rejected] == [(4, "email"), (5, "role"), (9, "initial_password")]
        assert "superuser" in rep.rejected[1]["reason"]
        assert [(d["line"], d["username"]) for d in rep.duplicates] == [(7, "alice"), (8, "frank")]
        assert "duplicate of line 2" in rep.duplicates[0]["reason"]
        assert verify_password(con, "alice", "Alice-Initial-Pw1!")
        assert not verify_password(con, "alice", "Alice-Again-Pw6!")
        assert con.execute("SELECT email FROM users WHERE username='erin'").fetchone()[0] == "erin@example.com"
        hashes = [h for (h,) in con.execute("SELECT password_hash FROM users").fetchall()]
        assert all(h.startswith("$2b$04$") for h in hashes) and len(set(hashes)) == 3  # salted
        # second import: existing users reported, not overwritten
        rep2 = import_users(con, USERS, rounds=4)
        assert rep2.inserted == [] and rep2.updated == []
        assert {d["username"] for d in rep2.duplicates} >= {"alice", "bob", "erin"}
        assert "update_existing=false" in rep2.duplicates[0]["reason"]
    text = repr(rep.__dict__) + repr(rep2.__dict__)
    assert not any(pw in text for pw in PASSWORDS)
    assert not any(pw.encode() in db.read_bytes() for pw in PASSWORDS)


def test_import_users_update_existing(tmp_path):
    f = tmp_path / "u.csv"
    f.write_text("username,email,role,initial_password\nzoe,zoe@example.com,user,First-Password-1\n")
    with duckdb.connect() as con:
        import_users(con, f, rounds=4)
        f.write_text("username,email,role,initial_password\nzoe,zoe@example.org,manager,Second-Password-2\n")
        rep = import_users(con, f, update_existing=True, rounds=4)
        assert rep.updated == ["zoe"]
        assert con.execute("SELECT email, role FROM users").fetchall() == [("zoe@example.org", "manager")]
        assert verify_password(con, "zoe", "Second-Password-2")


def test_import_users_bad_header(tmp_path):
    f = tmp_path / "u.csv"
    f.write_text("user,mail\nx,y\n")
    with duckdb.connect() as con, pytest.raises(UsersInputError, match=r"u\.csv: header \['user', 'mail'\]"):
        import_users(con, f)


def _load_api_day(con, day: date, n: int):
    stage = load.Stage(con)
    stage.add_records("api page 1", make_records(day, n))
    load.replace_partition(con, stage, day, run_id="t", source="api", gx=False)


def test_health_check_finds_gaps_and_rule_violations():
    with duckdb.connect() as con:
        ensure_schema(con)
        start = date(2024, 1, 10)
        for k in (0, 1, 3):
            _load_api_day(con, start + timedelta(days=k), 5)
        checks, counts = health.check(con, start + timedelta(days=3), days=4)
        assert [c["rows"] for c in counts] == [5, 5, 0, 5]
        status = {c["check"]: (c["status"], c["detail"]) for c in checks}
        assert status["gaps in last 4 days (to 2024-01-13)"] == ("FAIL", "2024-01-12")
        assert all(s == "ok" for k, (s, _) in status.items() if not k.startswith("gaps"))
        con.execute("UPDATE sales SET region = 'Mars', quantity = 0 WHERE order_id = 'API-20240110-0001'")
        checks, _ = health.check(con, date(2024, 1, 11), days=2)
        failed = {c["check"]: c["detail"] for c in checks if c["status"] == "FAIL"}
        assert failed == {
            "quantity_positive (quantity, rules v1)": "1",
            "known_region (region, rules v1)": "1",
            "total_matches (total_amount, rules v1)": "1",
        }


def test_health_check_reports_values_never_seen_before():
    with duckdb.connect() as con:
        ensure_schema(con)
        start = date(2024, 1, 10)
        for k in range(3):
            _load_api_day(con, start + timedelta(days=k), 5)
        stage = load.Stage(con)
        recs = make_records(start + timedelta(days=3), 5)
        recs[1]["region"] = recs[3]["region"] = "Middle East"  # configured in rules.yaml, never sold there before
        stage.add_records("api page 1", recs)
        load.replace_partition(con, stage, start + timedelta(days=3), run_id="t", source="api", gx=False)
        status = {c["check"]: c for c in health.check(con, start + timedelta(days=3), days=1)[0]}
        assert status["new region values"]["status"] == "NEW"
        assert status["new region values"]["detail"] == "'Middle East' since 2024-01-13"
        assert not [c for c in status.values() if c["status"] == "FAIL"]
        # the day before, nothing was new
        assert health.check(con, start + timedelta(days=2), days=1)[0][-1]["status"] == "ok"


def test_health_check_without_sales_table_fails():
    with duckdb.connect() as con:
        checks, _ = health.check(con, date(2024, 1, 1))
    assert checks[0]["status"] == "FAIL"


@pytest.mark.integration
def test_backup_is_verified_uploaded_and_retention_keeps_the_newest(tmp_path, s3, s3_bucket):
    db = tmp_path / "s.duckdb"
    with duckdb.connect(str(db)) as con:
        ensure_schema(con)
        _load_api_day(con, date(2024, 1, 10), 12)
    root = tmp_path / "backups"
    t0 = datetime(2024, 3, 1, 3, tzinfo=UTC)
    m_old = backup.backup(str(db), root, s3=s3, bucket=s3_bucket, prefix="bk", now=t0 - timedelta(days=40))
    m_new = backup.backup(str(db), root, s3=s3, bucket=s3_bucket, prefix="bk", now=t0)
    assert m_new["tables"]["sales"] == 12 and m_new["name"] == "sales-20240301T030000Z"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="bk/")["Contents"]}
    assert f"bk/{m_new['name']}/manifest.json" in keys and f"bk/{m_new['name']}/schema.sql" in keys
    assert any(k.endswith(".parquet") for k in keys)
    with duckdb.connect() as fresh:  # a backup restores
        fresh.execute(f"IMPORT DATABASE '{root / m_new['name']}'")
        assert fresh.execute("SELECT count(*) FROM sales").fetchone()[0] == 12

    rows = backup.retention(root, retention_days=30, s3=s3, bucket=s3_bucket, prefix="bk", now=t0, dry_run=True)
    assert len(rows) == 2 and (root / m_old["name"]).exists()
    rows = backup.retention(root, retention_days=30, s3=s3, bucket=s3_bucket, prefix="bk", now=t0)
    assert [(r["where"][:5], r["backup"]) for r in rows] == [("local", m_old["name"]), ("s3://", m_old["name"])]
    assert sorted(p.name for p in root.iterdir()) == [m_new["name"]]
    left = {o["Key"].split("/")[1] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="bk/")["Contents"]}
    assert left == {m_new["name"]}
    # the newest backup survives even when it is older than the retention period
    assert (
        backup.retention(root, retention_days=1, s3=s3, bucket=s3_bucket, prefix="bk", now=t0 + timedelta(days=100))
        == []
    )


def test_expired_never_returns_the_newest():
    names = ["sales-20240101T000000Z", "sales-20240102T000000Z", "other"]
    assert backup.expired(names, datetime(2025, 1, 1, tzinfo=UTC)) == ["sales-20240101T000000Z"]
