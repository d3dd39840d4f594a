"""Fixtures for the dev-clone tests: a source database with every structure the wire server supports."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str):
    """A recorded server output (canonical extended JSON) as BSON-typed Python values."""
    from bson import json_util

    return json_util.loads((FIXTURES / name).read_text())


def build_source(db) -> None:
    """Collections with every option and index kind SecantusDB supports, and a few documents."""
    db.create_collection(
        "users",
        validator={"$jsonSchema": {"bsonType": "object", "required": ["email"]}},
        validationLevel="moderate",
        validationAction="error",
        collation={"locale": "en", "strength": 2},
    )
    db.create_collection("audit_log", capped=True, size=65536, max=1000)
    db.create_collection(
        "metrics",
        timeseries={"timeField": "ts", "metaField": "sensor", "granularity": "minutes"},
        expireAfterSeconds=86400,
    )
    db.create_collection("sessions", clusteredIndex={"key": {"_id": 1}, "unique": True})
    db.create_collection("orders", changeStreamPreAndPostImages={"enabled": True})
    db.create_collection("places")
    db.command({"create": "active_users", "viewOn": "users", "pipeline": [{"$match": {"active": True}}]})
    db.command({"create": "active_user_emails", "viewOn": "active_users", "pipeline": [{"$project": {"email": 1}}]})
    db.command(
        {
            "createIndexes": "users",
            "indexes": [
                {"key": {"email": 1}, "name": "users_email_unique", "unique": True},
                {"key": {"handle": 1}, "name": "users_handle_unique", "unique": True, "sparse": True},
                {"key": {"followers": -1}, "name": "followers_idx"},
                {"key": {"last_seen": 1}, "name": "last_seen_hidden", "hidden": True},
                {"key": {"name": 1}, "name": "name_fr", "collation": {"locale": "fr", "strength": 1}},
            ],
        }
    )
    db.command(
        {
            "createIndexes": "orders",
            "indexes": [
                {"key": {"customer_id": 1, "created_at": -1}, "name": "customer_created"},
                {"key": {"status": 1}, "name": "open_orders", "partialFilterExpression": {"status": {"$eq": "open"}}},
                {"key": {"expires_at": 1}, "name": "expires_ttl", "expireAfterSeconds": 3600},
                {"key": {"$**": 1}, "name": "attrs_wildcard", "wildcardProjection": {"attrs": 1}},
            ],
        }
    )
    db.command({"createIndexes": "places", "indexes": [{"key": {"loc": "2dsphere"}, "name": "loc_2dsphere"}]})
    db.users.insert_many([{"email": f"u{i}@x.io", "handle": f"u{i}", "active": i % 2 == 0} for i in range(20)])
    db.orders.insert_many(
        [{"customer_id": i, "status": "open", "created_at": dt.datetime(2026, 1, 1)} for i in range(10)]
    )
    db.places.insert_one({"loc": {"type": "Point", "coordinates": [2.35, 48.85]}})


@pytest.fixture
def source_db(mongo_prod, mongo_db_name):
    db = mongo_prod[mongo_db_name]
    build_source(db)
    return db


def dumps(value) -> str:
    from ferry.devclone.structure import to_json

    return json.dumps(to_json(value), indent=1, sort_keys=True)
