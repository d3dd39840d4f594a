"""
### Production ETL: PostgreSQL → MongoDB

**acquire** (`direct`, or a `pg_dump` from S3 restored into a scratch database that the **release** teardown
drops) → **detect_schema** (snapshot diffed against the last accepted one: *safe* / *breaking*) → **plan**
(`schema_change_policy`; `ask` = the **review_schema_changes** human step) → **backup** (by URL; then one
source snapshot is exported for every later read) → **load**, one mapped task per collection
(`full` / `dated_copy` into staging, `incremental` in place) → **validate** (staging vs source: counts,
unique `_id`, embedded rows, references, checksums, Great Expectations; a failure leaves the target
untouched) → **publish** (swap staging in, only when every collection loaded and passed) → **push_s3** →
**finish** (audit record). Roll back with `production_etl_rollback`. See `docs/etl.md`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAlias, dag, task

from ferry import settings
from ferry.dagdefaults import default_args
from ferry.etl.policy import OPTIONS as REVIEW_OPTIONS
from ferry.etl.request import EtlRequest, PreviewRequest, RollbackRequest, ScaffoldRequest
from ferry.operators.schema_change import SchemaChangeDetectOperator, SchemaReviewOperator

LONG = {"execution_timeout": timedelta(hours=6)}


@dag(
    dag_id="production_etl",
    schedule=settings.etl_schedule(),
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "etl", "postgres", "mongodb"],
    default_args=default_args(),
    doc_md=__doc__,
    params=EtlRequest.params(),
)
def production_etl():
    from ferry.etl import runs

    acquired = task(runs.acquire, **LONG)()
    detect = SchemaChangeDetectOperator(
        task_id=runs.DETECT,
        pg_conn_id="ferry_pg_prod",
        mongo_conn_id="ferry_mongo_local",
        database="{{ ti.xcom_pull(task_ids='acquire')['database'] }}",
        mongo_db="{{ params.mongo_db }}",
        pg_schema="{{ params.pg_schema }}",
        source_name="{{ params.source_name or (params.mapping.rsplit('/', 1)[-1].rsplit('.', 1)[0]) }}",
        mapping="{{ params.mapping }}",
    )
    review = SchemaReviewOperator(
        task_id=runs.REVIEW,
        subject="production_etl: schema changes in {{ params.source_name or params.mapping }}",
        body="{{ ti.xcom_pull(task_ids='detect_schema')['markdown'] }}",
        options=REVIEW_OPTIONS,
        defaults=["Abort"],
        response_timeout=timedelta(hours=24),
        retries=0,
    )
    detected = detect.output
    planned = task(runs.plan, trigger_rule="none_failed_min_one_success")(detected)
    contracted = task(runs.contract)(planned)
    acquired >> detect
    task.branch(runs.route)(detected) >> [review, planned]
    review >> planned
    target = [AssetAlias(runs.TARGET_ALIAS)]
    backed_up = task(runs.backup, **LONG)(acquired, planned)
    # one load task per collection (Celery spreads them over workers), all on the snapshot backup exported
    loaded = (
        task(runs.load, outlets=target, **LONG)
        .partial(acquired=acquired, planned=planned, backed_up=backed_up)
        .expand(collection=task(runs.collections)(planned))
    )
    published = task(runs.publish, outlets=target)(loaded)
    task(runs.validate, **LONG)(acquired, planned, loaded) >> published
    pushed = task(runs.push_s3, outlets=[AssetAlias(runs.PUBLISHED_ALIAS)], **LONG)(planned, loaded)
    done = task(runs.finish, trigger_rule="all_done")()
    contract_out = task(runs.publish_contract)(contracted)
    published >> contract_out >> pushed >> done
    contract_out >> task(runs.publish_parallel, **LONG)(loaded) >> done
    done >> task(runs.release)(acquired).as_teardown(setups=acquired)


production_etl()


@dag(
    dag_id="production_etl_rollback",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "etl", "rollback"],
    default_args=default_args(retries=0),
    doc_md="### Roll back production_etl\n\nLists the backups of `mongo_db`; with `version`, backs up the current "
    "state and restores that version exactly (content hash checked). An unknown version is refused with the "
    "valid ones. See `docs/etl.md`.",
    params=RollbackRequest.params(),
)
def production_etl_rollback():
    from ferry.etl import runs

    task(runs.restore, execution_timeout=timedelta(hours=6))(task(runs.list_versions)())


production_etl_rollback()


@dag(
    dag_id="production_etl_scaffold",
    schedule=None,
    catchup=False,
    tags=["ferry", "etl", "scaffold"],
    default_args=default_args(retries=0),
    doc_md="### Draft a production_etl mapping\n\nReads `pg_conn_id`'s schema (tables, keys, foreign keys, row "
    "counts, fan-out) and writes a mapping `production_etl` accepts as it is, each suggestion commented with the "
    "figures it was based on. Prints it in the log and stores it at `output_url`. Nothing is written to the "
    'source. See `docs/etl.md` ("Drafting a mapping").',
    params=ScaffoldRequest.params(),
)
def production_etl_scaffold():
    from ferry.etl import runs

    task(runs.scaffold)()


production_etl_scaffold()


@dag(
    dag_id="production_etl_preview",
    schedule=None,
    catchup=False,
    tags=["ferry", "etl", "dry-run"],
    default_args=default_args(retries=0),
    doc_md="### Dry run of a production_etl mapping\n\nResolves `mapping` against the source's schema and builds "
    "the documents the load would write (every row, or the first `rows` of each collection): a table per "
    "collection (rows, documents, rows it would quarantine with why, missing relation targets, document sizes "
    "against the 16 MiB limit) and a sample document, in the log and the XCom. **Nothing is written**: no "
    'target, no bookkeeping, no backup, no S3. See `docs/etl.md` ("Your own database").',
    params=PreviewRequest.params(),
)
def production_etl_preview():
    from ferry.etl import runs

    task(runs.preview)()


production_etl_preview()
