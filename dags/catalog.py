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

from airflow.sdk import AssetAlias, Param, dag, task

from ferry.dagdefaults import default_args
from ferry.params import optional

TARGETS = ["catalog", "atmosphere"]

LONG = {"execution_timeout": timedelta(hours=4)}


@dag(
    dag_id="dataset_promotion",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "promotion", "catalog"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "target": Param("catalog", type="string", enum=TARGETS, description="catalog (MongoDB) or atmosphere (PDS)."),
        "dry_run": Param(True, type="boolean", description="List what would be published; write nothing."),
        "datasets": optional("array", "Dataset names. Empty: all.", items={"type": "string"}),
        "source_db": Param("ferry_catalog", type="string", description="Catalog database on ferry_mongo_local."),
        "target_db": Param(
            "ferry_catalog", type="string", description="Catalog database on ferry_mongo_prod (also the audit's)."
        ),
        "copy_data": Param(False, type="boolean", description="Copy data objects to target_bucket (else keep URLs)."),
        "target_bucket": optional("string", "S3 bucket (ferry_s3) for copied data (needed with copy_data)."),
        "name": optional("string", "Override the name (one dataset only). Empty: keep."),
        "description": optional("string", "Override the description. Empty: keep."),
        "tags": optional("array", "Override the tags. Empty: keep.", items={"type": "string"}),
        "license": optional("string", "Override the license. Empty: keep."),
    },
)
def dataset_promotion():
    from ferry.catalog import runs

    task(runs.promote, outlets=[AssetAlias(runs.TARGET_ALIAS)], **LONG)()


dataset_promotion()
