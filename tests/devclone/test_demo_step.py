"""The make-demo step for the dev clone runs and reports a clone without documents and no drift."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_demo_step(airflow_conns, stack, mongo_prod, tmp_path):
    from ferry_dev.demo import DemoContext
    from ferry_dev.demo import devclone as dev_clone

    for db in (dev_clone.SOURCE, dev_clone.SOURCE + "_dev"):
        mongo_prod.drop_database(db)
    try:
        ctx = DemoContext(stack, tmp_path, "unused", "unused", tmp_path / "x.duckdb")
        rows = dev_clone.run(ctx)
        rows_again = dev_clone.run(ctx)  # rerun: idempotent, nothing left to create
    finally:
        for db in (dev_clone.SOURCE, dev_clone.SOURCE + "_dev"):
            mongo_prod.drop_database(db)
    assert [r["dag"] for r in rows] == ["dev_db_structure_clone", "dev_db_drift_check"]
    assert (
        "created 21" in rows[0]["result"]
        and "write commands 12" in rows[0]["result"]
        and "failures 0" in rows[0]["result"]
    )
    assert "documents in clone 0" in rows[0]["result"]
    assert rows[1]["result"].endswith(": 0 difference(s)")
    assert "created 0" in rows_again[0]["result"] and "write commands 0" in rows_again[0]["result"]
