"""
### Promotion: local MongoDB → production, and the dataset catalog

**`prod_promotion`** copies curated `companies`, `documents` and `meta_summaries` from `ferry_mongo_local`
to `ferry_mongo_prod`, matching documents by natural key (`include/promotion.yaml`) and remapping
references to production `_id`s. `mode=summary`: counts; `mode=dry_run` (default): the per-document plan
as JSON lines (by URL), nothing written; `mode=execute`: needs `confirm` = the target database, validates,
backs up, bulk-writes, audits (`_ferry_promotions`, `_id` = run id = promotion id), and fails at the end
listing every rejected or failed document. `require_approval=true` adds a human approval step showing the
summary; a rejection is audited (`rejected`, by whom, when) and ends the run as failed with that message.

**`prod_promotion_rollback`** undoes one promotion exactly (`promotion_id`, `confirm`); without
`promotion_id` it lists the recent promotions. `require_approval=true` asks an approver first (never the
user who triggered it); a rejection is kept in the promotion's record and fails the run.
See `docs/promotion.md` (dataset catalogs: `dags/catalog.py`).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, dag, task

from ferry.dagdefaults import default_args
from ferry.operators.approval import RecordedApprovalOperator
from ferry.promotion.request import PromotionRequest, RollbackRequest

LONG = {"execution_timeout": timedelta(hours=4)}


@dag(
    dag_id="prod_promotion",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "promotion", "mongodb"],
    default_args=default_args(),
    doc_md=__doc__,
    params=PromotionRequest.params(),
)
def prod_promotion():
    from ferry.promotion import runs

    planned = task(runs.plan, **LONG)(task(runs.check)())
    gate = task.branch(runs.gate)(planned)
    approve = RecordedApprovalOperator(
        task_id=runs.APPROVE,
        subject="Promote to production database {{ params.target_db }}?",
        body="{{ ti.xcom_pull(task_ids='plan')['table'] }}\n\n"
        "Plan report: {{ ti.xcom_pull(task_ids='plan')['report'] }}",
        response_timeout=timedelta(hours=24),
    )
    execute = task(
        runs.execute, trigger_rule="none_failed_min_one_success", outlets=[AssetAlias(runs.TARGET_ALIAS)], **LONG
    )()
    gate >> approve >> execute
    gate >> execute
    execute >> task(runs.outcome, trigger_rule="all_done", retries=0)()


prod_promotion()


@dag(
    dag_id="prod_promotion_rollback",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "promotion", "mongodb"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params=RollbackRequest.params(),
)
def prod_promotion_rollback():
    from ferry.promotion import runs

    checked = task(runs.check_rollback)()
    gate = task.branch(runs.rollback_gate)(checked)
    approve = RecordedApprovalOperator(
        task_id=runs.APPROVE_ROLLBACK,
        subject="Roll back promotion {{ params.promotion_id }} in production database {{ params.target_db }}?",
        body="{{ ti.xcom_pull(task_ids='check_rollback')['table'] }}",
        response_timeout=timedelta(hours=24),
    )
    undo = task(runs.rollback, trigger_rule="none_failed_min_one_success", **LONG)()
    gate >> approve >> undo
    gate >> undo
    undo >> task(runs.rollback_outcome, trigger_rule="all_done", retries=0)()


prod_promotion_rollback()
