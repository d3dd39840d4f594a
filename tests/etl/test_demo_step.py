"""The `make demo` step for production_etl runs and reports what landed."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_demo_step(airflow_conns, stack, pg_database, mongo_local, s3_bucket, tmp_path, monkeypatch):
    from ferry.etl.names import meta_db
    from ferry_dev.demo import DemoContext
    from ferry_dev.demo import etl as step

    ctx = DemoContext(
        stack=stack, workdir=tmp_path, pg_db=pg_database, bucket=s3_bucket, duckdb_path=tmp_path / "d.duckdb"
    )
    try:
        rows = step.run(ctx)
        assert [r["dag"] for r in rows] == [
            "production_etl_scaffold",
            "production_etl_preview",
            "production_etl",
            "production_etl",
            "production_etl_rollback",
        ]
        assert rows.pop(0)["result"] == (
            "drafted accounts, campaigns: embed_many campaign_tags; embed_many line_items; embed_one accounts; "
            "reference account_id"
        )
        assert rows.pop(0)["result"].startswith("dry run (nothing written): accounts 100 documents, largest ")
        assert "100 account + 300 campaign documents" in rows[0]["result"]
        assert (
            "(1 safe, 0 breaking) -> apply_safe (add field performance_score); incremental wrote 300 campaigns, 0 accounts"
            in rows[1]["result"]
        )
        assert mongo_local[step.DB].campaigns.find_one({"_id": 10})["performance_score"].to_decimal() == 4.5
        assert rows[2]["result"].startswith("2 backup versions listed")
    finally:
        for db in (step.DB, meta_db(step.DB)):
            mongo_local.drop_database(db)
