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

from airflow.sdk import AssetAlias, Param, dag, task

from ferry import settings
from ferry.dagdefaults import default_args
from ferry.etl.policy import OPTIONS as REVIEW_OPTIONS
from ferry.etl.policy import POLICIES
from ferry.operators.schema_change import SchemaChangeDetectOperator, SchemaReviewOperator
from ferry.params import optional

LONG = {"execution_timeout": timedelta(hours=6)}


@dag(
    dag_id="production_etl",
    schedule=settings.etl_schedule(),
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "etl", "postgres", "mongodb"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "mapping": Param(
            "include/etl/demo_mapping.yaml",
            type="string",
            description="Mapping file (YAML; relative paths are from the repository root).",
        ),
        "source": Param(
            "direct", enum=["direct", "s3"], description="Read ferry_pg_prod directly, or restore a pg_dump from S3."
        ),
        "pg_schema": Param(
            "public",
            type="string",
            description="PostgreSQL schema to snapshot (must match the mapping's source.schema).",
        ),
        "source_name": optional("string", "Snapshot lineage name. Empty: the mapping file's name."),
        "s3_key": optional("string", "source=s3: the dump's key. Empty: the newest dump under s3_prefix."),
        "s3_prefix": Param("postgres-exports/", type="string", description="source=s3: where dumps are."),
        "bucket": Param("ferry-etl", type="string", description="S3 bucket of dumps and published data."),
        "mongo_db": Param(
            "bravo-1", type="string", description="Target database on ferry_mongo_local (USE_DEV_MONGO_DB adds _dev)."
        ),
        "schema_change_policy": Param(
            "auto_safe",
            enum=list(POLICIES),
            description="auto_safe: apply safe changes, stop on breaking ones before any write.",
        ),
        "refresh_strategy": Param(
            "full",
            enum=["full", "incremental", "dated_copy"],
            description="full: staging database, checked, then swapped in; incremental: upsert "
            "changed documents; dated_copy: a new <db>-YYYYMMDD database.",
        ),
        "also_publish_to": optional(
            "array",
            "Further databases on ferry_mongo_local that get the same published load (a second copy, a test "
            "copy), each with its own lock, backup and contract. Empty: none.",
            items={"type": "string"},
        ),
        "batch_size": Param(10000, type="integer", minimum=1, description="Rows per batch."),
        "new_tables": optional("string", "report | create (a collection per new table). Empty: the mapping's."),
        "backup_url": optional(
            "string",
            "Where backups go (s3://bucket/prefix or a folder). Empty: "
            "$FERRY_STORAGE_URL/etl-backups (object storage, seen by every worker).",
        ),
        "apply_validators": Param(False, type="boolean", description="Set each collection's $jsonSchema validator."),
        "push_to_s3": Param(
            True, type="boolean", description="Publish JSON lines + manifest to s3://bucket/processed/..."
        ),
        "validate_sample": Param(50, type="integer", minimum=0, description="Documents checked by checksum."),
    },
)
def production_etl():
    from ferry.etl import runs

    acquired = task(runs.acquire, **LONG)()
    detect = SchemaChangeDetectOperator(
        task_id="detect_schema",
        pg_conn_id="ferry_pg_prod",
        mongo_conn_id="ferry_mongo_local",
        database="{{ ti.xcom_pull(task_ids='acquire')['database'] }}",
        mongo_db="{{ params.mongo_db }}",
        pg_schema="{{ params.pg_schema }}",
        source_name="{{ params.source_name or (params.mapping.rsplit('/', 1)[-1].rsplit('.', 1)[0]) }}",
    )
    review = SchemaReviewOperator(
        task_id="review_schema_changes",
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
    params={
        "mongo_db": Param("bravo-1", type="string", description="Database on ferry_mongo_local."),
        "version": optional(
            "string", "Backup version to restore (e.g. 2026-11-22-001). Empty: only list the versions."
        ),
        "backup_url": optional("string", "Where the pre-rollback backup goes. Empty: as production_etl."),
    },
)
def production_etl_rollback():
    from ferry.etl import runs

    task(runs.restore, execution_timeout=timedelta(hours=6))(task(runs.list_versions)())


production_etl_rollback()
