"""
### Dev database structure clone (MongoDB)

Two DAGs keep `<name>_dev` databases structurally identical to production, without data:

- **`dev_db_structure_clone`** (manual): for each of `source_databases` on `ferry_mongo_prod`,
  creates `<name><target_suffix>` on `ferry_mongo_dev` with the same collections, options
  (validators, collation, capped, time series, clustered, pre/post images), views and indexes
  (one `createIndexes` per collection: regular → text → geo → TTL/partial). Atlas Search /
  Vector Search indexes are created where the target supports them, otherwise their JSON
  definitions and step-by-step instructions land in the run's artifacts. **`dry_run` is on by
  default**: the plan (create / exists / differs) is logged as a table and nothing is written.
  Refuses a target equal to the source, a target not ending with the suffix, and a target that
  already holds documents (unless `allow_nonempty_target`). Fails at the end listing every index
  or collection the target rejected.
- **`dev_db_drift_check`** (weekly): compares source and clone and fails when they differ
  (missing / extra / different collections, options, indexes; keys and filters compared in order);
  `repair=true` first creates what is missing, re-applies changed validators and re-creates changed
  indexes.

Applications pick the clone with `USE_DEV_MONGO_DB=true` (`ferry.mongo.db_name`). See `docs/dev_clone.md`.
"""

from __future__ import annotations

from airflow.sdk import AssetAlias, Param, dag

from ferry.dagdefaults import default_args
from ferry.devclone.runs import TARGET_ALIAS
from ferry.operators.mongo_drift_check import MongoDriftCheckOperator
from ferry.operators.mongo_index_clone import MongoIndexCloneOperator

DEFAULT_DATABASES = ["alphasync_db", "STKFeed"]

_DB_LIST = Param(
    DEFAULT_DATABASES,
    type="array",
    items={"type": "string", "minLength": 1, "maxLength": 63},
    minItems=1,
    description="Production databases (on ferry_mongo_prod) whose structure is cloned.",
)
_SUFFIX = Param("_dev", type="string", minLength=1, maxLength=40, description="Clone name = source name + this suffix.")


@dag(
    dag_id="dev_db_structure_clone",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "devclone", "mongodb"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "source_databases": _DB_LIST,
        "target_suffix": _SUFFIX,
        "include_search_indexes": Param(
            True, type="boolean", description="Also clone Atlas Search / Vector Search indexes (or write instructions)."
        ),
        "drop_extra_indexes": Param(
            False,
            type="boolean",
            description="Drop target indexes that are not in the source (or differ) before creating.",
        ),
        "dry_run": Param(True, type="boolean", description="Only log the plan; write nothing."),
        "allow_nonempty_target": Param(
            False, type="boolean", description="Clone into a target that already holds documents."
        ),
        "verify_vector_search": Param(
            False,
            type="boolean",
            description="After creating vector search indexes, run a one-result $vectorSearch probe on each.",
        ),
    },
)
def dev_db_structure_clone():
    MongoIndexCloneOperator(
        outlets=[AssetAlias(TARGET_ALIAS)],
        task_id="clone_structure",
        source_databases="{{ params.source_databases }}",
        target_suffix="{{ params.target_suffix }}",
        dry_run="{{ params.dry_run }}",
        drop_extra_indexes="{{ params.drop_extra_indexes }}",
        include_search_indexes="{{ params.include_search_indexes }}",
        allow_nonempty_target="{{ params.allow_nonempty_target }}",
        verify_vector_search="{{ params.verify_vector_search }}",
    )


dev_db_structure_clone()


@dag(
    dag_id="dev_db_drift_check",
    schedule="@weekly",
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "devclone", "mongodb"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "source_databases": _DB_LIST,
        "target_suffix": _SUFFIX,
        "repair": Param(
            False,
            type="boolean",
            description="Create missing collections/indexes, re-apply changed validators and re-create (drop + "
            "create) changed indexes, then re-check.",
        ),
        "include_search_indexes": Param(
            True,
            type="boolean",
            description="Also compare Atlas Search / Vector Search index definitions "
            "(where both servers can list them).",
        ),
    },
)
def dev_db_drift_check():
    MongoDriftCheckOperator(
        outlets=[AssetAlias(TARGET_ALIAS)],
        task_id="drift_check",
        source_databases="{{ params.source_databases }}",
        target_suffix="{{ params.target_suffix }}",
        repair="{{ params.repair }}",
        include_search_indexes="{{ params.include_search_indexes }}",
    )


dev_db_drift_check()
