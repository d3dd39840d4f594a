"""The `make demo` step that shows an alert e-mail: a real failed DAG run, a real local SMTP server."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_demo_step_mails_one_alert(airflow_conns, stack, pg_database, s3_bucket, tmp_path):
    from ferry_dev.demo import DemoContext
    from ferry_dev.demo import alerts as step

    ctx = DemoContext(stack=stack, workdir=tmp_path, pg_db=pg_database, bucket=s3_bucket, duckdb_path=tmp_path / "d")
    rows = step.run(ctx)
    assert rows[0]["dag"] == "import_users"
    assert "1 alert e-mail: Ferry task failed: import_users." in rows[0]["result"]
    assert "needs the csv_path param" in rows[0]["result"]
