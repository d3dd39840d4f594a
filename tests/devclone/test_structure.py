"""Pure logic, no services: index normalisation, ordering, diff, commands built from recorded real outputs."""

from __future__ import annotations

import pytest

from ferry.devclone import clone, structure
from tests.devclone.conftest import load_fixture


def _struct(name: str, colls: dict) -> dict:
    return {"database": name, "collections": colls}


def test_legacy_index_specs_are_sent_as_mongorestore_sends_them():
    """v/ns/background dropped; every other field kept with its BSON type (mongorestore does not retype)."""
    from bson.int64 import Int64

    raw = {i["name"]: i for i in load_fixture("legacy.listIndexes.json")["indexes"]}
    got = {n: structure.normalize_index(i) for n, i in raw.items()}
    assert got["users_email_unique"] == {"name": "users_email_unique", "key": {"email": 1.0}, "unique": True}
    assert type(got["users_email_unique"]["key"]["email"]) is float  # 1.0 stays a double
    assert got["users_handle_unique"] == {"name": "users_handle_unique", "key": {"handle": 1}, "unique": 1, "sparse": 1}
    assert type(got["users_handle_unique"]["key"]["handle"]) is Int64  # 64-bit stays 64-bit
    assert got["followers_idx"] == {
        "name": "followers_idx",
        "key": {"followers": -1.0},
        "sparse": False,
        "unique": False,
    }
    assert got["text_search_idx"] == {
        "name": "text_search_idx",
        "key": {"_fts": "text", "_ftsx": 1},
        "weights": {"bio": 1, "handle": 5},
        "default_language": "english",
        "language_override": "language",
        "textIndexVersion": 3,
    }
    assert all("v" not in s and "ns" not in s and "background" not in s for s in got.values())


def test_equal_indexes_compare_equal_across_versions():
    """The normalisation docs/dev_clone.md lists: numbers by value, boolean options, format versions."""
    from bson.decimal128 import Decimal128
    from bson.int64 import Int64

    legacy = structure.normalize_index(
        {"v": 1, "key": {"email": 1.0}, "name": "e", "ns": "a.b", "unique": 1, "sparse": 1, "background": True}
    )
    modern = structure.normalize_index({"v": 2, "key": {"email": 1}, "name": "e", "unique": True, "sparse": True})
    same = structure.comparable_index
    assert type(legacy["key"]["email"]) is float and legacy["unique"] is not True  # sent as the source has them
    assert same(legacy) == same(modern)
    assert same({"name": "e", "key": {"a": Decimal128("-1")}}) == same({"name": "e", "key": {"a": -1}})
    assert same({"name": "e", "key": {"a": 1}, "expireAfterSeconds": Int64(60)}) == same(
        {"name": "e", "key": {"a": 1}, "expireAfterSeconds": 60.0}
    )
    assert same({"name": "e", "key": {"a": 1}, "unique": False}) == same({"name": "e", "key": {"a": 1}})
    geo_v2 = structure.normalize_index({"v": 2, "key": {"l": "2dsphere"}, "name": "g", "2dsphereIndexVersion": 2})
    geo_v3 = structure.normalize_index({"v": 2, "key": {"l": "2dsphere"}, "name": "g", "2dsphereIndexVersion": 3})
    assert same(geo_v2) == same(geo_v3)
    assert same(modern) != same({**modern, "hidden": True})
    text = {"name": "t", "key": {"_fts": "text", "_ftsx": 1}, "weights": {"a": 1, "b": 5}}
    assert same(text) == same({**text, "weights": {"b": 5, "a": 1.0}})  # the server keeps weights sorted


def test_order_counts_in_keys_filters_collations_and_validators():
    from bson.son import SON

    base = {"name": "i", "key": SON([("original", 1), ("version.major", -1), ("version.minor", -1)])}
    moved = {"name": "i", "key": SON([("version.major", -1), ("original", 1), ("version.minor", -1)])}
    assert base["key"] == dict(moved["key"])  # what dict equality (the old comparison) said
    assert structure.comparable_index(base) != structure.comparable_index(moved)
    assert structure.index_changes(base, moved) == "key order"
    pfe = {**base, "partialFilterExpression": {"a": {"$gt": 0}, "b": {"$gt": 0}}}
    pfe2 = {**base, "partialFilterExpression": {"b": {"$gt": 0}, "a": {"$gt": 0}}}
    assert structure.index_changes(pfe, pfe2) == "partialFilterExpression order"
    coll = {**base, "collation": {"locale": "fr", "strength": 1}}
    assert structure.index_changes(coll, {**base, "collation": {"strength": 1, "locale": "fr"}}) == "collation order"
    assert structure.index_changes(coll, {**base, "collation": {"locale": "fr", "strength": 2}}) == "collation"
    assert structure.index_changes(base, {**moved, "unique": True}) == "key order, unique"
    v1 = {"validator": {"$jsonSchema": {"required": ["a"], "bsonType": "object"}}}
    v2 = {"validator": {"$jsonSchema": {"bsonType": "object", "required": ["a"]}}}
    assert structure.changed_options(v1, v2) == {"validator"}
    assert (
        structure.changed_options(v1, {"validator": {"$jsonSchema": {"required": ["a"], "bsonType": "object"}}})
        == set()
    )
    assert structure.changed_options({"size": 4096}, {"size": 4096.0}) == set()
    assert structure.same({"a": True}, {"a": 1}) is False  # a boolean is not a number in a query


def test_events_fixture_gives_one_create_indexes_command_in_kind_order():
    """Text, wildcard, 2dsphere, TTL and collation indexes from a real listIndexes: the exact command Ferry sends."""
    specs = [structure.normalize_index(i) for i in load_fixture("alphasync_db.events.listIndexes.json")["indexes"]]
    src = _struct(
        "alphasync_db", {"events": {"type": "collection", "options": {}, "indexes": {s["name"]: s for s in specs}}}
    )
    tgt = _struct("alphasync_db_dev", {})
    rows = clone.plan_clone(src, tgt)
    assert rows[0] == {
        "collection": "events",
        "object": "events",
        "kind": "collection",
        "action": "create",
        "detail": "",
        "spec": {},
        "note": "",
    }
    cmd = clone.create_indexes_command("events", [r["spec"] for r in rows if r["kind"].startswith("index")])
    assert [i["name"] for i in cmd["indexes"]] == [
        # regular (by name), text, geo, TTL/partial; _id_ skipped
        "attributes_wildcard",
        "chunk_ids_1",
        "companies_ids_1",
        "date_1",
        "event_type_1",
        "event_type_1_date_1",
        "idx_events_companies_date",
        "title_ci",
        "name_text_description_text",
        "location_2dsphere",
        "expires_at_ttl",
    ]
    by_name = {i["name"]: i for i in cmd["indexes"]}
    assert by_name["name_text_description_text"] == {
        "name": "name_text_description_text",
        "key": {"_fts": "text", "_ftsx": 1},
        "weights": {"description": 1, "name": 10},
        "default_language": "english",
        "language_override": "lang",
        "textIndexVersion": 3,
    }
    assert by_name["attributes_wildcard"] == {
        "name": "attributes_wildcard",
        "key": {"$**": 1},
        "wildcardProjection": {"attributes": True, "_id": False},
    }
    assert by_name["location_2dsphere"] == {
        "name": "location_2dsphere",
        "key": {"location": "2dsphere"},
        "2dsphereIndexVersion": 3,
    }
    assert by_name["expires_at_ttl"] == {"name": "expires_at_ttl", "key": {"expires_at": 1}, "expireAfterSeconds": 0}
    assert by_name["title_ci"]["collation"]["strength"] == 2 and by_name["title_ci"]["collation"]["version"] == "57.1"
    assert cmd["createIndexes"] == "events" and list(cmd) == ["createIndexes", "indexes"]


def test_plan_marks_exists_differs_extra_and_drop():
    a = {"name": "a", "key": {"a": 1}}
    b = {"name": "b", "key": {"b": 1}, "unique": True}
    src = _struct("s", {"c": {"type": "collection", "options": {"validator": {"x": 1}}, "indexes": {"a": a, "b": b}}})
    tgt = _struct(
        "t",
        {
            "c": {
                "type": "collection",
                "options": {"validator": {"x": 2}},
                "indexes": {"a": a, "b": {"name": "b", "key": {"b": 1}}, "z": {"name": "z", "key": {"z": 1}}},
            },
            "only_here": {"type": "collection", "options": {}, "indexes": {}},
        },
    )
    acts = {(r["object"], r["action"]) for r in clone.plan_clone(src, tgt)}
    assert acts == {("c options", "collMod"), ("a", "exists"), ("b", "differs"), ("z", "extra"), ("only_here", "extra")}
    acts = [(r["object"], r["action"]) for r in clone.plan_clone(src, tgt, drop_extra_indexes=True)]
    assert ("b", "drop") in acts and ("b", "create") in acts and ("z", "drop") in acts
    assert acts.index(("b", "drop")) < acts.index(("b", "create"))


def test_diff_reports_missing_extra_and_different():
    idx = {"name": "a", "key": {"a": 1}}
    src = _struct(
        "s",
        {
            "c": {"type": "collection", "options": {"capped": True, "size": 10}, "indexes": {"a": idx}},
            "gone": {"type": "collection", "options": {}, "indexes": {}},
        },
    )
    tgt = _struct(
        "t",
        {
            "c": {
                "type": "collection",
                "options": {"capped": True, "size": 20},
                "indexes": {"a": {**idx, "sparse": True}, "b": {"name": "b", "key": {"b": 1}}},
            }
        },
    )
    rows = {(r["collection"], r["item"], r["change"]) for r in structure.diff(src, tgt)}
    assert rows == {
        ("c", "option size", "different"),
        ("c", "index a", "different"),
        ("c", "index b", "extra"),
        ("gone", "collection", "missing"),
    }
    assert structure.diff(src, src) == []


def test_views_are_created_after_their_sources():
    colls = {
        "v2": {"type": "view", "options": {"viewOn": "v1"}},
        "v1": {"type": "view", "options": {"viewOn": "base"}},
        "base": {"type": "collection", "options": {}},
        "ts": {"type": "timeseries", "options": {}},
    }
    assert structure.creation_order(colls) == ["base", "ts", "v1", "v2"]


def test_collection_options_drop_server_added_fields():
    opts = structure.normalize_options(
        {
            "timeseries": {"timeField": "t", "metaField": "m", "granularity": "hours", "bucketMaxSpanSeconds": 2592000},
            "clusteredIndex": {"v": 2, "key": {"_id": 1.0}, "name": "_id_", "unique": True},
            "capped": False,
            "autoIndexId": True,
            "uuid": "x",
            "validator": {},
            "validationLevel": "strict",
            "validationAction": "error",  # the defaults = unset
        }
    )
    assert opts == {
        "timeseries": {"timeField": "t", "metaField": "m", "granularity": "hours"},
        "clusteredIndex": {"key": {"_id": 1}, "name": "_id_", "unique": True},
    }


@pytest.mark.parametrize(
    "source,target,suffix,message",
    [
        ("alphasync_db", "alphasync_db", "", "suffix is empty"),
        ("alphasync_db", "alphasync_db", "_dev", "is the source"),
        ("alphasync_db", "alphasync_db_copy", "_dev", "does not end with"),
        ("alphasync_db_dev", "alphasync_db_dev_dev", "_dev", "already ends with"),
    ],
)
def test_name_guards(source, target, suffix, message):
    with pytest.raises(clone.GuardError, match=message):
        clone.check_names(source, target, suffix)


def test_a_changed_view_is_fixed_with_collmod_of_viewon_and_pipeline():
    """(Plan level: the wire server acknowledges collMod on a view but does not apply it.)"""
    view = {"type": "view", "options": {"viewOn": "users", "pipeline": [{"$match": {"active": True}}]}, "indexes": {}}
    old = {"type": "view", "options": {"viewOn": "users", "pipeline": [{"$match": {"active": False}}]}, "indexes": {}}
    rows = clone.plan_clone(_struct("s", {"v": view}), _struct("t", {"v": old}))
    assert [(r["action"], r["spec"]) for r in rows] == [("collMod", view["options"])]
