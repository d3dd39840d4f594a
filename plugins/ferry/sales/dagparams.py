"""Params of the sales load DAGs (``nightly_sales_sync`` and ``sales_manual_load`` share them). Imported by
DAG files at parse time: keep it light (no DuckDB, no requests)."""

from __future__ import annotations

from typing import Any


def load_params(*, manual: bool = False) -> dict[str, Any]:
    from airflow.sdk import Param

    from ferry.params import optional, optional_date

    when = (
        "The (last) day to load. Empty: yesterday (UTC)."
        if manual
        else "Manual runs: the (last) day. Empty: the data interval's, else yesterday."
    )
    return {
        "source": Param("api", type="string", enum=["api", "csv"], description="Where the day's sales come from."),
        "csv_path": optional("string", "CSV file or glob for source=csv; `{date}` becomes the day (YYYY-MM-DD)."),
        "target_date": optional_date(when),
        "days": Param(1, type="integer", minimum=1, maximum=366, description="Days up to target_date."),
        "api_profile": optional(
            "string",
            "API profile in include/sales/api_profiles.yaml (original, ferry_v2, ...). "
            "Empty: the `profile` extra of ferry_sales_api, else ferry_v2.",
        ),
        "rules_path": optional("string", "Business rules YAML. Empty: include/sales/rules.yaml."),
        "gx": Param(
            "weekly",
            type="string",
            enum=["weekly", "always", "never"],
            description="Great Expectations sample check: every 7th data day, every day, or never "
            "(the SQL rules check every row every day).",
        ),
        "max_reject_ratio": Param(0.01, type="number", minimum=0, maximum=1, description="Fail a day above this."),
        "page_size": Param(500, type="integer", minimum=1, description="API page size."),
        "api_attempts": Param(5, type="integer", minimum=1, maximum=10, description="Tries per page on 5xx/timeout."),
        "api_backoff_seconds": Param(2.0, type="number", minimum=0, description="First backoff; doubles per try."),
    }
