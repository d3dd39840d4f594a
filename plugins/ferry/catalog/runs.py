"""What the ``dataset_promotion`` task does (``dags/catalog.py`` only declares)."""

from __future__ import annotations

import logging

from ferry import audit, conns, lineage, report
from ferry.catalog import connections
from ferry.catalog.request import CatalogRequest
from ferry.errors import FerryError, fails_fast

log = logging.getLogger("ferry.catalog")

#: Audit records of dataset promotions, in the target catalog database.
RUNS = "_ferry_catalog_runs"
#: Asset alias of dataset_promotion's outlet: the production catalog collections a promotion wrote.
TARGET_ALIAS = "ferry_catalog_target"
#: Task ids (``dags/catalog.py`` names its tasks with these).
PLAN, APPROVE, PROMOTE = "plan", "approve", "promote"


@fails_fast
def plan(**ctx) -> dict:
    """Only when an approval is asked for (``require_approval`` and not ``dry_run``): the dry run's rows, as the
    table the approval step shows. Otherwise nothing (``promote`` does the run as asked)."""
    r = CatalogRequest.from_context(ctx)
    if not (r.require_approval and not r.dry_run):
        return {"table": ""}
    dry = r.model_copy(update={"dry_run": True})
    rows = promote_atmosphere(dry, ctx) if r.target == "atmosphere" else promote_catalog(dry, ctx)
    return {"table": report.table(rows), "rows": len(rows)}


def gate(planned: dict, **ctx) -> list[str]:
    """Branch: the approval step when one is asked for, else the promotion as asked."""
    r = CatalogRequest.from_context(ctx)
    return [APPROVE] if r.require_approval and not r.dry_run else [PROMOTE]


@fails_fast
def outcome(**ctx) -> dict:
    """The run's verdict (its last task): a rejected or refused promotion is audited (who asked, who answered,
    why) and fails the run, nothing written; a failed promotion fails it too."""
    from ferry.approvals import ANSWER_KEY

    r = CatalogRequest.from_context(ctx)
    ti, dr = ctx["ti"], ctx["dag_run"]
    answer = ti.xcom_pull(task_ids=APPROVE, key=ANSWER_KEY) or {}
    responder = (answer.get("responded_by_user") or {}).get("name")
    rejected = answer.get("refused") or (answer.get("chosen_options") or [None])[0] == "Reject"
    if rejected:
        status = "refused" if answer.get("refused") else "rejected"
        rec = audit.Run.of(ctx).record(
            family="catalog", outcome="rejected", params=r.as_params(), status=status, triggered_by=audit.who(ctx),
            rejected_by=responder, rejected_at=answer.get("responded_at"), refused=answer.get("refused"),
        )  # fmt: skip
        with conns.mongo_client(conns.MONGO_PROD) as prod:
            audit.to_mongo(prod[r.target_database][RUNS], rec)
        why = answer.get("refused") or f"rejected by {responder} at {answer.get('responded_at')}"
        raise FerryError(f"dataset promotion {ctx['run_id']} was {status}: {why}; nothing was written")
    raw = ti.get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
    state = raw.get(dr.run_id, raw).get(PROMOTE)
    if state in ("failed", "upstream_failed"):
        raise FerryError(f"promote {state} (see its log and the audit record)")
    return {"promote": state, "approved_by": responder}


@fails_fast
def promote(**ctx) -> list[dict]:
    """Promote to ``target``: the production MongoDB catalog, or the ATProto atmosphere."""
    r = CatalogRequest.from_context(ctx)
    if r.target == "atmosphere":
        return promote_atmosphere(r, ctx)
    return promote_catalog(r, ctx)


def promote_catalog(r: CatalogRequest, ctx) -> list[dict]:
    """Catalog entries (and their schemas) from the local catalog to production's, optionally copying data."""
    from ferry.catalog import promote as catalog

    source_db, target_db, dry_run = r.source, r.target_database, r.dry_run
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        rows = catalog.promote(
            local[source_db],
            prod[target_db],
            names=r.names,
            overrides=r.overrides,
            s3=conns.s3_client() if r.bucket and not dry_run else None,
            target_bucket=r.bucket,
            dry_run=dry_run,
        )
        if dry_run:
            report.log_table(log, f"Dataset promotion {source_db} → {target_db} (dry run: nothing written)", rows)
            return rows
        rec = audit.Run.of(ctx).record(
            family="catalog",
            outcome="success",
            params=r.as_params(),
            counts={"datasets": len(rows)},
            datasets=rows,
            **_approved(ctx),
        )
        audit.to_mongo(prod[target_db][RUNS], rec)
        written = catalog.written_collections(rows)
        lineage.mongo_written(ctx, TARGET_ALIAS, local, source_db, prod, target_db, written)
    report.log_table(log, f"Dataset promotion {source_db} → {target_db}", rows)
    return rows


def promote_atmosphere(r: CatalogRequest, ctx) -> list[dict]:
    """Entries of the atdata index (``ferry_atdata_index``) to the PDS of ``ferry_atproto``. The audit record
    (AT URIs, CIDs, schemas reused or published, who, when) goes to ``_ferry_catalog_runs`` of ``target_db``
    on ``ferry_mongo_prod``, also when publishing fails part-way."""
    from ferry.catalog import atmosphere

    target_db, bucket = r.target_database, r.bucket
    index = connections.atdata_index()
    atmo, pds_url = connections.atproto()
    kw = {"names": r.names, "overrides": r.overrides, "target_bucket": bucket}
    if r.dry_run:
        rows = atmosphere.promote(index, atmo, **kw, dry_run=True)["rows"]
        report.log_table(log, f"Atmosphere promotion to {pds_url} as {atmo.handle} (dry run: nothing written)", rows)
        return rows
    run = audit.Run.of(ctx)
    details = {"target": "atmosphere", "pds": pds_url, "did": atmo.did, "handle": atmo.handle}
    with conns.mongo_client(conns.MONGO_PROD) as prod:
        runs = prod[target_db][RUNS]
        try:
            out = atmosphere.promote(
                index, atmo, **kw, s3=conns.s3_client() if bucket else None, dry_run=False, pds_url=pds_url
            )
        except atmosphere.PublishFailed as exc:
            audit.to_mongo(
                runs,
                run.record(
                    family="catalog",
                    outcome="failed",
                    params=r.as_params(),
                    error=str(exc),
                    counts={"published": len(exc.published)},
                    published=exc.published,
                    **details,
                ),
            )
            raise
        rows = out["rows"]
        counts = {"datasets": len(rows), "published": len(out["published"])}
        rec = run.record(
            family="catalog",
            outcome="success",
            params=r.as_params(),
            counts=counts,
            datasets=rows,
            published=out["published"],
            **details,
            **_approved(ctx),
        )
        audit.to_mongo(runs, rec)
    report.log_table(log, f"Atmosphere promotion to {pds_url} as {atmo.handle}", rows)
    return rows


def _approved(ctx) -> dict:
    """Who approved this promotion and when (empty when no approval was asked)."""
    from ferry.approvals import ANSWER_KEY

    ti = ctx.get("ti")
    answer = (ti.xcom_pull(task_ids=APPROVE, key=ANSWER_KEY) if ti is not None else None) or {}
    if not answer.get("chosen_options"):
        return {}
    return {"approved_by": (answer.get("responded_by_user") or {}).get("name"), "approved_at": answer["responded_at"]}
