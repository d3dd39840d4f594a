"""
### Promotion: local MongoDB → production, and the dataset catalog

**`prod_promotion`** copies curated `companies`, `documents` and `meta_summaries` from
`ferry_mongo_local` to `ferry_mongo_prod`, matching documents by natural key
(`include/promotion.yaml`: companies by `domain`, documents by `url`, meta summaries by
`company_id`+`kind`) and remapping references to production `_id`s.

- `mode=summary`: counts on both sides and what would be inserted / skipped / updated / rejected.
- `mode=dry_run` (default): the per-document plan as JSON lines (S3 `report_bucket`, or the run's
  artifacts folder). Writes nothing to production.
- `mode=execute`: needs `confirm` = the target database name. Validates (Great Expectations), backs up
  what it will change into `_ferry_promotion_backups`, bulk-writes, records an audit entry in
  `_ferry_promotions` (its `_id` is the promotion id = this run's id), and fails at the end listing
  every rejected or failed document. `require_approval=true` adds a human approval step showing
  the summary table.

**`prod_promotion_rollback`** undoes one promotion exactly (`promotion_id`, `confirm`).

**`dataset_promotion`** promotes dataset catalog entries (`datasets`, `schemas` on local MongoDB)
to the production catalog, reusing identical schemas and optionally copying data objects to S3.

See `docs/promotion.md`.
"""

from __future__ import annotations

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, get_current_context, task

from ferry.dagdefaults import default_args

COLLECTIONS = ["companies", "documents", "meta_summaries"]


def _params() -> dict:
    return get_current_context()["params"]


def _fail(msg: str):
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(msg)


def _dbs(params: dict) -> tuple[str, str]:
    from ferry.mongo import db_name

    return db_name(params["source_db"]), db_name(params["target_db"])


def _deployment(conn_id: str):
    from airflow.sdk import BaseHook

    from ferry.promotion.execute import deployment

    c = BaseHook.get_connection(conn_id)
    return deployment(c.host, c.port)


def _triggered_by(ctx) -> str:
    dr = ctx.get("dag_run")
    return getattr(dr, "triggering_user_name", None) or getattr(dr, "run_type", None) or "unknown"


@dag(
    dag_id="prod_promotion",
    schedule=None,
    catchup=False,
    tags=["ferry", "promotion", "mongodb"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "collections": Param(
            COLLECTIONS,
            type="array",
            items={"type": "string", "enum": COLLECTIONS},
            description="Collections to promote (written parents first).",
        ),
        "mode": Param("dry_run", type="string", enum=["summary", "dry_run", "execute"], description="What to do."),
        "confirm": Param(
            "", type="string", description="For mode=execute: type the target database name to confirm."
        ),
        "filter": Param(
            "",
            type="string",
            description='Optional JSON query, e.g. {"domain": "a.com"} or {"companies": {...}, "documents": {...}}. '
            "$where / $function / $accumulator are refused.",
        ),
        "on_conflict": Param(
            "skip",
            type="string",
            enum=["skip", "update_if_newer", "overwrite"],
            description="When production already has the natural key.",
        ),
        "require_approval": Param(False, type="boolean", description="Ask a human to approve before writing."),
        "source_db": Param("clausea", type="string", description="Database on ferry_mongo_local."),
        "target_db": Param("clausea", type="string", description="Database on ferry_mongo_prod."),
        "report_bucket": Param("", type="string", description="S3 bucket (ferry_s3) for reports; empty: artifacts folder."),
    },
)
def prod_promotion():
    @task
    def check() -> dict:
        """Guards that need no connection: params, filter operators, confirmation, same deployment."""
        from ferry import conns
        from ferry.promotion import config, filters
        from ferry.promotion.execute import PromotionRefused, check_guards

        p = _params()
        cfg = config.load()
        collections = list(p["collections"]) or COLLECTIONS
        source_db, target_db = _dbs(p)
        try:
            queries = filters.parse(p.get("filter"), collections, known=list(cfg.collections))
            cfg.ordered(collections)
            check_guards(
                mode=p["mode"],
                confirm=p.get("confirm") or "",
                source=_deployment(conns.MONGO_LOCAL),
                target=_deployment(conns.MONGO_PROD),
                source_db=source_db,
                target_db=target_db,
            )
        except (filters.FilterError, PromotionRefused, config.ConfigError) as exc:
            _fail(str(exc))
        return {"collections": collections, "filter_applied": any(queries.values()), "target_db": target_db}

    @task
    def plan(checked: dict) -> dict:
        """Summary (all modes) and, for dry_run/execute, the per-document plan report. Reads only."""
        import logging

        from ferry import conns, report
        from ferry.promotion import config, filters
        from ferry.promotion.execute import SUMMARY_HEADERS, ReportSink, dry_run, summary
        from ferry.promotion.plan import plan_all

        ctx = get_current_context()
        p = ctx["params"]
        cfg = config.load()
        source_db, target_db = _dbs(p)
        queries = filters.parse(p.get("filter"), checked["collections"], known=list(cfg.collections))
        with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
            if p["mode"] == "summary":
                plans = plan_all(cfg, local[source_db], prod[target_db], checked["collections"], queries, p["on_conflict"])
                out = {"summary": summary(plans), "report": None}
            else:
                sink = ReportSink(
                    report.artifacts_dir("promotion", ctx["run_id"]),
                    conns.s3_client() if p["report_bucket"] else None,
                    p["report_bucket"],
                    f"promotion/{ctx['run_id']}",
                )
                out = dry_run(cfg, local[source_db], prod[target_db], checked["collections"], queries, p["on_conflict"], sink)
        title = f"Promotion {p['mode']}: {source_db} → {target_db} (on_conflict={p['on_conflict']})"
        out["table"] = report.log_table(logging.getLogger(__name__), title, out["summary"], SUMMARY_HEADERS)
        if out["report"]:
            logging.getLogger(__name__).info("Per-document plan: %s", out["report"])
        out["mode"] = p["mode"]
        return out

    @task.branch
    def gate(planned: dict) -> list[str]:
        from ferry.promotion.execute import next_tasks

        p = _params()
        return next_tasks(p["mode"], p["require_approval"])

    approve = ApprovalOperator(
        task_id="approve",
        subject="Promote to production database {{ params.target_db }}?",
        body="{{ ti.xcom_pull(task_ids='plan')['table'] }}\n\nPlan report: {{ ti.xcom_pull(task_ids='plan')['report'] }}",
    )

    @task(trigger_rule="none_failed_min_one_success")
    def execute() -> dict:
        """Confirm again (before connecting), then validate, back up, write, audit."""
        import logging

        from ferry import conns, report
        from ferry.promotion import config, filters
        from ferry.promotion import execute as ex

        ctx = get_current_context()
        p = ctx["params"]
        log = logging.getLogger(__name__)
        source_db, target_db = _dbs(p)
        if (p.get("confirm") or "") != target_db:  # never connect for writes without it
            _fail(f"mode=execute needs confirm={target_db!r} (got {p.get('confirm')!r}); nothing was written")
        cfg = config.load()
        collections = list(p["collections"]) or COLLECTIONS
        queries = filters.parse(p.get("filter"), collections, known=list(cfg.collections))
        promotion_id = ctx["run_id"]
        sink = ex.ReportSink(
            report.artifacts_dir("promotion", promotion_id),
            conns.s3_client() if p["report_bucket"] else None,
            p["report_bucket"],
            f"promotion/{promotion_id}",
        )
        with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
            res = ex.execute(
                cfg, local[source_db], prod[target_db], collections, queries, p["on_conflict"],
                promotion_id=promotion_id, sink=sink, params=dict(p), triggered_by=_triggered_by(ctx),
                attempt=ctx["ti"].try_number,
            )
        report.log_table(log, f"Promotion {promotion_id} → {target_db}: outcome", res["outcome"])
        log.info("Report: %s; backups: %s (promotion_id=%s)", res["report"], res["backup"], promotion_id)
        if res["failures"] or res["rejects"]:
            report.log_table(log, "Failed writes (server errors)", res["failures"])
            report.log_table(log, "Rejected documents (not written)", res["rejects"][:200])
            _fail(
                f"promotion {promotion_id}: {len(res['failures'])} document(s) failed to write and "
                f"{len(res['rejects'])} were rejected; everything else landed. Details above and in {res['report']}"
            )
        return res

    checked = check()
    planned = plan(checked)
    g = gate(planned)
    run = execute()
    g >> approve >> run
    g >> run


prod_promotion()


@dag(
    dag_id="prod_promotion_rollback",
    schedule=None,
    catchup=False,
    tags=["ferry", "promotion", "mongodb"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "promotion_id": Param("", type="string", description="The prod_promotion run id to undo."),
        "target_db": Param("clausea", type="string", description="Database on ferry_mongo_prod."),
        "confirm": Param("", type="string", description="Type the target database name to confirm."),
    },
)
def prod_promotion_rollback():
    @task
    def rollback() -> list[dict]:
        import logging

        from ferry import conns, report
        from ferry.promotion import config
        from ferry.promotion import execute as ex

        p = _params()
        _, target_db = _dbs({"source_db": "", "target_db": p["target_db"]})
        if not p["promotion_id"]:
            _fail("promotion_id is required (the run id of the prod_promotion run to undo)")
        if (p.get("confirm") or "") != target_db:
            _fail(f"rollback writes to production database {target_db!r}: set confirm to exactly {target_db!r}")
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            try:
                rows = ex.rollback(config.load(), prod[target_db], p["promotion_id"])
            except LookupError as exc:
                _fail(str(exc))
        report.log_table(logging.getLogger(__name__), f"Rollback of {p['promotion_id']}", rows)
        return rows

    rollback()


prod_promotion_rollback()


@dag(
    dag_id="dataset_promotion",
    schedule=None,
    catchup=False,
    tags=["ferry", "promotion", "catalog"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "datasets": Param([], type="array", items={"type": "string"}, description="Dataset names (empty: all)."),
        "source_db": Param("ferry_catalog", type="string", description="Catalog database on ferry_mongo_local."),
        "target_db": Param("ferry_catalog", type="string", description="Catalog database on ferry_mongo_prod."),
        "copy_data": Param(False, type="boolean", description="Copy data objects to target_bucket (else keep URLs)."),
        "target_bucket": Param("", type="string", description="S3 bucket (ferry_s3) for copied data."),
        "name": Param("", type="string", description="Override the name (one dataset only)."),
        "description": Param("", type="string", description="Override the description."),
        "tags": Param([], type="array", items={"type": "string"}, description="Override the tags."),
        "license": Param("", type="string", description="Override the license."),
    },
)
def dataset_promotion():
    @task
    def promote() -> list[dict]:
        import logging

        from ferry import conns, report
        from ferry.promotion import catalog

        p = _params()
        source_db, target_db = _dbs(p)
        overrides = {k: p[k] for k in ("name", "description", "tags", "license") if p.get(k)}
        if p["copy_data"] and not p["target_bucket"]:
            _fail("copy_data=true needs target_bucket")
        with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
            try:
                rows = catalog.promote(
                    local[source_db], prod[target_db], names=list(p["datasets"]), overrides=overrides,
                    s3=conns.s3_client() if p["copy_data"] else None,
                    target_bucket=p["target_bucket"] if p["copy_data"] else None,
                )
            except catalog.CatalogError as exc:
                _fail(str(exc))
        report.log_table(logging.getLogger(__name__), f"Dataset promotion {source_db} → {target_db}", rows)
        return rows

    promote()


dataset_promotion()
