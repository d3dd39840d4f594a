"""Carry a promotion out: validate, back up, bulk-write, audit.

Per collection, parents first: plan (``ferry.promotion.plan``) -> Great Expectations on the documents
to write -> backup of what will change -> unordered ``bulk_write`` in batches -> children of
documents that failed to write are rejected. Every failure is kept with the server's error; the
caller fails the task at the end when there are any.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ferry.promotion.config import CollectionSpec, PromotionConfig
from ferry.promotion.plan import (
    Action,
    CollectionPlan,
    ParentRef,
    chunks,
    hashable,
    parent_refs,
    plan_collection,
)
from ferry.promotion.sink import ReportSink

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- validation


def _type_names(spec: CollectionSpec) -> dict[str, list[str]]:
    return {f: list(t) for f, t in spec.types.items()}


def validate_actions(spec: CollectionSpec, actions: list[Action]) -> dict[int, str]:
    """Great Expectations on the documents to write: required fields, types, unique natural key.

    Returns ``{position in actions: reason}`` for documents that failed.
    """
    if not actions:
        return {}
    import pandas as pd

    from ferry.promotion.plan import _MISSING, get_field
    from ferry.validation import validate

    fields = list(dict.fromkeys([*spec.required, *spec.types, *spec.key]))
    rows = []
    for a in actions:
        row: dict[str, Any] = {}
        for f in fields:
            v = get_field(a.doc or {}, f)
            row[f] = None if v is _MISSING else v
        row["_natural_key"] = json.dumps([str(row[k]) for k in spec.key])
        rows.append(row)
    df = pd.DataFrame(rows, dtype=object)
    exp: list[tuple[str, dict[str, Any]]] = [("ExpectColumnValuesToNotBeNull", {"column": f}) for f in spec.required]
    exp += [("ExpectColumnValuesToBeInTypeList", {"column": f, "type_list": t}) for f, t in _type_names(spec).items()]
    exp.append(("ExpectColumnValuesToBeUnique", {"column": "_natural_key"}))
    result = validate(df, exp, name=f"promotion_{spec.name}")
    bad: dict[int, str] = {}
    for check, idx in result.failed_indexes.items():
        for i in idx:
            bad[int(i)] = (bad.get(int(i), "") + "; " if int(i) in bad else "") + f"validation failed: {check}"
    return bad


# --------------------------------------------------------------------------- execute


@dataclass
class Outcome:
    collection: str
    planned: dict = field(default_factory=dict)
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rejected: int = 0
    failed: int = 0

    def row(self) -> dict:
        return {
            "collection": self.collection,
            "inserted": self.inserted,
            "updated": self.updated,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "failed": self.failed,
        }


def doc_hash(doc: dict) -> str:
    """What a promotion records of each document it inserts, to recognise it later (a rollback): its content,
    whatever order the server stores the fields in."""
    from ferry.hashing import content_digest

    return content_digest(doc)


def durable(coll):
    """``coll`` writing with majority and journal acknowledgement: what it wrote survives a server crash."""
    from pymongo import WriteConcern

    return coll.with_options(write_concern=WriteConcern(w="majority", j=True))


def _unique_key_index(coll, key: tuple[str, ...]) -> str | None:
    """Name of a unique, non-partial index on exactly the natural key fields, if production has one."""
    for name, info in coll.index_information().items():
        fields = {k for k, _ in info.get("key", [])}
        if info.get("unique") and not info.get("partialFilterExpression") and fields == set(key):
            return name
    return None


def _write_ops(spec: CollectionSpec, actions: list[Action], insert_with: str):
    from pymongo import InsertOne, ReplaceOne, UpdateOne

    ops: list[Any] = []
    for a in actions:
        assert a.doc is not None, f"{a.action} {a.key} has no document"
        if a.action == "insert":
            if insert_with == "insert":
                ops.append(InsertOne(a.doc))
            else:
                ops.append(UpdateOne(dict(a.key), {"$setOnInsert": a.doc}, upsert=True))
        elif a.action == "update":
            fields = {k: v for k, v in a.doc.items() if k != "_id"}
            guard = {"_id": a.target_id, spec.updated_at: {"$lt": a.doc[spec.updated_at]}}
            ops.append(UpdateOne(guard, {"$set": fields}))
        elif a.action == "overwrite":
            ops.append(ReplaceOne({"_id": a.target_id, **a.key}, a.doc))
    return ops


def _backup(cfg: PromotionConfig, prod_db, promotion_id: str, spec: CollectionSpec, actions: list[Action]) -> int:
    """Production pre-images of documents to update/overwrite, durable and read back before any write (first
    backup wins on retries, so a rerun never records a half-promoted state as the "before")."""
    from pymongo import UpdateOne

    from ferry.errors import FerryError

    ops = [
        UpdateOne(
            {"_id": {"promotion_id": promotion_id, "collection": spec.name, "doc_id": a.target_id}},
            {
                "$setOnInsert": {
                    "promotion_id": promotion_id,
                    "collection": spec.name,
                    "kind": "pre_image",
                    "doc_id": a.target_id,
                    "before": a.before,
                    "at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
        for a in actions
        if a.action in ("update", "overwrite")
    ]
    backups = durable(prod_db[cfg.backups_collection])
    for chunk in chunks(ops, cfg.batch_size):
        backups.bulk_write(chunk, ordered=False)
    if ops:
        kept = backups.count_documents({"promotion_id": promotion_id, "collection": spec.name, "kind": "pre_image"})
        if kept < len(ops):
            raise FerryError(
                f"promotion {promotion_id}: {kept} of {len(ops)} pre-images of {spec.name} read back; "
                "nothing written to it"
            )
    return len(ops)


def _write_collection(
    cfg: PromotionConfig, prod_db, promotion_id: str, attempt: int, plan: CollectionPlan, failures: list[dict]
) -> Outcome:
    spec = plan.spec
    coll, backups = prod_db[spec.name], durable(prod_db[cfg.backups_collection])
    out = Outcome(spec.name, planned=plan.counts())
    out.skipped = out.planned["skip"]
    out.rejected = out.planned["reject"]
    writes = [a for a in plan.actions if a.action in ("insert", "update", "overwrite")]
    insert_with = "insert" if _unique_key_index(coll, spec.key) else "upsert"
    if writes:
        log.info("%s: %d writes; inserts as %s", spec.name, len(writes), insert_with)
    _backup(cfg, prod_db, promotion_id, spec, writes)
    from ferry.report import Progress

    progress = Progress(log, f"write {spec.name}", len(writes))
    for n, chunk in enumerate(chunks(writes, cfg.batch_size)):
        inserts = [a for a in chunk if a.action == "insert"]
        rec_id = f"{promotion_id}|{spec.name}|inserts|{attempt}|{n}"
        if inserts:
            _insert_intent(backups, rec_id, promotion_id, spec.name, inserts)
        errors, upserted, n_modified = _bulk_write(coll, _write_ops(spec, chunk, insert_with))
        inserted_ids = _settle(spec.name, chunk, errors, upserted if insert_with == "upsert" else None, failures)
        out.inserted += len(inserted_ids)
        out.updated += n_modified
        out.skipped += sum(1 for a in chunk if a.action == "skip")
        out.failed += len(errors)
        if inserts:
            backups.update_one({"_id": rec_id}, {"$set": {"inserted": inserted_ids}})
        progress.add(len(chunk))
    progress.log(final=True)
    return out


def _insert_intent(backups, rec_id: str, promotion_id: str, collection: str, inserts: list) -> None:
    """Before a batch is written: the ids it inserts and their content, durable and read back."""
    from ferry.errors import FerryError

    planned = [{"_id": a.doc["_id"], "h": doc_hash(a.doc)} for a in inserts]
    record = {"promotion_id": promotion_id, "collection": collection, "kind": "inserts", "planned": planned}
    backups.replace_one({"_id": rec_id}, {**record, "inserted": None}, upsert=True)
    if len((backups.find_one({"_id": rec_id}) or {}).get("planned") or []) != len(planned):
        raise FerryError(
            f"promotion {promotion_id}: the intent record {rec_id} did not read back; a batch of {collection} "
            "not written"
        )


def _bulk_write(coll, ops: list) -> tuple[dict[int, dict], set[int], int]:
    """One unordered bulk write: ``(write errors by op index, upserted op indexes, documents modified)``."""
    from pymongo.errors import BulkWriteError

    try:
        res = coll.bulk_write(ops, ordered=False)
        return {}, set(res.upserted_ids or {}), res.modified_count
    except BulkWriteError as exc:
        d = exc.details
        errors = {e["index"]: e for e in d.get("writeErrors", [])}
        return errors, {u["index"] for u in d.get("upserted", [])}, d.get("nModified", 0)


def _settle(collection: str, chunk: list, errors: dict[int, dict], upserted: set[int] | None, failures: list) -> list:
    """Each action of the batch as it turned out: failed (reported in ``failures``), inserted, or skipped because
    production got the key meanwhile (an upsert that matched; ``upserted`` is ``None`` for plain inserts). The
    ids inserted."""
    inserted_ids = []
    for i, a in enumerate(chunk):
        if i in errors:
            e = errors[i]
            failures.append(
                {
                    "collection": collection,
                    "action": a.action,
                    "key": json.loads(json.dumps(a.key, default=str)),
                    "_id": str(a.target_id),
                    "code": e.get("code"),
                    "error": e.get("errmsg"),
                }
            )
            a.reason = f"write failed: {e.get('errmsg')}"
            a.action = "failed"
        elif a.action == "insert":
            if upserted is None or i in upserted:
                inserted_ids.append(a.doc["_id"])
            else:  # upsert matched: production got the key meanwhile
                a.action, a.reason = "skip", "inserted in production meanwhile"
    return inserted_ids


@dataclass(frozen=True)
class Selection:
    """What to promote: the collections (written parents first), a query per collection, the conflict rule."""

    collections: list[str]
    queries: dict[str, dict] = field(default_factory=dict)
    on_conflict: str = "skip"


@dataclass(frozen=True)
class Attempt:
    """Who promotes, as which run: the audit record's identity (``_id`` = ``promotion_id``) and where reports go."""

    promotion_id: str
    sink: ReportSink
    params: dict | None = None
    triggered_by: str | None = None
    attempt: int = 1
    approval: dict | None = None
    dag_id: str = "prod_promotion"


def execute(
    cfg: PromotionConfig, local_db, prod_db, selection: Selection, run: Attempt, *, lookup: str | None = None
) -> dict:
    """Promote ``selection`` (parents first). Returns counts, failures and report/backup locations.

    The audit record (``ferry.audit`` shape, ``_id`` = ``promotion_id``) is written before the first write
    with outcome ``running``, and completed at the end; ``approval`` (who approved, when) goes into it.
    """
    from ferry import locks

    pid = run.promotion_id
    audit = durable(prod_db[cfg.audit_collection])
    with locks.hold(prod_db, lock_name(prod_db), owner=pid, dag_id=run.dag_id, release_at_end=True):
        recover(cfg, prod_db, pid)
        _open_audit(audit, cfg, prod_db, run)
        summaries, outcomes, actions, failures = _promote(cfg, local_db, prod_db, selection, run, lookup)
        rejects = [a.report() for a in actions if a.action == "reject"]
        report = run.sink.write("execute.jsonl", (a.report() for a in actions))
        status = "failed" if failures or rejects else "succeeded"
        result = {
            "promotion_id": pid,
            "status": status,
            "plan": summaries,
            "outcome": [o.row() for o in outcomes],
            "failures": failures,
            "rejects": rejects,
            "report": report,
            "backup": f"{prod_db.name}.{cfg.backups_collection}",
        }
        _close_audit(audit, result)
        return result


def _open_audit(audit, cfg: PromotionConfig, prod_db, run: Attempt) -> None:
    """The intent: the run's audit record with outcome ``running``, before the first write."""
    from ferry import audit as audit_rec

    audit_rec.to_mongo(
        audit,
        audit_rec.record(
            id=run.promotion_id,
            family="promotion",
            dag_id=run.dag_id,
            run_id=run.promotion_id,
            who=run.triggered_by or "unknown",
            outcome="running",
            params=run.params,
            started_at=datetime.now(UTC),
            status="running",
            triggered_by=run.triggered_by,
            attempt=run.attempt,
            **(run.approval or {}),
            backup_location=f"{prod_db.name}.{cfg.backups_collection} (promotion_id={run.promotion_id})",
        ),
    )


def _promote(cfg: PromotionConfig, local_db, prod_db, selection: Selection, run: Attempt, lookup: str | None):
    """Plan, validate and write each collection, parents first; a child of a parent that failed to write is
    rejected. Returns (summary rows, outcomes, every action, failed writes)."""
    parents: dict[str, dict[Any, ParentRef]] = {}
    outcomes, actions, summaries = [], [], []
    failures: list[dict] = []
    for spec in cfg.ordered(selection.collections):
        query = selection.queries.get(spec.name, {})
        plan = plan_collection(spec, cfg, local_db, prod_db, query, selection.on_conflict, parents, lookup=lookup)
        summaries.append(plan.summary_row())
        writes = [a for a in plan.actions if a.action in ("insert", "update", "overwrite")]
        for i, reason in validate_actions(spec, writes).items():
            writes[i].action, writes[i].reason = "reject", reason
        outcomes.append(_write_collection(cfg, prod_db, run.promotion_id, run.attempt, plan, failures))
        refs = parent_refs(plan)
        for a in plan.actions:
            if a.action == "failed":
                refs[hashable(a.local_id)] = ParentRef(None, f"parent {spec.name} {a.key} failed to write: {a.reason}")
        parents.setdefault(spec.name, {}).update(refs)
        actions.extend(plan.actions)
    return summaries, outcomes, actions, failures


def _close_audit(audit, result: dict) -> None:
    """The audit record completed: status, counts, the plan, the report, failures and rejects (first 500)."""
    failures, rejects = result["failures"], result["rejects"]
    audit.update_one(
        {"_id": result["promotion_id"]},
        {
            "$set": {
                "status": result["status"],
                "outcome": "success" if result["status"] == "succeeded" else "failed",
                "finished_at": datetime.now(UTC),
                "counts": result["outcome"],
                "plan": result["plan"],
                "report_location": result["report"],
                "failures": failures[:500],
                "failure_count": len(failures),
                "rejects": rejects[:500],
                "reject_count": len(rejects),
            }
        },
    )


def lock_name(prod_db) -> str:
    """The lock every writer of this production database takes (promotions and their rollbacks)."""
    return f"promotion:{prod_db.name}"


def recover(cfg: PromotionConfig, prod_db, promotion_id: str) -> list[dict]:
    """What a crash left, found by the next writer (it holds the lock, so nothing else is running):
    promotions or rollbacks still marked running are marked interrupted (their intent records stay, so
    ``prod_promotion_rollback`` can undo them); a retry of this very promotion resumes. Logs what it found."""
    audit = durable(prod_db[cfg.audit_collection])
    now = datetime.now(UTC)
    found = []
    for a in audit.find({"status": {"$in": ["running", "rolling_back"]}, "_id": {"$ne": promotion_id}}):
        status = "interrupted" if a["status"] == "running" else "rollback_interrupted"
        audit.update_one(
            {"_id": a["_id"], "status": a["status"]},
            {
                "$set": {
                    "status": status,
                    "outcome": "failed",
                    "interrupted_found_by": promotion_id,
                    "interrupted_found_at": now,
                }
            },
        )
        found.append({"promotion_id": a["_id"], "was": a["status"], "now": status})
        log.warning(
            "found %s %s left '%s' by a crash: marked '%s' (undo it with prod_promotion_rollback, "
            "its intent records are kept)",
            "promotion" if status == "interrupted" else "rollback of",
            a["_id"],
            a["status"],
            status,
        )
    mine = audit.find_one({"_id": promotion_id}, {"status": 1, "attempt": 1})
    if mine and mine.get("status") == "running":
        log.warning(
            "resuming promotion %s after attempt %s stopped midway: documents it already wrote plan as "
            "skip (same natural key) and its earlier intent records are kept",
            promotion_id,
            mine.get("attempt"),
        )
    return found
