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
  (missing / extra / different collections, options, indexes); `repair=true` first creates what
  is missing and re-applies changed validators.

Applications pick the clone with `USE_DEV_MONGO_DB=true` (`ferry.mongo.db_name`). See `docs/dev_clone.md`.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from ferry.dagdefaults import default_args
from ferry.operators.mongo_index_clone import MongoIndexCloneOperator

DEFAULT_DATABASES = ["alphasync_db", "STKFeed"]

_DB_LIST = Param(
    DEFAULT_DATABASES,
    type="array",
    items={"type": "string", "minLength": 1},
    minItems=1,
    description="Production databases (on ferry_mongo_prod) whose structure is cloned.",
)
_SUFFIX = Param("_dev", type="string", minLength=1, description="Clone name = source name + this suffix.")


@dag(
    dag_id="dev_db_structure_clone",
    schedule=None,
    catchup=False,
    tags=["ferry", "mongo", "dev"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    render_template_as_native_obj=True,
    params={
        "source_databases": _DB_LIST,
        "target_suffix": _SUFFIX,
        "include_search_indexes": Param(True, type="boolean", description="Also clone Atlas Search / Vector Search indexes (or write instructions)."),
        "drop_extra_indexes": Param(False, type="boolean", description="Drop target indexes that are not in the source (or differ) before creating."),
        "dry_run": Param(True, type="boolean", description="Only log the plan; write nothing."),
        "allow_nonempty_target": Param(False, type="boolean", description="Clone into a target that already holds documents."),
        "verify_vector_search": Param(False, type="boolean", description="After creating vector search indexes, run a one-result $vectorSearch probe on each."),
    },
)
def dev_db_structure_clone():
    MongoIndexCloneOperator(
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
    tags=["ferry", "mongo", "dev"],
    default_args=default_args(retries=0),
    doc_md=__doc__,
    params={
        "source_databases": _DB_LIST,
        "target_suffix": _SUFFIX,
        "repair": Param(False, type="boolean", description="Create missing collections/indexes and re-apply changed validators, then re-check."),
        "include_search_indexes": Param(True, type="boolean", description="Also compare Atlas Search / Vector Search index definitions (where both servers can list them)."),
    },
)
def dev_db_drift_check():
    @task
    def drift_check() -> list[dict]:
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from ferry import conns, report
        from ferry.devclone import clone, drift

        log = logging.getLogger(__name__)
        ctx = get_current_context()
        params = ctx["params"]
        suffix, repair = params["target_suffix"], bool(params["repair"])
        out_dir = report.artifacts_dir("dev_db_drift", str(ctx["run_id"]).replace(":", "_").replace("+", "_"))
        summary, drifted, failures = [], [], []
        with conns.mongo_client(conns.MONGO_PROD) as source, conns.mongo_client(conns.MONGO_DEV) as target:
            for name in params["source_databases"]:
                tgt = clone.target_name(name, suffix)
                try:
                    clone.check_names(name, tgt, suffix)
                except clone.GuardError as exc:
                    raise AirflowFailException(str(exc)) from exc
                try:
                    res = drift.check(source[name], target[tgt], repair=repair,
                                      include_search=bool(params["include_search_indexes"]), report_dir=out_dir / tgt)
                except clone.GuardError as exc:
                    raise AirflowFailException(str(exc)) from exc
                rows = drift.table_rows(res)
                text = report.log_table(log, f"Drift {name} → {tgt}", rows)
                if res.repaired:
                    repaired = [{k: v for k, v in r.items() if k in ("collection", "object", "action", "status", "error")}
                                for r in res.repaired]
                    text += "\n\n" + report.log_table(log, f"Repair of {tgt}", repaired)
                    text += "\n\n" + report.log_table(log, f"Drift left after repair in {tgt}", drift.table_rows(res, res.remaining))
                for note in res.notes:
                    log.warning("%s", note)
                    text += f"\n\nNote: {note}"
                if res.search_report:
                    text += f"\n\nSearch indexes to create by hand: {res.search_report}"
                (out_dir / f"{tgt}.md").write_text(text + "\n")
                summary.append({"source": name, "target": tgt, "differences": len(res.rows),
                                "repaired": len([r for r in res.repaired if r.get("status") in ("created", "modified")]),
                                "remaining": len(res.remaining)})
                drifted += [f"{tgt}.{r['collection']} {r['item']}: {r['change']}" for r in res.remaining]
                failures += res.failures
        report.log_table(log, "Drift summary", summary)
        if drifted or failures:
            raise AirflowFailException(
                f"{len(drifted)} structural difference(s) between production and its clone"
                + (" remain after repair" if repair else " (rerun with repair=true to create what is missing)")
                + ":\n" + "\n".join(drifted[:50])
                + ("".join(f"\nrepair failed: {f}" for f in failures))
            )
        return summary

    drift_check()


dev_db_drift_check()
