"""What each task of ``prod_promotion`` and ``prod_promotion_rollback`` does (``dags/promotion.py`` only declares).

Each function is a task's callable: upstream results as arguments, the Airflow context as keyword
arguments. ``FerryError``s (a refused guard, a bad filter) fail the task without
retries (``fails_fast``).
"""

from __future__ import annotations

import logging
from typing import Any

from ferry import audit, conns, lineage, report
from ferry.errors import FerryError, fails_fast
from ferry.mongo import db_name

log = logging.getLogger("ferry.promotion")

COLLECTIONS = ["companies", "documents", "meta_summaries"]
FAMILY = "promotion"
#: Asset alias of prod_promotion's outlet: the production collections a promotion wrote.
TARGET_ALIAS = "ferry_promotion_target"


def _dbs(params: dict) -> tuple[str, str]:
    return db_name(params["source_db"]), db_name(params["target_db"])


def _collections(params: dict) -> list[str]:
    return list(params.get("collections") or COLLECTIONS)


def _queries(params: dict, collections: list[str], cfg) -> dict[str, dict]:
    from ferry.promotion import filters

    return filters.parse(params.get("filter"), collections, known=list(cfg.collections))


def _deployment(conn_id: str) -> frozenset[str]:
    from airflow.sdk import BaseHook

    from ferry.promotion.guards import deployment

    c = BaseHook.get_connection(conn_id)
    return deployment(c.host, c.port)


def _sink(params: dict, run_id: str):
    """Where plans and outcomes go: ``report_url`` (a prefix), else the run's report folder in storage."""
    from ferry import storage
    from ferry.promotion.sink import ReportSink

    base = params.get("report_url") or report.location(FAMILY, run_id)
    if params.get("report_url"):
        base = storage.join(base, storage.safe_name(run_id))
    return ReportSink(base)


# --------------------------------------------------------------------------- prod_promotion


@fails_fast
def check(**ctx) -> dict:
    """Guards that need no connection: params, filter operators, confirmation, same deployment."""
    from ferry.promotion import config
    from ferry.promotion.guards import check_guards

    p = ctx["params"]
    cfg = config.load()
    collections = _collections(p)
    source_db, target_db = _dbs(p)
    queries = _queries(p, collections, cfg)
    cfg.ordered(collections)
    check_guards(
        mode=p["mode"],
        confirm=p.get("confirm") or "",
        source=_deployment(conns.MONGO_LOCAL),
        target=_deployment(conns.MONGO_PROD),
        source_db=source_db,
        target_db=target_db,
    )
    return {
        "collections": collections,
        "filter_applied": any(queries.values()),
        "target_db": target_db,
        "confirmed": p["mode"] == "execute",  # check_guards refused an execute without the confirmation
    }


@fails_fast
def plan(checked: dict, **ctx) -> dict:
    """Summary (all modes) and, for dry_run/execute, the per-document plan report. Reads only."""
    from ferry.promotion import config
    from ferry.promotion.plan import plan_all
    from ferry.promotion.sink import SUMMARY_HEADERS, dry_run, summary

    p = ctx["params"]
    cfg = config.load()
    source_db, target_db = _dbs(p)
    queries = _queries(p, checked["collections"], cfg)
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        if p["mode"] == "summary":
            plans = plan_all(cfg, local[source_db], prod[target_db], checked["collections"], queries, p["on_conflict"])
            out: dict[str, Any] = {"summary": summary(plans), "report": None}
        else:
            out = dry_run(
                cfg,
                local[source_db],
                prod[target_db],
                checked["collections"],
                queries,
                p["on_conflict"],
                _sink(p, ctx["run_id"]),
            )
    title = f"Promotion {p['mode']}: {source_db} → {target_db} (on_conflict={p['on_conflict']})"
    out["table"] = report.log_table(log, title, out["summary"], SUMMARY_HEADERS)
    if out["report"]:
        log.info("Per-document plan: %s", out["report"])
    out["mode"] = p["mode"]
    return out


def gate(planned: dict, **ctx) -> list[str]:
    """Branch: nothing (summary / dry_run), the approval step, or execute."""
    from ferry.promotion.guards import next_tasks

    return next_tasks(ctx["params"]["mode"], ctx["params"]["require_approval"])


def _approval(ctx) -> dict:
    """Who answered the approval step and when (empty when no approval was asked)."""
    # the approve task's own record of the answer (a "Reject" skips downstream before any return value lands)
    answer = ctx["ti"].xcom_pull(task_ids="approve", key="answer") or ctx["ti"].xcom_pull(task_ids="approve") or {}
    if not answer:
        return {}
    user = answer.get("responded_by_user") or {}
    return {
        "approval": (answer.get("chosen_options") or [None])[0],
        "approved_by": user.get("name") or user.get("id"),
        "approved_at": answer.get("responded_at"),
    }


@fails_fast
def execute(**ctx) -> dict:
    """Validate, back up, write, audit; only after ``check`` passed the confirmation (never connects otherwise)."""
    from ferry.promotion import config
    from ferry.promotion import execute as ex

    p = ctx["params"]
    source_db, target_db = _dbs(p)
    if not (ctx["ti"].xcom_pull(task_ids="check") or {}).get("confirmed"):  # the decision check made, once
        raise FerryError(f"execute runs only after check confirmed mode=execute on {target_db!r}; nothing was written")
    cfg = config.load()
    collections = _collections(p)
    queries = _queries(p, collections, cfg)
    promotion_id = ctx["run_id"]
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        res = ex.execute(
            cfg,
            local[source_db],
            prod[target_db],
            collections,
            queries,
            p["on_conflict"],
            promotion_id=promotion_id,
            sink=_sink(p, promotion_id),
            params=dict(p),
            triggered_by=audit.who(ctx),
            attempt=ctx["ti"].try_number,
            approval=_approval(ctx),
        )
        lineage.mongo_written(ctx, TARGET_ALIAS, local, source_db, prod, target_db, collections)
    report.log_table(log, f"Promotion {promotion_id} → {target_db}: outcome", res["outcome"])
    log.info("Report: %s; backups: %s (promotion_id=%s)", res["report"], res["backup"], promotion_id)
    if res["failures"] or res["rejects"]:
        report.log_table(log, "Failed writes (server errors)", res["failures"])
        report.log_table(log, "Rejected documents (not written)", res["rejects"][:200])
        raise FerryError(
            f"promotion {promotion_id}: {len(res['failures'])} document(s) failed to write and "
            f"{len(res['rejects'])} were rejected; everything else landed. Details above and in {res['report']}"
        )
    return res


@fails_fast
def outcome(**ctx) -> dict:
    """The run's verdict after the approval step: a rejection is audited (who, when) and fails the run
    with that message; a failed execute fails the run too (this task is the last one)."""
    from ferry.promotion import config

    p = ctx["params"]
    dr = ctx["dag_run"]
    raw = ctx["ti"].get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
    states = raw.get(dr.run_id, raw)
    approval = _approval(ctx)
    if approval.get("approval") == "Reject":
        _, target_db = _dbs(p)
        rec = audit.Run.of(ctx).record(
            family=FAMILY,
            outcome="rejected",
            params=p,
            status="rejected",
            triggered_by=audit.who(ctx),
            rejected_by=approval["approved_by"],
            rejected_at=approval["approved_at"],
        )
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            audit.to_mongo(prod[target_db][config.load().audit_collection], rec)
        raise FerryError(
            f"promotion {ctx['run_id']} was rejected by {approval['approved_by']} at "
            f"{approval['approved_at']}: nothing was written to {target_db} (audit status 'rejected')"
        )
    if states.get("execute") in ("failed", "upstream_failed"):
        raise FerryError(f"promotion {ctx['run_id']}: execute {states['execute']} (see its log and the audit record)")
    return {"mode": p["mode"], "execute": states.get("execute"), **approval}


# --------------------------------------------------------------------------- prod_promotion_rollback


@fails_fast
def rollback(**ctx) -> list[dict]:
    """Undo one promotion exactly; without ``promotion_id`` list the recent promotions (writes nothing)."""
    from ferry.promotion import config
    from ferry.promotion.guards import require_confirmation
    from ferry.promotion.rollback import recent
    from ferry.promotion.rollback import rollback as undo

    p = ctx["params"]
    target_db = db_name(p["target_db"])
    cfg = config.load()
    if not p.get("promotion_id"):
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            rows = recent(cfg, prod[target_db])
        report.log_table(log, f"Recent promotions into {target_db} (set promotion_id to undo one)", rows)
        return rows
    require_confirmation("the rollback", p.get("confirm") or "", target_db)
    with conns.mongo_client(conns.MONGO_PROD) as prod:
        rows = undo(cfg, prod[target_db], p["promotion_id"], owner=ctx["run_id"])
    report.log_table(log, f"Rollback of {p['promotion_id']}", rows)
    return rows
