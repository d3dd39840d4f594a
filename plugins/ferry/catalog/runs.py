"""What the ``dataset_promotion`` task does (``dags/catalog.py`` only declares)."""

from __future__ import annotations

import logging

from ferry import audit, conns, lineage, report
from ferry.errors import FerryError, fails_fast
from ferry.mongo import db_name

log = logging.getLogger("ferry.catalog")

#: Audit records of dataset promotions, in the target catalog database.
RUNS = "_ferry_catalog_runs"
#: Asset alias of dataset_promotion's outlet: the production catalog collections a promotion wrote.
TARGET_ALIAS = "ferry_catalog_target"


def _dbs(params: dict) -> tuple[str, str]:
    return db_name(params["source_db"]), db_name(params["target_db"])


@fails_fast
def promote(**ctx) -> list[dict]:
    """Catalog entries (and their schemas) from the local catalog to production's, optionally copying data."""
    from ferry.catalog import promote as catalog

    p = ctx["params"]
    source_db, target_db = _dbs(p)
    overrides = {k: p[k] for k in ("name", "description", "tags", "license") if p.get(k)}
    if p["copy_data"] and not p.get("target_bucket"):
        raise FerryError("copy_data=true needs target_bucket")
    with conns.mongo_client(conns.MONGO_LOCAL) as local, conns.mongo_client(conns.MONGO_PROD) as prod:
        rows = catalog.promote(
            local[source_db],
            prod[target_db],
            names=list(p.get("datasets") or []),
            overrides=overrides,
            s3=conns.s3_client() if p["copy_data"] else None,
            target_bucket=p.get("target_bucket") if p["copy_data"] else None,
        )
        rec = audit.Run.of(ctx).record(
            family="catalog", outcome="success", params=p, counts={"datasets": len(rows)}, datasets=rows
        )
        audit.to_mongo(prod[target_db][RUNS], rec)
        written = catalog.written_collections(rows)
        lineage.mongo_written(ctx, TARGET_ALIAS, local, source_db, prod, target_db, written)
    report.log_table(log, f"Dataset promotion {source_db} → {target_db}", rows)
    return rows
