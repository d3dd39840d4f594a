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
from ferry.promotion.request import PromotionRequest, RollbackRequest

log = logging.getLogger("ferry.promotion")

FAMILY = "promotion"
#: Asset alias of prod_promotion's outlet: the production collections a promotion wrote.
TARGET_ALIAS = "ferry_promotion_target"
#: Task ids other tasks read results of (``dags/promotion.py`` names its tasks with these).
CHECK, PLAN, APPROVE, EXECUTE = "check", "plan", "approve", "execute"
#: prod_promotion_rollback's task ids.
CHECK_ROLLBACK, APPROVE_ROLLBACK, ROLLBACK = "check_rollback", "approve_rollback", "rollback"


def _deployment(conn_id: str) -> frozenset[str]:
    from airflow.sdk import BaseHook

    from ferry.promotion.guards import deployment

    c = BaseHook.get_connection(conn_id)
    return deployment(c.host, c.port)


# --------------------------------------------------------------------------- prod_promotion


@fails_fast
def check(**ctx) -> dict:
    """Guards that need no connection: params, filter operators, confirmation, same deployment."""
    from ferry.promotion import config
    from ferry.promotion.guards import check_guards

    r = PromotionRequest.from_context(ctx)
    cfg = config.load()
    queries = r.queries(cfg)
    cfg.ordered(r.names)
    check_guards(
        mode=r.mode,
        confirm=r.confirm or "",
        source=_deployment(conns.MONGO_LOCAL),
        target=_deployment(conns.MONGO_PROD),
        source_db=r.source,
        target_db=r.target,
    )
    return {
        "collections": r.names,
        "filter_applied": any(queries.values()),
        "target_db": r.target,
        "confirmed": r.mode == "execute",  # check_guards refused an execute without the confirmation
    }


@fails_fast
def plan(checked: dict, **ctx) -> dict:
    """Summary (all modes) and, for dry_run/execute, the per-document plan report. Reads only."""
    from ferry.promotion import config
    from ferry.promotion.plan import plan_all
    from ferry.promotion.sink import SUMMARY_HEADERS, dry_run, summary

    r = PromotionRequest.from_context(ctx)
    cfg = config.load()
    queries, names = r.queries(cfg), checked["collections"]
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        src, dst = local[r.source], prod[r.target]
        if r.mode == "summary":
            out: dict[str, Any] = {"summary": summary(plan_all(cfg, src, dst, names, queries, r.on_conflict))}
            out["report"] = None
        else:
            out = dry_run(cfg, src, dst, names, queries, r.on_conflict, r.sink(FAMILY, ctx["run_id"]))
    title = f"Promotion {r.mode}: {r.source} → {r.target} (on_conflict={r.on_conflict})"
    out["table"] = report.log_table(log, title, out["summary"], SUMMARY_HEADERS)
    if out["report"]:
        log.info("Per-document plan: %s", out["report"])
    out["mode"] = r.mode
    return out


def gate(planned: dict, **ctx) -> list[str]:
    """Branch: nothing (summary / dry_run), the approval step, or execute."""
    from ferry.promotion.guards import next_tasks

    r = PromotionRequest.from_context(ctx)
    return next_tasks(r.mode, r.require_approval)


def _approval(ctx, task_id: str = APPROVE) -> dict:
    """Who answered the approval step and when (empty when no approval was asked)."""
    # the approve task's own record of the answer (a "Reject" skips downstream before any return value lands)
    from ferry.approvals import ANSWER_KEY

    ti = ctx["ti"]
    answer = ti.xcom_pull(task_ids=task_id, key=ANSWER_KEY) or ti.xcom_pull(task_ids=task_id) or {}
    if not answer:
        return {}
    user = answer.get("responded_by_user") or {}
    out = {
        "approval": (answer.get("chosen_options") or [None])[0],
        "approved_by": user.get("name") or user.get("id"),
        "approved_at": answer.get("responded_at"),
    }
    return {**out, "refused": answer["refused"]} if answer.get("refused") else out


@fails_fast
def execute(**ctx) -> dict:
    """Validate, back up, write, audit; only after ``check`` passed the confirmation (never connects otherwise)."""
    from ferry.promotion import config
    from ferry.promotion import execute as ex

    r = PromotionRequest.from_context(ctx)
    target_db = r.target
    if not (ctx["ti"].xcom_pull(task_ids=CHECK) or {}).get("confirmed"):  # the decision check made, once
        raise FerryError(f"execute runs only after check confirmed mode=execute on {target_db!r}; nothing was written")
    cfg = config.load()
    promotion_id = ctx["run_id"]
    selection = ex.Selection(r.names, r.queries(cfg), r.on_conflict)
    run = ex.Attempt(
        promotion_id,
        r.sink(FAMILY, promotion_id),
        params=r.as_params(),
        triggered_by=audit.who(ctx),
        attempt=ctx["ti"].try_number,
        approval=_approval(ctx),
    )
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        res = ex.execute(cfg, local[r.source], prod[target_db], selection, run)
        lineage.mongo_written(ctx, TARGET_ALIAS, local, r.source, prod, target_db, r.names)
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

    r = PromotionRequest.from_context(ctx)
    dr = ctx["dag_run"]
    raw = ctx["ti"].get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
    states = raw.get(dr.run_id, raw)
    approval = _approval(ctx)
    if approval.get("refused") or approval.get("approval") == "Reject":
        status = "refused" if approval.get("refused") else "rejected"
        rec = audit.Run.of(ctx).record(
            family=FAMILY,
            outcome="rejected",
            params=r.as_params(),
            status=status,
            triggered_by=audit.who(ctx),
            rejected_by=approval["approved_by"],
            rejected_at=approval["approved_at"],
            **({"refused": approval["refused"], "answer": approval["approval"]} if status == "refused" else {}),
        )
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            audit.to_mongo(prod[r.target][config.load().audit_collection], rec)
        why = (
            f"was refused: {approval['refused']} to {r.target}"
            if status == "refused"
            else f"was rejected by {approval['approved_by']} at {approval['approved_at']}: nothing was written "
            f"to {r.target}"
        )
        raise FerryError(f"promotion {ctx['run_id']} {why} (audit status {status!r})")
    if states.get(EXECUTE) in ("failed", "upstream_failed"):
        raise FerryError(f"promotion {ctx['run_id']}: execute {states[EXECUTE]} (see its log and the audit record)")
    return {"mode": r.mode, "execute": states.get(EXECUTE), **approval}


# --------------------------------------------------------------------------- prod_promotion_rollback


@fails_fast
def check_rollback(**ctx) -> dict:
    """Before anyone is asked or anything written: the confirmation, and the promotion to undo (its record as a
    table, which the approval step shows). Without ``promotion_id`` nothing is checked (``rollback`` lists)."""
    from ferry.promotion import config
    from ferry.promotion.guards import require_confirmation

    r = RollbackRequest.from_context(ctx)
    if not r.promotion_id:
        return {"promotion_id": None, "table": ""}
    require_confirmation("the rollback", r.confirm or "", r.target)
    cfg = config.load()
    with conns.mongo_client(conns.MONGO_PROD) as prod:
        rec = prod[r.target][cfg.audit_collection].find_one({"_id": r.promotion_id})
    if rec is None:
        raise FerryError(
            f"no promotion {r.promotion_id!r} in {r.target}.{cfg.audit_collection}: nothing to undo (leave "
            "promotion_id empty to list the recent ones)"
        )
    keep = ("status", "who", "approved_by", "started_at", "finished_at")
    table = report.log_table(
        log, "Promotion to undo", [{"promotion_id": r.promotion_id, **{k: rec.get(k) for k in keep}}]
    )
    counts = rec.get("counts")
    if isinstance(counts, list) and counts:
        table += "\n\n" + report.log_table(log, "What it wrote", counts)
    return {"promotion_id": r.promotion_id, "table": table}


def rollback_gate(checked: dict, **ctx) -> list[str]:
    """Branch: the approval step when asked for (and there is a promotion to undo), else the rollback."""
    r = RollbackRequest.from_context(ctx)
    return [APPROVE_ROLLBACK] if r.require_approval and checked.get("promotion_id") else [ROLLBACK]


@fails_fast
def rollback_outcome(**ctx) -> dict:
    """The run's verdict (its last task): a rejected or refused rollback is kept in the promotion's record (who,
    when, why) and fails the run, nothing undone; a failed rollback fails it too."""
    from ferry.promotion import config
    from ferry.promotion.rollback import record_refusal

    r = RollbackRequest.from_context(ctx)
    approval = _approval(ctx, APPROVE_ROLLBACK)
    if not (approval.get("refused") or approval.get("approval") == "Reject"):
        dr = ctx["dag_run"]
        raw = ctx["ti"].get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
        state = raw.get(dr.run_id, raw).get(ROLLBACK)
        if state in ("failed", "upstream_failed"):
            raise FerryError(f"rollback {state} (see its log; a rerun resumes it)")
        return {"rollback": state, **approval}
    status = "refused" if approval.get("refused") else "rejected"
    request = {"run_id": ctx["run_id"], "outcome": status, "triggered_by": audit.who(ctx),
               "answered_by": approval["approved_by"], "at": approval["approved_at"],
               "reason": approval.get("refused")}  # fmt: skip
    with conns.mongo_client(conns.MONGO_PROD) as prod:
        record_refusal(config.load(), prod[r.target], r.promotion_id or "", request)
    why = approval.get("refused") or f"rejected by {approval['approved_by']} at {approval['approved_at']}"
    raise FerryError(f"the rollback of {r.promotion_id} was {status}: {why}; nothing was undone in {r.target}")


@fails_fast
def rollback(**ctx) -> list[dict]:
    """Undo one promotion exactly; without ``promotion_id`` list the recent promotions (writes nothing)."""
    from ferry.promotion import config
    from ferry.promotion.guards import require_confirmation
    from ferry.promotion.rollback import recent
    from ferry.promotion.rollback import rollback as undo

    r = RollbackRequest.from_context(ctx)
    target_db = r.target
    cfg = config.load()
    if not r.promotion_id:
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            rows = recent(cfg, prod[target_db])
        report.log_table(log, f"Recent promotions into {target_db} (set promotion_id to undo one)", rows)
        return rows
    require_confirmation("the rollback", r.confirm or "", target_db)
    approval = _approval(ctx, APPROVE_ROLLBACK)
    requested = {"run_id": ctx["run_id"], "triggered_by": audit.who(ctx), **approval}
    with conns.mongo_client(conns.MONGO_PROD) as prod:
        rows = undo(cfg, prod[target_db], r.promotion_id, owner=ctx["run_id"], requested=requested)
    report.log_table(log, f"Rollback of {r.promotion_id}", rows)
    return rows
