"""Undo one promotion exactly: delete what it inserted, restore the pre-images of what it replaced."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from ferry.errors import FerryError
from ferry.promotion.config import PromotionConfig
from ferry.promotion.execute import doc_hash, durable, lock_name
from ferry.promotion.plan import chunks, hashable

log = logging.getLogger(__name__)


class UnknownPromotion(FerryError, LookupError):
    pass


def rollback(
    cfg: PromotionConfig, prod_db, promotion_id: str, *, owner: str | None = None, requested: dict | None = None
) -> list[dict]:
    """Undo ``promotion_id`` exactly: delete what it inserted, restore what it replaced. ``requested`` (who
    triggered the rollback, who approved it and when) is kept in the promotion's record as ``rollback_by``.

    Crash-safe and idempotent: it holds the target's lock, marks the promotion ``rolling_back`` (durably)
    before its first write, and every step can be repeated: a rerun after a crash resumes and ends in the
    same state. A promotion already ``rolled_back`` is left alone (nothing is written again). Inserted
    documents are found from the intent records written before each batch, confirmed or not; an unconfirmed
    one is deleted only if production still holds exactly what the promotion wrote.
    """
    from ferry import locks

    audit = durable(prod_db[cfg.audit_collection])
    with locks.hold(
        prod_db,
        lock_name(prod_db),
        owner=owner or f"rollback:{promotion_id}",
        dag_id="prod_promotion_rollback",
        release_at_end=True,
    ):
        rec = audit.find_one({"_id": promotion_id})
        if rec is None:
            raise UnknownPromotion(
                f"no promotion {promotion_id!r} in {prod_db.name}.{cfg.audit_collection}: check the promotion_id "
                f"(the prod_promotion run id) and the target database"
            )
        if rec.get("status") == "rolled_back":
            log.info(
                "promotion %s was already rolled back at %s: nothing to do", promotion_id, rec.get("rolled_back_at")
            )
            return [{**r, "note": "already rolled back"} for r in rec.get("rollback") or []]
        if rec.get("status") in ("rolling_back", "rollback_interrupted"):
            log.warning("resuming the rollback of %s that stopped midway", promotion_id)
        audit.update_one(
            {"_id": promotion_id},
            {
                "$set": {
                    "status": "rolling_back",
                    "status_before_rollback": rec.get("status_before_rollback", rec.get("status")),
                    "rollback_by": requested or {"run_id": owner},
                }
            },
        )
        rows = _undo(cfg, prod_db, promotion_id)
        audit.update_one(
            {"_id": promotion_id},
            {
                "$set": {
                    "status": "rolled_back",
                    "outcome": "rolled_back",
                    "rolled_back_at": datetime.now(UTC),
                    "rollback": rows,
                }
            },
        )
    return rows


def _undo(cfg: PromotionConfig, prod_db, promotion_id: str) -> list[dict]:
    from pymongo import ReplaceOne

    backups = prod_db[cfg.backups_collection]
    names = list(cfg.collections)
    rows: dict[str, dict[str, Any]] = {n: {"collection": n, "deleted": 0, "restored": 0, "left": 0} for n in names}
    for name in reversed(names):  # children before parents
        ids: list = []
        for rec in backups.find({"promotion_id": promotion_id, "collection": name, "kind": "inserts"}):
            confirmed = {hashable(i) for i in rec.get("inserted") or []}
            planned = {hashable(p["_id"]): p["h"] for p in rec.get("planned", [])}
            ids += rec.get("inserted") or []
            unconfirmed = [p["_id"] for p in rec.get("planned", []) if hashable(p["_id"]) not in confirmed]
            for chunk in chunks(unconfirmed, cfg.lookup_chunk):
                for d in prod_db[name].find({"_id": {"$in": chunk}}):
                    if planned.get(hashable(d["_id"])) in (doc_hash(d), legacy_hash(d)):
                        ids.append(d["_id"])
                    else:
                        rows[name]["left"] += 1
                        log.warning(
                            "%s %r: not deleted, production holds another version than the promotion wrote",
                            name,
                            d["_id"],
                        )
        for chunk in chunks(ids, cfg.batch_size):
            rows[name]["deleted"] += durable(prod_db[name]).delete_many({"_id": {"$in": chunk}}).deleted_count
        ops = [
            ReplaceOne({"_id": b["doc_id"]}, b["before"], upsert=True)
            for b in backups.find({"promotion_id": promotion_id, "collection": name, "kind": "pre_image"})
        ]
        for chunk in chunks(ops, cfg.batch_size):
            durable(prod_db[name]).bulk_write(chunk, ordered=False)
        rows[name]["restored"] = len(ops)
    return list(rows.values())


def legacy_hash(doc: dict) -> str:
    """How releases before the content hash recorded inserts (BSON in field order)."""
    from ferry.hashing import doc_digest

    return doc_digest(doc)


def record_refusal(cfg: PromotionConfig, prod_db, promotion_id: str, request: dict) -> None:
    """A rejected or refused rollback of ``promotion_id``, kept in its record (``rollback_requests``); nothing
    else is written. The same request recorded twice (a retried task) is kept once."""
    durable(prod_db[cfg.audit_collection]).update_one(
        {"_id": promotion_id}, {"$addToSet": {"rollback_requests": request}}
    )


def recent(cfg: PromotionConfig, prod_db, limit: int = 20) -> list[dict]:
    """The latest promotions recorded in ``prod_db`` (newest first), as table rows."""
    rows = []
    for a in prod_db[cfg.audit_collection].find({}, sort=[("started_at", -1)], limit=limit):
        rows.append(
            {
                "promotion_id": a["_id"],
                "status": a.get("status"),
                "who": a.get("who"),
                "started_at": a.get("started_at"),
                "finished_at": a.get("finished_at"),
                "counts": a.get("counts"),
            }
        )
    return rows
