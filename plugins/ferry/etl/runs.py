"""What each task of ``production_etl`` and ``production_etl_rollback`` does (``dags/etl.py`` only declares).

Each function is a task's callable: upstream results as arguments, the Airflow context as keyword
arguments (``params``, ``run_id``, ``ti``, ``dag_run``); the params are read once per task as a typed
``EtlRequest`` / ``RollbackRequest`` (``ferry.etl.request``). It opens its connections through the provider hooks
(``ferry.conns``) and calls the domain modules. ``FerryError``s
(bad mapping, refused change, failed check) fail the task without retries (``fails_fast``).

Write-audit-publish: a full or dated-copy load fills a staging database, ``validate`` checks it against
the source, and only then ``publish`` swaps it in; a failed check leaves the target untouched and the
staging database in place for inspection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ferry import audit, conns, lineage, locks, report, storage
from ferry.errors import FerryError, fails_fast
from ferry.etl.names import RUNS, meta_db
from ferry.etl.request import EtlRequest, PreviewRequest, RollbackRequest, ScaffoldRequest

log = logging.getLogger("ferry.etl")

PG, MONGO, S3 = conns.PG_PROD, conns.MONGO_LOCAL, conns.S3
FAMILY = "etl"
#: Asset aliases of production_etl's outlets: the target collections it changed, the manifests it published.
TARGET_ALIAS, PUBLISHED_ALIAS = "ferry_etl_target", "ferry_etl_published"
#: Task ids other tasks read results of (``dags/etl.py`` names its tasks with these).
ACQUIRE, DETECT, REVIEW, PLAN, CONTRACT = "acquire", "detect_schema", "review_schema_changes", "plan", "contract"


def scratch_name(run_id: str) -> str:
    """The scratch PostgreSQL database a ``source=s3`` run restores its dump into."""
    return "ferry_etl_scratch_" + storage.safe_name(run_id).replace("-", "_").replace(".", "_")[-40:].lower()


def load_target(r: EtlRequest, ctx: Any) -> str:
    """The database this run loads: ``mongo_db`` (``_dev`` under USE_DEV_MONGO_DB), or its dated copy."""
    from ferry.etl import load

    db = r.target
    if r.refresh_strategy == "dated_copy":
        day = ctx.get("logical_date") or ctx["dag_run"].run_after
        db = load.dated_db(db, day.strftime("%Y%m%d"))
    return db


# --------------------------------------------------------------------------- production_etl


@fails_fast
def acquire(**ctx) -> dict:
    """``source=direct``: nothing to do. ``source=s3``: restore the newest (or named) dump into a scratch database."""
    from ferry.etl import acquire as acq

    r = EtlRequest.from_context(ctx)
    if r.source == "direct":
        return {"source": "direct", "database": ""}
    s3 = conns.s3_client(S3)
    key = acq.newest_dump(s3, r.bucket, r.s3_prefix, r.s3_key or "")
    scratch = scratch_name(ctx["run_id"])
    with conns.pg_connect(PG, autocommit=True) as admin:
        major = acq.create_scratch(admin, scratch)
    try:
        with conns.pg_connect(PG, scratch) as conn:
            info = acq.restore_dump(s3, r.bucket, key, conn, major)
    except BaseException:
        release({"source": "s3", "database": scratch})  # the teardown only runs after a successful acquire
        raise
    return {"source": "s3", **info}


def release(acquired: dict | None = None, **ctx) -> None:
    """Teardown: end the run's source snapshot holder, drop the scratch database of a ``source=s3`` run and
    release the target's lock, whatever happened in between."""
    from ferry.etl import acquire as acq
    from ferry.etl import snapshot

    if ctx.get("run_id"):
        with conns.pg_connect(PG, autocommit=True) as admin:
            if snapshot.stop(admin, ctx["run_id"]):
                log.info("released the run's source snapshot")
    if acquired and acquired.get("source") == "s3" and acquired.get("database"):
        with conns.pg_connect(PG, autocommit=True) as admin:
            acq.drop_scratch(admin, acquired["database"])
        log.info("dropped scratch database %s", acquired["database"])
    if ctx.get("params") and ctx.get("run_id"):
        with conns.mongo_client(MONGO) as client:
            meta = client[meta_db(ctx["params"]["mongo_db"])]
            for lock in meta[locks.LOCKS].find({"owner": ctx["run_id"]}):
                locks.release(meta, lock["_id"], owner=ctx["run_id"])
                log.info("released %s", lock["_id"])


def _lock(client, r: EtlRequest, target: str, ctx):
    """The target's lock for this run (taken by its first write, renewed by every writing task, released by
    the teardown): an ETL run and an ETL rollback of one database never interleave."""
    return locks.hold(client[r.meta], f"etl:{target}", owner=ctx["run_id"], dag_id=ctx["dag_run"].dag_id)


def recover(client, meta: str, run_id: str) -> list[dict]:
    """What a crashed run left (found by the next run holding the lock): runs still marked running are marked
    interrupted, their source snapshots released and their scratch PostgreSQL databases dropped. Logs what it
    found."""
    from ferry.etl import acquire as acq
    from ferry.etl import snapshot

    runs = client[meta][RUNS]
    found = []
    for r in runs.find({"outcome": "running", "_id": {"$ne": run_id}}):
        scratch = (r.get("source") or {}).get("database")
        with conns.pg_connect(PG, autocommit=True) as admin:
            snapshot.stop(admin, r["_id"])  # its source snapshot, if its holder still runs
            if scratch:
                acq.drop_scratch(admin, scratch)
        runs.update_one(
            {"_id": r["_id"]}, {"$set": {"outcome": "failed", "status": "interrupted", "interrupted_found_by": run_id}}
        )
        found.append(r["_id"])
        log.warning(
            "found run %s left running by a crash (target %s): marked interrupted%s; its backup %s "
            "restores the state before it",
            r["_id"],
            r.get("target_db"),
            f", dropped scratch database {scratch}" if scratch else "",
            r.get("backup_version"),
        )
    return found


def route(detected: dict, **ctx) -> str:
    """Branch: the human review when ``schema_change_policy=ask`` meets changes, else straight to ``plan``."""
    from ferry.etl import policy

    human = policy.needs_human(EtlRequest.from_context(ctx).schema_change_policy, detected["changes"])
    return REVIEW if human else PLAN


@fails_fast
def plan(detected: dict, **ctx) -> dict:
    """Decide about the detected changes (policy or the reviewer's answer), build the effective mapping,
    write the JSON Schemas and the effective mapping as reports."""
    from ferry.etl import jsonschema, pipeline

    r = EtlRequest.from_context(ctx)
    answer = pipeline.Answer.of(ctx["ti"].xcom_pull(task_ids=REVIEW))
    with conns.mongo_client(MONGO) as client:
        out = pipeline.plan(
            client[r.meta], r.mapping_file, detected, r.schema_change_policy, answer, new_tables=r.new_tables
        )
    schemas = jsonschema.all_schemas(out["effective_mapping"], out["snapshot"])
    files = [
        report.publish(FAMILY, ctx["run_id"], f"jsonschema/{name}.json", json.dumps(s, indent=2))
        for name, s in schemas.items()
    ]
    report.publish(
        FAMILY, ctx["run_id"], "effective_mapping.json", json.dumps(out["effective_mapping"], indent=2, default=str)
    )
    return {
        "decision": out["decision"],
        "effective_mapping": out["effective_mapping"],
        "schemas": schemas,
        "schema_files": files,
        "target_db": load_target(r, ctx),
        # what the tasks use: an XCom on a PostgreSQL metadata DB is jsonb, which reorders object keys (by
        # length), and the order of a mapping's fields is the order of each document's fields
        "effective_mapping_json": json.dumps(out["effective_mapping"], default=str),
    }


@fails_fast
def contract(planned: dict, **ctx) -> dict:
    """Stage this run's consumer contract (JSON Schema, $jsonSchema, OpenAPI, TypeScript, Zod; by URL, one
    folder per version) and compare it with the published one: the log's table says per artifact whether it
    changed and whether the change breaks consumers. ``latest.json`` moves in ``publish_contract``."""
    from ferry.etl import contract_store as cs
    from ferry.etl import schema

    r = EtlRequest.from_context(ctx)
    detected = ctx["ti"].xcom_pull(task_ids=DETECT) or {}
    with conns.mongo_client(MONGO) as client:
        snap = client[r.meta][schema.SNAPSHOTS].find_one({"_id": detected["snapshot_id"]})
    staged = cs.stage(r.mongo_db, effective_mapping(planned), snap["snapshot"], schema_version=snap["version"])
    pointer = cs.latest(r.mongo_db)
    previous = cs.manifest(r.mongo_db, pointer["version"]) if pointer else None
    impacts, artifacts = cs.compare(previous, staged)
    was = pointer["version"] if pointer else "(none)"
    report.log_table(log, f"contract {staged.version} (published: {was}) at {staged.url}", artifacts)
    if impacts:
        report.log_table(log, "contract changes for consumers", [i.row() for i in impacts])
    return {
        "version": staged.version,
        "url": staged.url,
        "previous": pointer["version"] if pointer else None,
        "artifacts": artifacts,
        "impact": [i.row() for i in impacts],
        "breaking": any(i.breaking for i in impacts),
    }


@fails_fast
def publish_contract(contracted: dict, **ctx) -> dict:
    """Point ``contracts/<db>/latest.json`` at this run's contract, once its data is published."""
    from ferry.etl import contract_store as cs

    pointer = cs.point(EtlRequest.from_context(ctx).mongo_db, contracted["version"])
    log.info("contract %s published: %s (was %s)", pointer["version"], pointer["url"], contracted["previous"])
    return pointer


def effective_mapping(planned: dict) -> dict:
    """The effective mapping ``plan`` chose, with its fields in their order (see ``plan``)."""
    raw = planned.get("effective_mapping_json")
    return json.loads(raw) if raw else planned["effective_mapping"]


def _review_decision(ti, r: EtlRequest, detected: dict | None) -> dict | None:
    """The reviewer's answer when ``plan`` did not get to record it (an abort): who decided what."""
    from ferry.etl import policy

    answer = ti.xcom_pull(task_ids=REVIEW) or {}
    if not answer or not detected:
        return None
    responder = (answer.get("responded_by_user") or {}).get("name")
    decided = policy.decide(
        r.schema_change_policy,
        detected["changes"],
        answer.get("chosen_options"),
        responder,
        answer.get("params_input"),
    )
    return {**decided, "at": answer.get("responded_at")}


@fails_fast
def backup(acquired: dict, planned: dict, **ctx) -> dict:
    """Under the target's lock: close what a crashed run left, take the versioned backup (verified where it
    landed) before any write, record the run's intent, clear the staging database (full, dated copy); then
    export the source snapshot every load task reads."""
    r = EtlRequest.from_context(ctx)
    target = planned["target_db"]
    with conns.mongo_client(MONGO) as client, _lock(client, r, target, ctx):
        meta = client[r.meta]
        recover(client, r.meta, ctx["run_id"])
        rec = _backup_target(client, meta, r, target, ctx["run_id"])
        audit.to_mongo(
            meta[RUNS],
            audit.Run.of(ctx).record(  # intent: found and closed by the next run if this one dies
                family=FAMILY,
                outcome="running",
                params=r.as_params(),
                status="running",
                target_db=target,
                backup_version=rec["_id"],
                source=ctx["ti"].xcom_pull(task_ids=ACQUIRE),
            ),
        )
        if not r.incremental:
            from ferry.etl import load as ld

            left = ld.clear_staging(client, target)
            if left:
                log.warning("found staging of %s left by an earlier run (%s): dropped", target, left)
    snap = _export_snapshot(acquired, ctx["run_id"])
    return {"version": rec["_id"], "location": rec["location"], "documents": rec["documents"], "snapshot": snap}


def _backup_target(client, meta, r: EtlRequest, target: str, run_id: str) -> dict:
    """The backup version of ``target`` (incremental: opened empty, the load adds the pre-images of what it
    changes; else the whole target), with the contract it is published under and its lineage."""
    from ferry.etl import backup as bk

    make = bk.open_delta if r.incremental else bk.create
    rec = make(client, target, meta, r.backups, run_id=run_id, note="before production_etl load")
    _note_contract(meta, rec["_id"], r.mongo_db)
    lineage.report(
        client,
        inputs=[lineage.mongo(client, target, c) for c in rec["collections"]],
        outputs=[lineage.url(rec["location"])],
    )
    return rec


def _export_snapshot(acquired: dict, run_id: str) -> str:
    """Export the source snapshot (held open by a holder until ``release``) every load and check reads."""
    from ferry.etl import snapshot

    with conns.pg_connect(PG, acquired["database"] or None, autocommit=True) as conn:
        conninfo, password = conns.pg_conninfo(conn)
        snap = snapshot.start(conninfo, password, run_id, conn)
    log.info("source snapshot %s exported (held by backend %s until release)", snap["snapshot"], snap["backend_pid"])
    return snap["snapshot"]


def _note_contract(meta, version: str, db: str) -> None:
    """A backup keeps the contract its data was published under, so restoring it puts that contract back."""
    from ferry.etl import backup as bk
    from ferry.etl import contract_store as cs

    pointer = cs.latest(db)
    meta[bk.VERSIONS].update_one({"_id": version}, {"$set": {"contract": pointer["version"] if pointer else None}})


def collections(planned: dict, **ctx) -> list[str]:
    """The collections of the effective mapping: one mapped ``load`` task each."""
    return [c["name"] for c in effective_mapping(planned)["collections"]]


@fails_fast
def load(acquired: dict, planned: dict, backed_up: dict, collection: str | None = None, **ctx) -> dict:
    """Batched transform + load of one collection (a mapped task per collection; none: all of them), read
    on the run's source snapshot: into the staging database (full, dated copy) or the target (incremental)."""
    from ferry.etl import jsonschema, snapshot
    from ferry.etl import load as ld

    r = EtlRequest.from_context(ctx)
    names = [collection] if collection else None
    eff = effective_mapping(planned)
    with (
        conns.pg_connect(PG, acquired["database"] or None) as conn,
        conns.mongo_client(MONGO) as client,
        _lock(client, r, planned["target_db"], ctx),
    ):
        snapshot.use(conn, backed_up.get("snapshot"))
        opts = ld.Options(
            strategy=r.refresh_strategy,
            batch_size=r.batch_size,
            collections=names,
            publish_now=False,
            meta_db=client[r.meta],
            run_id=ctx["run_id"],
            backup_version=backed_up["version"],
            logger=log,
        )
        res = ld.load(conn, client, planned["target_db"], eff, opts)
        res["snapshot"] = backed_up.get("snapshot")
        res["backup_version"] = backed_up["version"]
        if r.apply_validators:
            schemas = {k: v for k, v in planned["schemas"].items() if names is None or k in names}
            res["validators"] = jsonschema.apply_validators(client[res["staging"] or res["db"]], schemas)
        tables = {
            t
            for c in eff["collections"]
            if c["name"] in res["collections"]
            for t in [c["table"], *(r.get("table") for r in c["relations"])]
            if t
        }
        targets = [lineage.mongo(client, res["db"], c) for c in res["collections"]]
        lineage.report(
            conn, inputs=[lineage.postgres(conn, eff["source"]["schema"], t) for t in sorted(tables)], outputs=targets
        )
        if not res["staging"]:  # incremental: readers see the change now
            lineage.emit(ctx, TARGET_ALIAS, targets)
    where = f"staging {res['staging']}" if res["staging"] else res["db"]
    report.log_table(
        log,
        f"loaded into {where} ({res['strategy']}, backup {backed_up['version']})",
        [{"collection": k, **{f: x for f, x in v.items() if f != "missing"}} for k, v in res["collections"].items()],
    )
    report.log_table(log, "relations without their target row (on_missing)", missing_rows(planned, res))
    return res


def missing_rows(planned: dict, loaded: dict) -> list[dict]:
    """One row per embed_one / reference relation: how many rows had no target row, and what was done."""
    rows = []
    for coll in effective_mapping(planned)["collections"]:
        counts = loaded["collections"].get(coll["name"], {}).get("missing", {})
        for rel in coll["relations"]:
            if rel["kind"] != "embed_many":
                rows.append(
                    {
                        "collection": coll["name"],
                        "relation": rel["as"],
                        "kind": rel["kind"],
                        "target": rel.get("table") or rel.get("collection"),
                        "missing": counts.get(rel["as"], 0),
                        "on_missing": rel.get("on_missing", "null"),
                    }
                )
    return rows


@fails_fast
def validate(acquired: dict, planned: dict, loaded, **ctx) -> list[dict]:
    """Check what was loaded (the staging database, before it is published) against the source, read on the
    snapshot the loads read."""
    from ferry.etl import checks, snapshot
    from ferry.etl import load as ld

    r = EtlRequest.from_context(ctx)
    loaded = ld.merge(loaded)
    quarantined = {k: v["quarantined"] for k, v in loaded["collections"].items()}
    with conns.pg_connect(PG, acquired["database"] or None) as conn, conns.mongo_client(MONGO) as client:
        snapshot.use(conn, loaded.get("snapshot"))
        return checks.run(
            conn,
            client,
            loaded["staging"] or loaded["db"],
            effective_mapping(planned),
            quarantined=quarantined,
            sample=r.validate_sample,
            logger=log,
            changed=ld.changed(client[r.meta], loaded),
        )


@fails_fast
def publish(loaded, **ctx) -> dict:
    """Swap the checked staging collections into the target (full, dated copy); incremental wrote in place.
    Runs only when every collection's load and the checks succeeded: all or nothing is published."""
    from ferry.etl import load as ld

    loaded = ld.merge(loaded)
    if not loaded["staging"]:
        return {"db": loaded["db"], "published": False}
    with conns.mongo_client(MONGO) as client, _lock(client, EtlRequest.from_context(ctx), loaded["db"], ctx):
        ld.publish(client, loaded["staging"], loaded["db"], list(loaded["collections"]))
        lineage.emit(ctx, TARGET_ALIAS, [lineage.mongo(client, loaded["db"], c) for c in loaded["collections"]])
    log.info("published %s -> %s (%d collection(s))", loaded["staging"], loaded["db"], len(loaded["collections"]))
    return {"db": loaded["db"], "published": True}


@fails_fast
def publish_parallel(loaded, **ctx) -> list[dict]:
    """``also_publish_to``: the published target to each listed database (lock, backup, staging, check, swap),
    and its contract; a table of each database's result. Fails after trying all when one failed."""
    from ferry.etl import backup as bk
    from ferry.etl import contract_store as cs
    from ferry.etl import load as ld
    from ferry.etl import parallel

    r = EtlRequest.from_context(ctx)
    targets = r.parallel
    if not targets:
        return []
    loaded = ld.merge(loaded)
    names = sorted(loaded["collections"])
    with conns.mongo_client(MONGO) as client:
        meta = client[r.meta]
        steps = parallel.Steps(
            lock=lambda db: _lock(client, r, db, ctx),
            backup=lambda db: bk.create(client, db, meta, r.backups, run_id=ctx["run_id"], note="before parallel")[
                "_id"
            ],
        )
        rows = parallel.publish_all(client, loaded["db"], targets, names, steps)
    contracted = ctx["ti"].xcom_pull(task_ids=CONTRACT)
    for row in rows:
        if contracted and not row["result"].startswith("FAILED"):
            cs.copy_version(r.mongo_db, row["database"], contracted["version"])
    report.log_table(log, f"also_publish_to: {loaded['db']} -> {', '.join(targets)}", rows)
    failed = [r["database"] for r in rows if r["result"].startswith("FAILED")]
    if failed:
        raise FerryError(f"also_publish_to failed for {failed} (the others are published; a rerun finishes these)")
    return rows


@fails_fast
def push_s3(planned: dict, loaded, **ctx) -> dict | None:
    """Processed data as JSON lines + manifest under ``s3://<bucket>/processed/<db>/<run>``."""
    from ferry.etl import load as ld
    from ferry.etl import publish as pub

    r = EtlRequest.from_context(ctx)
    if not r.push_to_s3:
        return None
    loaded = ld.merge(loaded)
    with conns.mongo_client(MONGO) as client:
        out = pub.push(
            client,
            loaded["db"],
            list(loaded["collections"]),
            conns.s3_client(S3),
            f"s3://{r.bucket}/processed/{loaded['db']}/{storage.safe_name(ctx['run_id'])}",
            extra={"run_id": ctx["run_id"], "decision": planned["decision"]},
            version=loaded.get("backup_version"),
            full=loaded["strategy"] != "incremental" or r.s3_export == "full",
        )
        log.info("published %s export: s3://%s/%s", out["kind"], r.bucket, out["manifest"])
        lineage.report(
            client,
            inputs=[lineage.mongo(client, loaded["db"], c) for c in loaded["collections"]],
            outputs=[lineage.s3(r.bucket, out["manifest"])],
        )
        lineage.emit(ctx, PUBLISHED_ALIAS, [lineage.s3(r.bucket, out["manifest"])])
    return out


def finish(**ctx) -> dict:
    """The run's audit record (success or failed, with every step's outcome); fails the run if a step failed."""
    ti, dr = ctx["ti"], ctx["dag_run"]
    r = EtlRequest.from_context(ctx)
    pulled = {t: ti.xcom_pull(task_ids=t) for t in (ACQUIRE, DETECT, PLAN, "backup", "load")}
    detected, planned, backed_up, loaded = (pulled[t] for t in (DETECT, PLAN, "backup", "load"))
    parts = loaded if isinstance(loaded, list) else [loaded]  # one result per mapped load task that succeeded
    if any(parts):
        from ferry.etl import load as ld

        loaded = ld.merge(parts)
    else:
        loaded = None
    raw = ti.get_task_states(dag_id=dr.dag_id, run_ids=[dr.run_id])
    states = raw.get(dr.run_id, raw)
    failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed"))
    decision = planned["decision"] if planned else _review_decision(ti, r, detected)
    from ferry.approvals import ANSWER_KEY

    refused = (ti.xcom_pull(task_ids=REVIEW, key=ANSWER_KEY) or {}).get("refused")
    rec = audit.Run.of(ctx).record(
        family=FAMILY,
        outcome="failed" if failed else "success",
        params=r.as_params(),
        started_at=dr.start_date,
        counts=loaded["collections"] if loaded else None,
        status="failed" if failed else "success",
        failed_tasks=failed,
        source={"kind": r.source, **(pulled[ACQUIRE] or {})},
        snapshot={
            "id": detected["snapshot_id"],
            "version": detected["version"],
            "base_version": detected["base_version"],
        }
        if detected
        else None,
        diff_summary=detected["summary"] if detected else None,
        changes=detected["changes"] if detected else None,
        contract_impact=detected.get("impact") if detected else None,
        decision=decision,
        review_refused=refused,
        backup_version=backed_up["version"] if backed_up else None,
        contract=ti.xcom_pull(task_ids=CONTRACT),
        target_db=loaded["db"] if loaded else (planned or {}).get("target_db"),
        staging_kept=loaded["staging"] if loaded and loaded["staging"] and states.get("publish") != "success" else None,
    )
    with conns.mongo_client(MONGO) as client:
        audit.to_mongo(client[r.meta][RUNS], rec)
        if loaded and not failed:  # the next incremental run reads what changed since this one
            from ferry.etl import load as ld

            ld.save_state(client[r.meta], loaded)
    if failed:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"production_etl failed in {failed} (audit record {rec['_id']} written)")
    return {"run_id": rec["_id"], "status": rec["outcome"], "backup_version": rec["backup_version"]}


# --------------------------------------------------------------------------- production_etl_rollback


@fails_fast
def scaffold(**ctx) -> dict:
    """Draft a mapping from ``pg_conn_id``'s schema, store it by URL and print it in the log."""
    from ferry.etl import mapping
    from ferry.etl import scaffold as sc

    r = ScaffoldRequest.from_context(ctx)
    limits = sc.Limits(**{k: getattr(r, k) for k in sc.Limits().__dict__ if k in type(r).model_fields})
    with conns.pg_connect(r.pg_conn_id) as conn:
        text = sc.draft(conn, r.pg_schema, r.tables, limits)
    base = r.output_url or storage.join(storage.root(), "etl-drafts", storage.safe_name(ctx["run_id"]))
    url = storage.join(base, "mapping.yaml")
    storage.put_text(url, text)
    log.info("draft mapping of %s (%s), stored at %s:\n%s", r.pg_conn_id, r.pg_schema, url, text)
    return {"url": url, "collections": [c["name"] for c in mapping.parse(text, url)["collections"]]}


@fails_fast
def preview(**ctx) -> dict:
    """A dry run of ``mapping`` on ``pg_conn_id``: the documents the load would build, counted and sized, the
    rows it would quarantine and a sample per collection, in the log and the XCom. Writes nothing."""
    from ferry.etl import preview as pv

    r = PreviewRequest.from_context(ctx)
    with conns.pg_connect(r.pg_conn_id) as conn:
        out = pv.preview(conn, r.mapping, r.pg_schema, rows=r.rows, batch_size=r.batch_size)
    report.log_table(log, f"dry run of {r.mapping} on {r.pg_conn_id} (nothing written)", out["collections"])
    for name, rejected in out["rejected"].items():
        if rejected:
            report.log_table(log, f"{name}: rows that would be quarantined (first {len(rejected)})", rejected)
    for name, doc in out["samples"].items():
        log.info("%s: a sample document\n%s", name, json.dumps(doc, indent=2, default=str)[:4000])
    return out


def list_versions(**ctx) -> list[dict]:
    """The backup versions of ``mongo_db``, as a table in the log."""
    from ferry.etl import backup as bk

    r = RollbackRequest.from_context(ctx)
    with conns.mongo_client(MONGO) as client:
        rows = bk.list_versions(client[r.meta])
    report.log_table(log, f"backup versions of {r.target}", rows)
    return rows


@fails_fast
def restore(versions: list[dict], **ctx) -> dict | None:
    """Restore ``version`` exactly (after backing up the current state); no version = list only."""
    from ferry.etl import backup as bk

    r = RollbackRequest.from_context(ctx)
    if not r.version:
        log.info("no version given: listed %d backup(s), nothing restored", len(versions))
        return None
    valid = [v["version"] for v in versions]
    if r.version not in valid:
        raise FerryError(f"unknown version {r.version!r}; valid versions: {', '.join(valid) or '(none)'}")
    run_id = ctx["run_id"]
    with conns.mongo_client(MONGO) as client:
        meta = client[r.meta]
        rec = meta[bk.VERSIONS].find_one({"_id": r.version})
        with locks.hold(meta, f"etl:{rec['db']}", owner=run_id, dag_id=ctx["dag_run"].dag_id, release_at_end=True):
            return _restore(client, meta, rec, r, ctx)


def _restore(client, meta, rec: dict, r: RollbackRequest, ctx) -> dict:
    from ferry.etl import backup as bk

    version = rec["_id"]
    run_id = ctx["run_id"]
    before = bk.create(
        client,
        rec["db"],
        meta,
        r.backups,
        run_id=run_id,
        note=f"before rollback to {version}",
        logger=log,
    )
    res = bk.restore(client, meta, version, logger=log)
    if rec.get("contract"):  # the contract the restored data was published under
        from ferry.etl import contract_store as cs

        res["contract"] = cs.point(r.mongo_db, rec["contract"])["version"]
    lineage.report(
        client,
        inputs=[lineage.url(rec["location"])],
        outputs=[lineage.mongo(client, rec["db"], c) for c in res["collections"]],
    )
    audit.to_mongo(
        meta[RUNS],
        audit.Run.of(ctx).record(
            family=FAMILY,
            outcome="success",
            params=r.as_params(),
            counts=res["collections"],
            status="success",
            restored=res,
            backup_version=before["_id"],
            target_db=rec["db"],
        ),
    )
    return {**res, "backup_before": before["_id"]}
