"""Fixtures for the promotion tests: seeded local/production databases and a content hash."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from bson import ObjectId

T0 = datetime(2026, 1, 1)
T1 = datetime(2026, 6, 1)

P_A = ObjectId("000000000000000000000a01")  # production's id of company a.com
L_A = ObjectId("00000000000000000000aa01")  # local's id of the same company
L_B = ObjectId("00000000000000000000aa02")
L_C = ObjectId("00000000000000000000aa03")
GHOST = ObjectId("00000000000000000000dead")


def seed(local_db, prod_db) -> None:
    """Local: 3 companies, 4 documents, 2 meta summaries; production already holds a.com (other _id),
    document u3 and a.com's privacy summary."""
    prod_db.companies.insert_one({"_id": P_A, "domain": "a.com", "name": "A (prod)", "updated_at": T0})
    prod_db.documents.insert_one(
        {"_id": "pd3", "url": "https://a.com/u3", "company_id": P_A, "title": "prod u3", "updated_at": T0}
    )
    prod_db.meta_summaries.insert_one(
        {"_id": "pm1", "company_id": P_A, "kind": "privacy", "text": "prod", "updated_at": T0}
    )
    local_db.companies.insert_many(
        [
            {"_id": L_A, "domain": "a.com", "name": "A (local)", "updated_at": T1},
            {"_id": L_B, "domain": "b.com", "name": "B", "updated_at": T1},
            {"_id": L_C, "domain": "c.com", "name": "C", "updated_at": T1},
        ]
    )
    local_db.documents.insert_many(
        [
            {"_id": "d1", "url": "https://a.com/u1", "company_id": L_A, "title": "u1", "updated_at": T1},
            {"_id": "d2", "url": "https://b.com/u2", "company_id": L_B, "title": "u2", "updated_at": T1},
            {"_id": "d3", "url": "https://a.com/u3", "company_id": L_A, "title": "local u3", "updated_at": T1},
            {"_id": "d4", "url": "https://x.com/u4", "company_id": GHOST, "title": "orphan", "updated_at": T1},
        ]
    )
    local_db.meta_summaries.insert_many(
        [
            {"_id": "m1", "company_id": L_A, "kind": "privacy", "text": "local", "updated_at": T1},
            {"_id": "m2", "company_id": L_B, "kind": "terms", "text": "b terms", "updated_at": T1},
        ]
    )


def db_hash(db, collections=("companies", "documents", "meta_summaries")) -> str:
    """Content hash of whole collections (documents in _id order, BSON bytes: field order counts)."""
    import bson

    h = hashlib.sha256()
    for name in collections:
        h.update(name.encode())
        for d in db[name].find().sort("_id", 1):
            h.update(bson.encode(d))
    return h.hexdigest()


@pytest.fixture
def dbs(mongo_local, mongo_prod, mongo_db_name):
    """(local_db, prod_db, name): the same database name on the two servers, seeded."""
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    seed(local_db, prod_db)
    return local_db, prod_db, mongo_db_name


@pytest.fixture
def cfg():
    from ferry.promotion import config

    return config.load()


@pytest.fixture
def sink(tmp_path):
    from ferry.promotion.sink import ReportSink

    return ReportSink(tmp_path / "reports")
