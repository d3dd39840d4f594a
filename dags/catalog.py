"""
### Dataset catalog promotion

**`dataset_promotion`** promotes dataset catalog entries (`datasets` + `schemas` on `ferry_mongo_local`) to the
production catalog (`ferry_mongo_prod`). Schemas are identified by `module.Class` + version: one already in
production with the same definition is reused, the same identity with another definition is an error naming
both. Data URLs are kept, or with `copy_data` the S3 objects are copied to `target_bucket` (each verified) and
the URLs rewritten. Everything is checked before anything is written; a rerun changes nothing. See
`docs/promotion.md`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, Param, dag, task

from ferry.dagdefaults import default_args
from ferry.params import optional

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
        "datasets": optional("array", "Dataset names. Empty: all.", items={"type": "string"}),
        "source_db": Param("ferry_catalog", type="string", description="Catalog database on ferry_mongo_local."),
        "target_db": Param("ferry_catalog", type="string", description="Catalog database on ferry_mongo_prod."),
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
