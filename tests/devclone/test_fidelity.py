"""Dev clone fidelity on recorded real-world index metadata (``fixtures/real/SOURCES.md`` names each file's source).

Plan level where the wire server cannot hold the structure (hashed, geoHaystack, ``""`` keys, 2dsphere cell
levels); live against it for the rest: what is sent is read from a command listener, what landed from
``listIndexes``.
"""

from __future__ import annotations

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from ferry.devclone import clone, drift, structure
from ferry.mongo import index_spec
from tests.devclone.conftest import load_fixture


def _raw(name: str) -> list[dict]:
    data = load_fixture(f"real/{name}")
    return data["indexes"] if isinstance(data, dict) else data


def _source(coll: str, raws: list[dict]) -> dict:
    """The structure ``read_structure`` gives for one collection holding ``raws``."""
    indexes, converted = structure.read_indexes(raws)
    entry = {"type": "collection", "options": {}, "indexes": indexes}
    if converted:
        entry["legacy_keys"] = converted
    return {"database": "src", "collections": {coll: entry}}


def _planned(coll: str, raws: list[dict], target: dict | None = None, **kw) -> tuple[list[dict], dict]:
    """Plan rows onto ``target`` (default: an empty database) and the createIndexes command they give."""
    rows = clone.plan_clone(_source(coll, raws), target or {"database": "t", "collections": {}}, **kw)
    cmd = clone.create_indexes_command(
        coll, [r["spec"] for r in rows if r["kind"].startswith("index") and r["action"] == "create"]
    )
    return rows, cmd


def _pairs(doc) -> list[tuple[str, object, str]]:
    """A document's ``(field, value, type)`` in order: what order and BSON types the server gets."""
    return [(k, v, type(v).__name__) for k, v in doc.items()]


def _build(db, coll: str, raws: list[dict]) -> None:
    """Create ``coll`` on a live source with the fixture's indexes (as mongorestore would send them)."""
    db.create_collection(coll)
    db.command({"createIndexes": coll, "indexes": [index_spec(r) for r in raws if r["name"] != "_id_"]})


def _sent(rec, command: str) -> list[dict]:
    return [c for n, _, c in rec.writes() if n == command]


# --------------------------------------------------------------------------- plan level


def test_legacy_key_values_are_converted_as_mongorestore_does_and_noted_in_the_plan():
    """mongo-tools' indextestdump: {a: 1.0, b: true, c: Decimal128("0"), d: ""} and the unknown option safe: true."""
    rows, cmd = _planned("test_collection", _raw("indextest.test_collection.metadata.json"))
    assert cmd == {
        "createIndexes": "test_collection",
        "indexes": [{"key": {"a": 1.0, "b": 1, "c": 1, "d": 1}, "name": "a_1_b_true", "safe": True}],
    }
    spec = cmd["indexes"][0]
    assert _pairs(spec["key"]) == [("a", 1.0, "float"), ("b", 1, "int"), ("c", 1, "int"), ("d", 1, "int")]
    assert list(spec) == ["key", "name", "safe"]  # v and ns dropped, the unknown option carried
    row = next(r for r in rows if r["object"] == "a_1_b_true")
    assert row["note"] == (
        'legacy key values converted as mongorestore does: b: true → 1; c: {"$numberDecimal": "0"} → 1; d: "" → 1'
    )
    table = clone.report_rows(clone.CloneResult("src", "t", rows=rows))
    assert [r["note"] for r in table if r["object"] == "a_1_b_true"] == [row["note"]]


def test_keys_that_become_equal_after_conversion_are_all_planned():
    """mongo-tools' duplicate_index_key: {foo: ""} becomes {foo: 1}, the key of two other indexes; mongorestore
    skips those, Ferry sends them and reports what the server answers (see the live test below)."""
    rows, cmd = _planned("duplicate_index_key", _raw("indextest.duplicate_index_key.metadata.json"))
    assert [(i["name"], _pairs(i["key"])) for i in cmd["indexes"]] == [
        ("foo_", [("foo", 1, "int")]),
        ("foo_1", [("foo", 1, "int")]),
        ("foo_1.0", [("foo", 1.0, "float")]),
        ("foo_2", [("foo", 2, "int")]),
    ]
    assert {r["object"]: r["note"] for r in rows if r["note"]} == {
        "foo_": 'legacy key values converted as mongorestore does: foo: "" → 1'
    }


def test_2dsphere_cell_levels_are_carried_and_compared():
    """finestIndexedLevel / coarsestIndexedLevel (mongodb/mongo jstests geo_s2index.js) are not in Ferry's old
    allow-list: they are sent, and a clone without them (or with other levels) is drift."""
    raws = _raw("geo_s2index.getIndexes.json")
    _, cmd = _planned("places", raws)
    assert cmd["indexes"] == [
        {
            "key": {"loc": "2dsphere"},
            "name": "loc_2dsphere",
            "finestIndexedLevel": 30,
            "coarsestIndexedLevel": 0,
            "2dsphereIndexVersion": 3,
        }
    ]
    src = _source("places", raws)
    defaults = {"v": 2, "key": {"loc": "2dsphere"}, "name": "loc_2dsphere", "2dsphereIndexVersion": 3}
    rows = structure.diff(src, _source("places", [raws[0], defaults]))
    assert [(r["item"], r["change"], r["how"]) for r in rows] == [
        ("index loc_2dsphere", "different", "coarsestIndexedLevel, finestIndexedLevel")
    ]
    as_doubles = {**raws[1], "finestIndexedLevel": 30.0, "coarsestIndexedLevel": Int64(0)}
    assert structure.diff(src, _source("places", [raws[0], as_doubles])) == []  # equal meaning
    plan, _ = _planned("places", raws, _source("places", [raws[0], defaults]))
    assert [(r["action"], r["detail"]["differs"]) for r in plan if r["object"] == "loc_2dsphere"] == [
        ("differs", "coarsestIndexedLevel, finestIndexedLevel")
    ]


def test_hashed_and_geohaystack_specs_are_planned_exactly():
    """What the wire server cannot hold (code 67): hashed on a dotted path, and a geoHaystack compound key."""
    _, hashed = _planned("hashedIndexes", _raw("test.hashedIndexes.metadata.json"))
    assert [(i["name"], _pairs(i["key"])) for i in hashed["indexes"]] == [
        ("a.a_1", [("a.a", 1, "int")]),
        ("a.b_hashed", [("a.b", "hashed", "str")]),
        ("b_hashed", [("b", "hashed", "str")]),
    ]
    # onto a 4.4 server, which still builds geoHaystack
    rows, haystack = _planned("foo", _raw("geohaystack_test.foo.metadata.json"), target_version=(4, 4))
    assert haystack["indexes"] == [{"key": {"a": "geoHaystack", "f": 1.0}, "name": "f_1"}]
    assert _pairs(haystack["indexes"][0]["key"]) == [("a", "geoHaystack", "str"), ("f", 1.0, "float")]
    assert [r["kind"] for r in rows if r["object"] == "f_1"] == ["index/geo"]


@pytest.mark.parametrize("version", [None, (5, 0), (8, 0)], ids=["unknown", "5.0", "8.0"])
def test_geohaystack_is_reported_unsupported_on_mongodb_5_and_never_sent(version):
    """mongorestore refuses it up front on MongoDB >= 5.0; the server would answer 'Unknown index plugin' (67)."""
    rows, cmd = _planned("foo", _raw("geohaystack_test.foo.metadata.json"), target_version=version)
    [row] = [r for r in rows if r["object"] == "f_1"]
    assert row["action"] == "unsupported" and cmd["indexes"] == []
    assert "removed in MongoDB 5.0" in row["note"] and "2d index" in row["note"] and "2dsphere" in row["note"]
    index_rows = [r for r in rows if r["kind"].startswith("index")]
    assert clone.apply_plan(None, index_rows, database="src_dev") == ([], 0)  # no index command is sent
    result = clone.CloneResult("src", "src_dev", rows=rows)
    assert result.summary()["unsupported"] == 1 and result.summary()["create"] == 1  # the collection only


def test_an_index_in_a_collection_with_a_default_collation_is_sent_with_the_simple_one():
    """mongo-tools' index_collation dump: without collation: {locale: simple} the text index would inherit en_US
    (and a text index with a non-simple collation is refused)."""
    data = load_fixture("real/test.foo.index_collation.metadata.json")
    src = _source("foo", data["indexes"])
    src["collections"]["foo"]["options"] = structure.normalize_options(data["options"])
    rows = clone.plan_clone(src, {"database": "t", "collections": {}})
    [row] = [r for r in rows if r["object"] == "example_text"]
    assert row["action"] == "create" and row["spec"]["collation"] == {"locale": "simple"}
    assert "inherit the collection's default collation (en_US)" in row["note"]
    assert "collation" not in src["collections"]["foo"]["indexes"]["example_text"]  # the source spec is unchanged
    cmd = clone.create_indexes_command("foo", [row["spec"]])
    assert list(cmd["indexes"][0])[-1] == "collation"
    # the clone's listIndexes may show the simple collation or leave it out: the same index either way
    landed = {**row["spec"], "collation": {"locale": "simple"}}
    target = {
        "database": "t",
        "collections": {"foo": {**src["collections"]["foo"], "indexes": {"example_text": landed}}},
    }
    again = clone.plan_clone(src, target)
    assert [r["action"] for r in again if r["object"] == "example_text"] == ["exists"]
    # a collection without a default collation: indexes are sent as listed
    src["collections"]["foo"]["options"] = {}
    [row] = [r for r in clone.plan_clone(src, {"database": "t", "collections": {}}) if r["object"] == "example_text"]
    assert "collation" not in row["spec"] and row["note"] == ""


def test_compound_key_order_is_a_difference_the_plan_reports_and_recreates():
    """Compass' getIndexes fixture: the same name and options with the key's fields swapped."""
    raws = _raw("compass.fanclub.getIndexes.json")
    swapped = [
        {**r, "key": {"favorite_features": 1, "email": 1}} if r["name"] == "email_1_favorite_features_1" else r
        for r in raws
    ]
    target = _source("fanclub", swapped)
    rows, _ = _planned("fanclub", raws, target)
    assert [(r["action"], r["detail"]["differs"]) for r in rows if r["object"] == "email_1_favorite_features_1"] == [
        ("differs", "key order")
    ]
    assert {r["action"] for r in rows if r["object"] != "email_1_favorite_features_1"} == {"exists"}
    rows, _ = _planned("fanclub", raws, target, drop_extra_indexes=True)
    fix = [(r["action"], r["object"]) for r in rows if r["action"] in ("drop", "create")]
    assert fix == [("drop", "email_1_favorite_features_1"), ("create", "email_1_favorite_features_1")]
    create = next(r for r in rows if r["action"] == "create")
    assert list(create["spec"]["key"]) == ["email", "favorite_features"]
    assert [(r["item"], r["how"]) for r in structure.diff(_source("fanclub", raws), target)] == [
        ("index email_1_favorite_features_1", "key order")
    ]


# --------------------------------------------------------------------------- live, against the wire server


@pytest.mark.integration
def test_key_order_drift_is_reported_and_repaired_live(mongo_prod, mongo_db_name, stack, command_recorder):
    """Compass' fanclub indexes (all but the text index the wire server cannot hold) cloned; then the clone's
    compound key is re-created with its fields swapped under the same name."""
    raws = [r for r in _raw("compass.fanclub.getIndexes.json") if "_fts" not in r["key"]]
    _build(mongo_prod[mongo_db_name], "fanclub", raws)
    client, rec = command_recorder(stack.mongo_prod_uri)
    source, target = client[mongo_db_name], client[mongo_db_name + "_dev"]
    assert clone.clone_database(source, target, clone.CloneOptions(dry_run=False)).failures == []

    def swap():
        target.fanclub.drop_index("email_1_favorite_features_1")
        target.fanclub.create_index([("favorite_features", 1), ("email", 1)], name="email_1_favorite_features_1")
        rec.clear()

    swap()
    res = drift.check(source, target)
    assert [(r["collection"], r["item"], r["change"], r["how"]) for r in res.rows] == [
        ("fanclub", "index email_1_favorite_features_1", "different", "key order")
    ]
    assert drift.table_rows(res)[0]["in target"] == (
        '{"key": {"favorite_features": 1, "email": 1}, "name": "email_1_favorite_features_1"}'
    )
    kept = clone.clone_database(source, target, clone.CloneOptions(dry_run=False))  # no drop_extra_indexes
    assert [f["object"] for f in kept.failures] == ["email_1_favorite_features_1"] and rec.writes() == []

    fixed = drift.check(source, target, repair=True)
    assert [(r["action"], r["status"]) for r in fixed.repaired] == [("drop", "dropped"), ("create", "created")]
    assert fixed.remaining == [] and fixed.failures == []
    assert [(n, c.get("index")) for n, _, c in rec.writes()] == [
        ("dropIndexes", "email_1_favorite_features_1"),
        ("createIndexes", None),
    ]
    sent = _sent(rec, "createIndexes")[0]["indexes"]
    assert [(i["name"], list(i["key"])) for i in sent] == [
        ("email_1_favorite_features_1", ["email", "favorite_features"])
    ]
    keys = {i["name"]: list(i["key"]) for i in mongo_prod[target.name].fanclub.list_indexes()}
    assert keys["email_1_favorite_features_1"] == ["email", "favorite_features"]

    swap()  # the same through the clone DAG's drop_extra_indexes
    res = clone.clone_database(source, target, clone.CloneOptions(dry_run=False, drop_extra_indexes=True))
    assert res.failures == [] and [n for n, _, _ in rec.writes()] == ["dropIndexes", "createIndexes"]
    assert drift.check(source, target).rows == []


@pytest.mark.integration
def test_partial_filter_order_survives_the_clone_and_its_drift_is_repaired(
    mongo_prod, mongo_db_name, stack, command_recorder
):
    """mongo-tools' dump_ordered_partial_index: a ten-field partialFilterExpression keeps its order."""
    raws = _raw("ordered_partial_index.foo.metadata.json")
    order = list(raws[1]["partialFilterExpression"])
    _build(mongo_prod[mongo_db_name], "foo", raws)
    client, rec = command_recorder(stack.mongo_prod_uri)
    source, target = client[mongo_db_name], client[mongo_db_name + "_dev"]
    assert clone.clone_database(source, target, clone.CloneOptions(dry_run=False)).failures == []
    assert list(_sent(rec, "createIndexes")[0]["indexes"][0]["partialFilterExpression"]) == order
    landed = {i["name"]: i for i in mongo_prod[target.name].foo.list_indexes()}["apfe"]
    assert list(landed["partialFilterExpression"]) == order and _pairs(landed["key"]) == [("a", 1.0, "float")]
    assert drift.check(source, target).rows == []

    target.foo.drop_index("apfe")
    reversed_pfe = {k: raws[1]["partialFilterExpression"][k] for k in reversed(order)}
    spec = {"key": {"a": 1.0}, "name": "apfe", "partialFilterExpression": reversed_pfe}
    target.command({"createIndexes": "foo", "indexes": [spec]})  # (pymongo's create_index refuses a 1.0 key)
    rec.clear()
    res = drift.check(source, target, repair=True)
    assert [(r["item"], r["change"], r["how"]) for r in res.rows] == [
        ("index apfe", "different", "partialFilterExpression order")
    ]
    assert res.remaining == [] and [n for n, _, _ in rec.writes()] == ["dropIndexes", "createIndexes"]
    landed = {i["name"]: i for i in mongo_prod[target.name].foo.list_indexes()}["apfe"]
    assert list(landed["partialFilterExpression"]) == order


@pytest.mark.integration
def test_validator_order_drift_is_repaired_with_collmod(source_db, mongo_prod):
    target = mongo_prod[source_db.name + "_dev"]
    clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    target.command("collMod", "users", validator={"$jsonSchema": {"required": ["email"], "bsonType": "object"}})
    res = drift.check(source_db, target, repair=True)
    assert [(r["item"], r["change"], r["how"]) for r in res.rows] == [("option validator", "different", "order")]
    assert [(r["action"], r["status"]) for r in res.repaired] == [("collMod", "modified")] and res.remaining == []
    info = next(target.list_collections(filter={"name": "users"}))
    assert list(info["options"]["validator"]["$jsonSchema"]) == ["bsonType", "required"]


@pytest.mark.integration
def test_legacy_keys_are_sent_converted_live(mongo_prod, mongo_db_name, stack, command_recorder):
    """indextestdump's key without the two parts the wire server refuses to hold (``d: ""`` and ``safe``)."""
    raw = dict(_raw("indextest.test_collection.metadata.json")[1])
    raw["key"] = {k: v for k, v in raw["key"].items() if k != "d"}
    raw.pop("safe")
    _build(mongo_prod[mongo_db_name], "test_collection", [raw])
    client, rec = command_recorder(stack.mongo_prod_uri)
    source, target = client[mongo_db_name], client[mongo_db_name + "_dev"]
    res = clone.clone_database(source, target, clone.CloneOptions(dry_run=False))
    assert res.failures == []
    assert [r["note"] for r in res.rows if r["object"] == "a_1_b_true"] == [
        'legacy key values converted as mongorestore does: b: true → 1; c: {"$numberDecimal": "0"} → 1'
    ]
    sent = _sent(rec, "createIndexes")[0]["indexes"]
    assert [_pairs(i["key"]) for i in sent] == [[("a", 1.0, "float"), ("b", 1, "int"), ("c", 1, "int")]]
    landed = {i["name"]: i for i in mongo_prod[target.name].test_collection.list_indexes()}["a_1_b_true"]
    assert _pairs(landed["key"]) == [("a", 1.0, "float"), ("b", 1, "int"), ("c", 1, "int")]
    assert drift.check(source, target).rows == []


@pytest.mark.integration
def test_numeric_types_are_sent_as_the_source_has_them(mongo_prod, mongo_db_name, stack, command_recorder):
    """mongo-tools' test_coll_no_index_ns (1.0 and Decimal128("-1") keys), and a 2d index with 64-bit
    bits/min/max (written here: no public fixture has one)."""
    db = mongo_prod[mongo_db_name]
    _build(db, "test_coll_no_index_ns", _raw("indextest.test_coll_no_index_ns.metadata.json"))
    db.create_collection("grid")
    db.command(
        {
            "createIndexes": "grid",
            "indexes": [{"key": {"p": "2d"}, "name": "p_2d", "bits": Int64(26), "min": Int64(-500), "max": 500.0}],
        }
    )
    client, rec = command_recorder(stack.mongo_prod_uri)
    source, target = client[mongo_db_name], client[mongo_db_name + "_dev"]
    assert clone.clone_database(source, target, clone.CloneOptions(dry_run=False)).failures == []
    sent = {i["name"]: i for c in _sent(rec, "createIndexes") for i in c["indexes"]}
    assert _pairs(sent["a_1_b_true"]["key"]) == [
        ("a", 1.0, "float"),
        ("b", 1.0, "float"),
        ("c", Decimal128("-1"), "Decimal128"),
        ("d", Decimal128("-1"), "Decimal128"),
    ]
    assert [(k, type(sent["p_2d"][k]).__name__) for k in ("bits", "min", "max")] == [
        ("bits", "Int64"),
        ("min", "Int64"),
        ("max", "float"),
    ]
    landed = {i["name"]: i for i in mongo_prod[target.name].test_coll_no_index_ns.list_indexes()}
    assert [t for _, _, t in _pairs(landed["a_1_b_true"]["key"])] == ["float", "float", "Decimal128", "Decimal128"]
    assert drift.check(source, target).rows == []


@pytest.mark.integration
def test_an_option_the_server_rejects_is_reported_with_its_error(mongo_prod, mongo_db_name, stack, command_recorder):
    """The 2dsphere cell levels: a real mongod keeps them (then they must land); the wire server refuses the
    option (code 40415): the clone names the index and the server's error instead of dropping the option."""
    client, rec = command_recorder(stack.mongo_prod_uri)
    target = client[mongo_db_name + "_dev"]
    rows, _ = _planned("places", _raw("geo_s2index.getIndexes.json"))
    failures, _ = clone.apply_plan(target, rows)
    sent = _sent(rec, "createIndexes")[0]["indexes"]
    assert [(i["finestIndexedLevel"], i["coarsestIndexedLevel"]) for i in sent] == [(30, 0)]
    landed = {i["name"]: i for i in mongo_prod[target.name].places.list_indexes()}
    if not failures:  # MONGO_URI points at a real mongod
        assert (landed["loc_2dsphere"]["finestIndexedLevel"], landed["loc_2dsphere"]["coarsestIndexedLevel"]) == (30, 0)
        return
    assert [f["object"] for f in failures] == ["loc_2dsphere"]
    assert "code 40415" in failures[0]["error"] and "finestIndexedLevel" in failures[0]["error"]
    assert "loc_2dsphere" not in landed  # not created without the option


@pytest.mark.integration
def test_keys_equal_after_conversion_are_reported_with_the_server_error(
    mongo_prod, mongo_db_name, stack, command_recorder
):
    """duplicate_index_key planned onto the wire server: {foo: 1} lands as foo_ (converted from ""), the
    two indexes with the same key are refused by the server (code 85), foo_2 lands."""
    client, rec = command_recorder(stack.mongo_prod_uri)
    target = client[mongo_db_name + "_dev"]
    rows, _ = _planned("duplicate_index_key", _raw("indextest.duplicate_index_key.metadata.json"))
    failures, _ = clone.apply_plan(target, rows)
    assert sorted((f["object"], "code 85" in f["error"]) for f in failures) == [("foo_1", True), ("foo_1.0", True)]
    landed = {i["name"]: list(i["key"].items()) for i in mongo_prod[target.name].duplicate_index_key.list_indexes()}
    assert landed == {"_id_": [("_id", 1)], "foo_": [("foo", 1)], "foo_2": [("foo", 2)]}


@pytest.mark.integration
def test_a_noop_rerun_checks_each_target_collection_once(
    source_db, mongo_prod, stack, command_recorder, monkeypatch, tmp_path
):
    """One emptiness check per database: preflight's; the per-database clone does not probe again."""
    from ferry import audit
    from ferry.devclone import runs

    monkeypatch.setenv("FERRY_STORAGE_URL", str(tmp_path))
    client, rec = command_recorder(stack.mongo_prod_uri)
    opts = clone.CloneOptions(dry_run=False)
    runs.clone_structure(client, client, [source_db.name], opts, run=audit.Run(dag_id="t", run_id="r1"))
    rec.clear()
    summary = runs.clone_structure(client, client, [source_db.name], opts, run=audit.Run(dag_id="t", run_id="r2"))
    dev = source_db.name + "_dev"
    finds = [c["find"] for n, db, c in rec.commands if n == "find" and db == dev]
    plain = [c["name"] for c in mongo_prod[dev].list_collections() if c.get("type") != "view"]
    assert sorted(finds) == sorted(n for n in plain if not n.startswith("system."))  # one probe each
    assert summary[0]["write_commands"] == 0 and summary[0]["create"] == 0
    assert [n for n, db, _ in rec.writes() if db == dev] == []


@pytest.mark.integration
def test_a_rerun_after_a_kill_between_drop_and_create_finishes_the_recreate(mongo_prod, mongo_db_name):
    """The re-create of a changed index is two commands; killed after the drop, a plain rerun creates it."""
    raws = [r for r in _raw("compass.fanclub.getIndexes.json") if "_fts" not in r["key"]]
    _build(mongo_prod[mongo_db_name], "fanclub", raws)
    source, target = mongo_prod[mongo_db_name], mongo_prod[mongo_db_name + "_dev"]
    clone.clone_database(source, target, clone.CloneOptions(dry_run=False))
    target.fanclub.drop_index("seniors")
    target.fanclub.create_index([("address.city", 1), ("name", 1)], name="seniors")
    plan = clone.clone_database(source, target, clone.CloneOptions(dry_run=True, drop_extra_indexes=True)).rows
    clone.apply_plan(target, [r for r in plan if r["action"] == "drop"])  # the run dies here
    assert "seniors" not in target.fanclub.index_information()
    rerun = clone.clone_database(source, target, clone.CloneOptions(dry_run=False))
    assert [(r["object"], r["action"], r["status"]) for r in rerun.rows if r["action"] != "exists"] == [
        ("seniors", "create", "created")
    ]
    assert rerun.failures == [] and drift.check(source, target).rows == []
    landed = {i["name"]: i for i in target.fanclub.list_indexes()}["seniors"]
    assert list(landed["key"]) == ["name", "address.city"] and landed["partialFilterExpression"] == {"age": {"$gt": 50}}
