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
and writes nothing. With `require_approval` (and `dry_run=false`) an approver who is not the triggering user
says yes to that list first; a rejection is audited and fails the run. See `docs/promotion.md`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, dag, task

from ferry.catalog.request import CatalogRequest
from ferry.dagdefaults import default_args
from ferry.operators.approval import RecordedApprovalOperator

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

    gate = task.branch(runs.gate)(task(runs.plan, **LONG)())
    approve = RecordedApprovalOperator(
        task_id=runs.APPROVE,
        subject="Promote dataset catalog entries to {{ params.target }} ({{ params.target_db }})?",
        body="{{ ti.xcom_pull(task_ids='plan')['table'] }}",
        response_timeout=timedelta(hours=24),
    )
    promote = task(
        runs.promote, trigger_rule="none_failed_min_one_success", outlets=[AssetAlias(runs.TARGET_ALIAS)], **LONG
    )()
    gate >> approve >> promote
    gate >> promote
    promote >> task(runs.outcome, trigger_rule="all_done")()


dataset_promotion()
