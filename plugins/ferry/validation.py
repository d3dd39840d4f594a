"""Great Expectations (1.x, ephemeral context) over a pandas DataFrame, reported as a table.

Import this module inside tasks only: it loads great_expectations (≈5 s) lazily on first use.

    result = validate(df, [("ExpectColumnValuesToNotBeNull", {"column": "order_id"}),
                           ("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 1})],
                      name="sales")
    result.success, result.rows (one per expectation), result.failed_indexes (DataFrame index labels)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ferry.errors import FerryError  # noqa: E402

log = logging.getLogger(__name__)

Expectation = tuple[str, dict[str, Any]]


@dataclass
class ValidationResult:
    name: str
    success: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: expectation type + column -> index labels of the rows that failed it
    failed_indexes: dict[str, list[Any]] = field(default_factory=dict)

    def table(self) -> str:
        from ferry.report import table

        return table(self.rows, ["expectation", "column", "success", "unexpected", "sample"])

    def raise_for_failure(self) -> None:
        if not self.success:
            failed = [r for r in self.rows if not r["success"]]
            raise ValidationFailed(f"validation {self.name!r} failed {len(failed)} expectation(s):\n{self.table()}")


class ValidationFailed(FerryError):
    pass


#: Libraries whose INFO lines would bury Ferry's own tables in task logs (GX logs ~200 lines per validation).
QUIET_LOGGERS = (
    "great_expectations",
    "great_expectations.core",
    "great_expectations.expectations",
    "great_expectations.data_context",
    "great_expectations.datasource",
    "py.warnings",
)


def quiet() -> None:
    """Turn other libraries' chatter down to WARNING so Ferry's tables lead the log."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _context():
    quiet()
    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    quiet()  # GX may reconfigure its loggers on import
    config = DataContextConfig(analytics_enabled=False, store_backend_defaults=InMemoryStoreBackendDefaults())
    ctx = gx.get_context(mode="ephemeral", project_config=config)
    try:  # no tqdm bars in task logs
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return gx, ctx


def validate(df, expectations: Iterable[Expectation], name: str = "ferry", sample: int = 5) -> ValidationResult:
    """Run ``expectations`` (GX class name, kwargs) on ``df``; every result, never only the first failure."""
    gx, ctx = _context()
    source = ctx.data_sources.add_pandas(f"ferry_{name}")
    batch_def = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for cls_name, kwargs in expectations:
        suite.add_expectation(getattr(gx.expectations, cls_name)(**kwargs))
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    res = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    out = ValidationResult(name=name, success=bool(res.success))
    for er in res.results:
        cfg = er.expectation_config
        column = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or cfg.kwargs.get("column_A")
        r = er.result or {}
        unexpected = r.get("unexpected_count")
        out.rows.append(
            {
                "expectation": cfg.type,
                "column": column,
                "success": bool(er.success),
                "unexpected": unexpected if unexpected is not None else r.get("observed_value"),
                "sample": (r.get("partial_unexpected_list") or [])[:sample],
            }
        )
        if not er.success and r.get("unexpected_index_list") is not None:
            out.failed_indexes[f"{cfg.type}:{column}"] = list(r["unexpected_index_list"])
    log.info("Great Expectations %r: %s\n%s", name, "passed" if out.success else "FAILED", out.table())
    return out
