"""What the ``dataset_promotion`` task does (``dags/catalog.py`` only declares)."""

from __future__ import annotations

import logging

from ferry import audit, conns, lineage, report
from ferry.catalog import connections
from ferry.catalog.request import CatalogRequest
from ferry.errors import fails_fast

log = logging.getLogger("ferry.catalog")

#: Audit records of dataset promotions, in the target catalog database.
RUNS = "_ferry_catalog_runs"
#: Asset alias of dataset_promotion's outlet: the production catalog collections a promotion wrote.
TARGET_ALIAS = "ferry_catalog_target"


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
            family="catalog", outcome="success", params=r.as_params(), counts={"datasets": len(rows)}, datasets=rows
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
        )
        audit.to_mongo(runs, rec)
    report.log_table(log, f"Atmosphere promotion to {pds_url} as {atmo.handle}", rows)
    return rows
