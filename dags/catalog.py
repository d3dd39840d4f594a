"""
### Dataset catalog promotion

**`dataset_promotion`** promotes dataset catalog entries (`datasets` + `schemas` on `ferry_mongo_local`) to the
production catalog (`ferry_mongo_prod`), or with `target=atmosphere` the entries of an atdata index
(`ferry_atdata_index`) to an ATProto PDS (`ferry_atproto`) as `science.alt.dataset` records.

Schemas are identified by `module.Class` + version: one already in
production with the same definition is reused, the same identity with another definition is an error naming
both. Data URLs are kept, or with `copy_data` the S3 objects are copied to `target_bucket` (each verified) and
the URLs rewritten. Everything is checked before anything is written; a rerun changes nothing (on the
PDS: it reports the existing AT URIs). `dry_run` (on by default) lists new and reused schemas and records
and writes nothing. See
`docs/promotion.md`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, dag, task

from ferry.catalog.request import CatalogRequest
from ferry.dagdefaults import default_args

LONG = {"execution_timeout": timedelta(hours=4)}


@dag(
    dag_id="dataset_promotion",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "promotion", "catalog"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params=CatalogRequest.params(),
)
def dataset_promotion():
    from ferry.catalog import runs

    task(runs.promote, outlets=[AssetAlias(runs.TARGET_ALIAS)], **LONG)()


dataset_promotion()
