"""
### Production ETL: PostgreSQL → MongoDB

Reads the production PostgreSQL database (`ferry_pg_prod`, or the newest `pg_dump` in S3 restored
into a scratch database), notices schema changes **before** anything is written, and loads one
MongoDB collection per root entity into `ferry_mongo_local` as the mapping file says.

1. **acquire** – `source=direct` (server-side cursors) or `source=s3` (`pg_restore` of a dump).
2. **detect_schema** – snapshot of tables/columns/types/nullability/defaults/keys/indexes, stored in
   `<db>__ferry._ferry_schema_snapshots`, diffed against the last accepted one, each change classified
   *safe* or *breaking* (markdown table in the log).
3. **plan** – `schema_change_policy`: `auto_safe` (apply safe, stop on breaking), `apply_all`, `abort`
   (stop on any change), `ask` (the **review_schema_changes** human-in-the-loop task: Apply all /
   Skip schema updates / Abort). The decision is recorded with the snapshot; JSON Schemas are written.
4. **backup** – versioned backup of the target database (gzip'd JSON lines) in `_ferry_etl_versions`.
5. **load** – `refresh_strategy`: `full` (staging database, then swap), `incremental` (changed
   documents only), `parallel` (`<db>-YYYYMMDD`).
6. **validate** – Great Expectations: counts, null `_id`, references, sample checksums.
7. **push_s3** – JSON lines per collection + manifest; **finish** – audit record in `_ferry_etl_runs`.

Roll back with the `production_etl_rollback` DAG. See `docs/etl.md`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, get_current_context, task

from ferry.dagdefaults import default_args
from ferry.operators.schema_change import SchemaChangeDetectOperator

REPO = Path(__file__).resolve().parents[1]
PG, MONGO, S3 = "ferry_pg_prod", "ferry_mongo_local", "ferry_s3"
HITL_OPTIONS = ["Apply all", "Skip schema updates", "Abort"]  # == ferry.etl.policy.OPTIONS (kept light here)


def _params() -> dict:
    return get_current_context()["params"]


def _mapping_path(p: str) -> str:
    path = Path(p)
    return str(path if path.is_absolute() else REPO / path)


def _target(params: dict) -> str:
    from ferry.etl import load, target_db

    db = target_db(params["mongo_db"])
    if params["refresh_strategy"] == "parallel":
        ctx = get_current_context()
        day = ctx.get("logical_date") or ctx["dag_run"].run_after
        db = load.parallel_db(db, day.strftime("%Y%m%d"))
    return db


@dag(
    dag_id="production_etl",
    schedule=os.environ.get("FERRY_ETL_SCHEDULE") or None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "etl", "postgres", "mongodb"],
    default_args=default_args(),
    doc_md=__doc__,
    params={
        "mapping": Param("include/etl/demo_mapping.yaml", type="string",
                         description="Mapping file (YAML; relative paths are from the repository root)."),
        "source": Param("direct", enum=["direct", "s3"], description="Read ferry_pg_prod directly, or restore a pg_dump from S3."),
        "pg_schema": Param("public", type="string", description="PostgreSQL schema to snapshot (must match the mapping's source.schema)."),
        "source_name": Param("", type="string", description="Snapshot lineage name (default: the mapping file name)."),
        "s3_key": Param("", type="string", description="source=s3: dump key (default: the newest under s3_prefix)."),
        "s3_prefix": Param("postgres-exports/", type="string", description="source=s3: where dumps are."),
        "bucket": Param("ferry-etl", type="string", description="S3 bucket (dumps, published data, S3 backups)."),
        "mongo_db": Param("bravo-1", type="string", description="Target database on ferry_mongo_local (USE_DEV_MONGO_DB adds _dev)."),
        "schema_change_policy": Param("auto_safe", enum=["auto_safe", "apply_all", "abort", "ask"],
                                      description="auto_safe: apply safe changes, stop on breaking ones before any write."),
        "refresh_strategy": Param("full", enum=["full", "incremental", "parallel"],
                                  description="full: staging db then swap; incremental: upsert changed docs; parallel: <db>-YYYYMMDD."),
        "batch_size": Param(10000, type="integer", minimum=1, description="Rows per batch."),
        "backup_to": Param("local", enum=["local", "s3"], description="Backup destination (local folder or s3://bucket/backups)."),
        "backup_dir": Param("", type="string", description="Local backup folder (default $FERRY_ETL_BACKUP_DIR or artifacts/etl-backups)."),
        "apply_validators": Param(False, type="boolean", description="Set each collection's $jsonSchema validator."),
        "push_to_s3": Param(True, type="boolean", description="Publish JSON lines + manifest to s3://bucket/processed/..."),
        "validate_sample": Param(50, type="integer", minimum=0, description="Documents per collection checked by checksum."),
    },
)
def production_etl():
    @task
    def acquire() -> dict:
        from ferry import conns

        p = _params()
        if p["source"] == "direct":
            return {"source": "direct", "database": ""}
        from ferry.etl import acquire as acq

        s3 = conns.s3_client(S3)
        key = acq.newest_dump(s3, p["bucket"], p["s3_prefix"], p["s3_key"])
        run_id = get_current_context()["run_id"]
        scratch = "ferry_etl_scratch_" + "".join(ch if ch.isalnum() else "_" for ch in run_id)[-40:].lower()
        info = acq.restore_dump(s3, p["bucket"], key, conns.pg_uri(PG), conns.pg_uri(PG, scratch), scratch)
        return {"source": "s3", **info}

    acquired = acquire()

    detect = SchemaChangeDetectOperator(
        task_id="detect_schema",
        pg_conn_id=PG,
        mongo_conn_id=MONGO,
        database="{{ ti.xcom_pull(task_ids='acquire')['database'] }}",
        mongo_db="{{ params.mongo_db }}",
        pg_schema="{{ params.pg_schema }}",
        source_name="{{ params.source_name or (params.mapping.rsplit('/', 1)[-1].rsplit('.', 1)[0]) }}",
    )

    @task.branch
    def route(detected: dict) -> str:
        from ferry.etl import policy

        if policy.needs_human(_params()["schema_change_policy"], detected["changes"]):
            return "review_schema_changes"
        return "plan"

    review = HITLOperator(
        task_id="review_schema_changes",
        subject="production_etl: schema changes in {{ params.source_name or params.mapping }}",
        body="{{ ti.xcom_pull(task_ids='detect_schema')['markdown'] }}",
        options=HITL_OPTIONS,
        defaults=["Abort"],
        response_timeout=timedelta(hours=24),
        retries=0,
    )

    @task(trigger_rule="none_failed_min_one_success")
    def plan(detected: dict) -> dict:
        import json

        from airflow.sdk.exceptions import AirflowFailException

        from ferry import conns, report
        from ferry.etl import jsonschema, meta_db, pipeline

        p = _params()
        ctx = get_current_context()
        answer = ctx["ti"].xcom_pull(task_ids="review_schema_changes") or {}
        with conns.mongo_client(MONGO) as client:
            try:
                out = pipeline.plan(client[meta_db(p["mongo_db"])], _mapping_path(p["mapping"]), detected,
                                    p["schema_change_policy"], answer.get("chosen_options"),
                                    answer.get("responded_by_user", {}).get("name") if answer.get("responded_by_user") else None)
            except pipeline.Aborted as exc:
                raise AirflowFailException(str(exc)) from exc
        folder = report.artifacts_dir("etl", ctx["run_id"])
        schemas = jsonschema.all_schemas(out["effective_mapping"], out["snapshot"])
        files = jsonschema.write(schemas, folder / "jsonschema")
        (folder / "effective_mapping.json").write_text(json.dumps(out["effective_mapping"], indent=2, default=str))
        return {"decision": out["decision"], "effective_mapping": out["effective_mapping"], "schemas": schemas,
                "schema_files": files, "target_db": _target(p)}

    @task
    def backup(planned: dict) -> dict:
        from ferry import conns
        from ferry.etl import backup as bk
        from ferry.etl import backup_location, meta_db

        p = _params()
        with conns.mongo_client(MONGO) as client:
            rec = bk.create(client, planned["target_db"], client[meta_db(p["mongo_db"])],
                            backup_location(p["backup_to"], p["bucket"], p["backup_dir"]),
                            s3=conns.s3_client(S3) if p["backup_to"] == "s3" else None,
                            run_id=get_current_context()["run_id"], note="before production_etl load")
        return {"version": rec["_id"], "location": rec["location"], "documents": rec["documents"]}

    @task
    def load(acquired: dict, planned: dict, backed_up: dict) -> dict:
        import logging

        from ferry import conns, report
        from ferry.etl import jsonschema, meta_db
        from ferry.etl import load as ld

        p = _params()
        logger = logging.getLogger("ferry.etl")
        with conns.pg_connect(PG, acquired["database"] or None) as conn, conns.mongo_client(MONGO) as client:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            res = ld.load(conn, client, planned["target_db"], planned["effective_mapping"],
                          strategy=p["refresh_strategy"], batch_size=p["batch_size"],
                          meta_db=client[meta_db(p["mongo_db"])], run_id=get_current_context()["run_id"], logger=logger)
            if p["apply_validators"]:
                res["validators"] = jsonschema.apply_validators(client[planned["target_db"]], planned["schemas"])
        report.log_table(logger, f"loaded into {res['db']} ({res['strategy']}, backup {backed_up['version']})",
                         [{"collection": k, **v} for k, v in res["collections"].items()])
        return res

    @task
    def validate(acquired: dict, planned: dict, loaded: dict) -> list[dict]:
        from ferry import conns
        from ferry.etl import checks

        p = _params()
        quarantined = {k: v["quarantined"] for k, v in loaded["collections"].items()}
        with conns.pg_connect(PG, acquired["database"] or None) as conn, conns.mongo_client(MONGO) as client:
            return checks.run(conn, client, loaded["db"], planned["effective_mapping"], quarantined=quarantined,
                              sample=p["validate_sample"])

    @task
    def push_s3(planned: dict, loaded: dict, validated: list) -> dict | None:
        from ferry import conns
        from ferry.etl import publish

        p = _params()
        if not p["push_to_s3"]:
            return None
        run_id = get_current_context()["run_id"]
        safe_run = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in run_id)
        with conns.mongo_client(MONGO) as client:
            return publish.push(client, loaded["db"], list(loaded["collections"]), conns.s3_client(S3), p["bucket"],
                                f"processed/{loaded['db']}/{safe_run}",
                                extra={"run_id": run_id, "decision": planned["decision"]})

    @task(trigger_rule="all_done")
    def finish() -> dict:
        import datetime as dt

        from airflow.sdk.exceptions import AirflowFailException

        from ferry import conns
        from ferry.etl import audit, meta_db

        p = _params()
        ctx = get_current_context()
        ti, dr = ctx["ti"], ctx["dag_run"]
        pull = lambda t: ti.xcom_pull(task_ids=t)  # noqa: E731
        detected, planned, backed_up, loaded, acquired = (pull(t) for t in ("detect_schema", "plan", "backup", "load", "acquire"))
        raw = ti.get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
        states = raw.get(dr.run_id, raw)
        failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
        start = dr.start_date or dt.datetime.now(dt.timezone.utc)
        with conns.mongo_client(MONGO) as client:
            doc = audit.record(
                client[meta_db(p["mongo_db"])], ctx["run_id"],
                dag_id="production_etl",
                status="failed" if failed else "success",
                failed_tasks=failed,
                source={"kind": p["source"], **(acquired or {})},
                params={k: v for k, v in p.items()},
                snapshot={"id": detected["snapshot_id"], "version": detected["version"],
                          "base_version": detected["base_version"]} if detected else None,
                diff_summary=detected["summary"] if detected else None,
                changes=detected["changes"] if detected else None,
                decision=planned["decision"] if planned else None,
                backup_version=backed_up["version"] if backed_up else None,
                target_db=loaded["db"] if loaded else (planned or {}).get("target_db"),
                counts=loaded["collections"] if loaded else None,
                duration_s=(dt.datetime.now(dt.timezone.utc) - start).total_seconds(),
            )
        if acquired and acquired.get("source") == "s3":
            from psycopg import sql

            with conns.pg_connect(PG, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(acquired["database"])))
        if failed:
            raise AirflowFailException(f"production_etl failed in {failed} (audit record {doc['_id']} written)")
        return {"run_id": doc["_id"], "status": doc["status"], "backup_version": doc["backup_version"]}

    detected = detect.output
    planned = plan(detected)
    acquired >> detect
    route(detected) >> [review, planned]
    review >> planned
    backed_up = backup(planned)
    loaded = load(acquired, planned, backed_up)
    validated = validate(acquired, planned, loaded)
    pushed = push_s3(planned, loaded, validated)
    pushed >> finish()


production_etl()


@dag(
    dag_id="production_etl_rollback",
    schedule=None,
    catchup=False,
    max_active_runs=1,
    tags=["ferry", "etl", "rollback"],
    default_args=default_args(retries=0),
    doc_md="""
### Roll back production_etl

Lists the versioned backups of `mongo_db` (a table in the log) and, when `version` is given, restores it
exactly (content hash checked) after backing up the current state. An unknown version is refused with
the list of valid ones. Leave `version` empty to only list.
""",
    params={
        "mongo_db": Param("bravo-1", type="string", description="Database on ferry_mongo_local."),
        "version": Param("", type="string", description="Backup version to restore (e.g. 2026-11-22-001); empty = list only."),
        "bucket": Param("ferry-etl", type="string", description="S3 bucket (S3 backups)."),
        "backup_to": Param("local", enum=["local", "s3"], description="Where the pre-rollback backup goes."),
        "backup_dir": Param("", type="string", description="Local backup folder (default as production_etl)."),
    },
)
def production_etl_rollback():
    @task
    def list_versions() -> list[dict]:
        import logging

        from ferry import conns, report
        from ferry.etl import backup as bk
        from ferry.etl import meta_db, target_db

        p = _params()
        with conns.mongo_client(MONGO) as client:
            rows = bk.list_versions(client[meta_db(p["mongo_db"])])
        report.log_table(logging.getLogger("ferry.etl"), f"backup versions of {target_db(p['mongo_db'])}", rows)
        return rows

    @task
    def restore(versions: list[dict]) -> dict | None:
        from airflow.sdk.exceptions import AirflowFailException

        from ferry import conns
        from ferry.etl import audit, backup_location, meta_db
        from ferry.etl import backup as bk

        p = _params()
        if not p["version"]:
            return None
        valid = [v["version"] for v in versions]
        if p["version"] not in valid:
            raise AirflowFailException(f"unknown version {p['version']!r}; valid versions: {', '.join(valid) or '(none)'}")
        run_id = get_current_context()["run_id"]
        s3 = conns.s3_client(S3)
        with conns.mongo_client(MONGO) as client:
            meta = client[meta_db(p["mongo_db"])]
            rec = meta[bk.VERSIONS].find_one({"_id": p["version"]})
            before = bk.create(client, rec["db"], meta, backup_location(p["backup_to"], p["bucket"], p["backup_dir"]),
                               s3=s3 if p["backup_to"] == "s3" else None, run_id=run_id,
                               note=f"before rollback to {p['version']}")
            res = bk.restore(client, meta, p["version"], s3=s3)
            audit.record(meta, run_id, dag_id="production_etl_rollback", status="success", restored=res,
                         backup_version=before["_id"], target_db=rec["db"])
        return {**res, "backup_before": before["_id"]}

    restore(list_versions())


production_etl_rollback()
