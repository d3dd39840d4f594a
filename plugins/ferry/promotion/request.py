"""The run requests of ``prod_promotion`` and ``prod_promotion_rollback``: each param declared once, with its
form schema and checks, and what the tasks derive from it (the databases under ``USE_DEV_MONGO_DB``, the
queries of the filter, where reports go). ``dags/promotion.py`` gives ``PromotionRequest.params()`` to the DAG;
each task reads ``PromotionRequest.from_context(ctx)``. Imported by the DAG file at parse time: keep it light.
"""

from __future__ import annotations

from typing import Any, Literal

from ferry.request import Location, MongoDatabase, Request, Text, param

#: The collections ``prod_promotion`` offers (``include/promotion.yaml`` says how each is matched).
COLLECTIONS = ["companies", "documents", "meta_summaries"]
Collection = Literal["companies", "documents", "meta_summaries"]
Mode = Literal["summary", "dry_run", "execute"]
OnConflict = Literal["skip", "update_if_newer", "overwrite"]


class PromotionRequest(Request):
    """A ``prod_promotion`` run's params."""

    collections: list[Collection] = param(
        list(COLLECTIONS), "Collections to promote (written parents first).", min_items=1
    )
    mode: Mode = param("dry_run", "What to do.")
    confirm: Text | None = param(None, "For mode=execute: type the target database name. Empty: nothing is written.")
    filter: dict[str, Any] | None = param(
        None,
        'Which local documents, e.g. {"domain": "a.com"}, or one per collection: {"companies": {...}}. Empty: all. '
        "$where / $function / $accumulator are refused.",
    )
    on_conflict: OnConflict = param("skip", "When production already has the natural key.")
    require_approval: bool = param(False, "Ask a human to approve before writing.")
    source_db: MongoDatabase = param("clausea", "Database on ferry_mongo_local.")
    target_db: MongoDatabase = param("clausea", "Database on ferry_mongo_prod.")
    report_url: Location | None = param(
        None,
        "Where plans and outcomes go (s3://bucket/prefix or a folder). Empty: "
        "$FERRY_STORAGE_URL/reports/promotion/<run id>.",
    )

    @property
    def source(self) -> str:
        """The local database read (``_dev`` under USE_DEV_MONGO_DB)."""
        from ferry.mongo import db_name

        return db_name(self.source_db)

    @property
    def target(self) -> str:
        """The production database written (``_dev`` under USE_DEV_MONGO_DB)."""
        from ferry.mongo import db_name

        return db_name(self.target_db)

    @property
    def names(self) -> list[str]:
        return list(self.collections)

    def queries(self, cfg) -> dict[str, dict]:
        """``{collection: query}`` of the filter (``$where`` and friends refused, also nested)."""
        from ferry.promotion import filters

        return filters.parse(self.filter, self.names, known=list(cfg.collections))

    def sink(self, family: str, run_id: str):
        """Where plans and outcomes go: ``report_url`` (a prefix, then the run), else the run's report folder."""
        from ferry import report, storage
        from ferry.promotion.sink import ReportSink

        if self.report_url:
            return ReportSink(storage.join(self.report_url, storage.safe_name(run_id)))
        return ReportSink(report.location(family, run_id))


class RollbackRequest(Request):
    """A ``prod_promotion_rollback`` run's params."""

    promotion_id: Text | None = param(None, "The prod_promotion run id to undo. Empty: list recent promotions.")
    target_db: MongoDatabase = param("clausea", "Database on ferry_mongo_prod.")
    confirm: Text | None = param(None, "Type the target database name to confirm the rollback.")
    require_approval: bool = param(
        False, "Ask an approver (FERRY_APPROVERS, never the user who triggers) before undoing."
    )

    @property
    def target(self) -> str:
        from ferry.mongo import db_name

        return db_name(self.target_db)
