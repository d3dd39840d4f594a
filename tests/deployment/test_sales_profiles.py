"""The original design's API (plain array, ``days=N``, no order id) through the real deployment: a manual
``sales_manual_load`` run with ``api_profile=original`` loads yesterday, keyed by row fingerprints."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.deployment.conftest import run_dag

pytestmark = [pytest.mark.deployment, pytest.mark.integration]


def test_original_plain_array_profile_manual_load(deployment, api, sales_api_server):
    import duckdb

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    sales_api_server.seed(yesterday, 1, 20)
    n = len(sales_api_server.requests)
    run_id, state = run_dag(api, "sales_manual_load", {"api_profile": "original", "target_date": str(yesterday)})
    assert state == "success", run_id
    assert [r for r in sales_api_server.requests[n:] if "days" in r], "the original dialect was not used"
    for _ in range(60):  # a health check or backup the load triggered may hold the file for a moment
        try:
            with duckdb.connect(str(deployment.root / "sales.duckdb"), read_only=True) as con:
                got = con.execute(
                    "SELECT count(*), count(*) FILTER (WHERE order_id LIKE 'fp-%') FROM sales WHERE sale_date = ?",
                    [yesterday],
                ).fetchone()
            break
        except duckdb.IOException:
            time.sleep(1)
    assert got == (20, 20)
