"""Undo one promotion exactly: delete what it inserted, restore the pre-images of what it replaced."""

from __future__ import annotations

from datetime import datetime, timezone

from ferry.errors import FerryError
from ferry.promotion.config import PromotionConfig
from ferry.promotion.execute import doc_hash
from ferry.promotion.plan import chunks, hashable


class UnknownPromotion(FerryError, LookupError):
    pass


def rollback(cfg: PromotionConfig, prod_db, promotion_id: str) -> list[dict]:
    """Undo ``promotion_id`` exactly: delete what it inserted, restore what it replaced. Idempotent."""
    from pymongo import ReplaceOne

    audit = prod_db[cfg.audit_collection].find_one({"_id": promotion_id})
    if audit is None:
        raise UnknownPromotion(
            f"no promotion {promotion_id!r} in {prod_db.name}.{cfg.audit_collection}: check the promotion_id "
            f"(the prod_promotion run id) and the target database"
        )
    backups = prod_db[cfg.backups_collection]
    names = list(cfg.collections)
    rows = {n: {"collection": n, "deleted": 0, "restored": 0} for n in names}
    for name in reversed(names):  # children before parents
        ids: list = []
        for rec in backups.find({"promotion_id": promotion_id, "collection": name, "kind": "inserts"}):
            if rec.get("inserted") is not None:
                ids += rec["inserted"]
                continue
            planned = {hashable(p["_id"]): p["h"] for p in rec.get("planned", [])}
            for chunk in chunks([p["_id"] for p in rec.get("planned", [])], cfg.lookup_chunk):
                for d in prod_db[name].find({"_id": {"$in": chunk}}):
                    if doc_hash(d) == planned.get(hashable(d["_id"])):
                        ids.append(d["_id"])
        for chunk in chunks(ids, cfg.batch_size):
            rows[name]["deleted"] += prod_db[name].delete_many({"_id": {"$in": chunk}}).deleted_count
        ops = [
            ReplaceOne({"_id": b["doc_id"]}, b["before"], upsert=True)
            for b in backups.find({"promotion_id": promotion_id, "collection": name, "kind": "pre_image"})
        ]
        for chunk in chunks(ops, cfg.batch_size):
            prod_db[name].bulk_write(chunk, ordered=False)
        rows[name]["restored"] = len(ops)
    prod_db[cfg.audit_collection].update_one(
        {"_id": promotion_id},
        {"$set": {"status": "rolled_back", "rolled_back_at": datetime.now(timezone.utc), "rollback": list(rows.values())}},
    )
    return list(rows.values())


def recent(cfg: PromotionConfig, prod_db, limit: int = 20) -> list[dict]:
    """The latest promotions recorded in ``prod_db`` (newest first), as table rows."""
    rows = []
    for a in prod_db[cfg.audit_collection].find({}, sort=[("started_at", -1)], limit=limit):
        rows.append({"promotion_id": a["_id"], "status": a.get("status"), "who": a.get("who"),
                     "started_at": a.get("started_at"), "finished_at": a.get("finished_at"),
                     "counts": a.get("counts")})
    return rows
