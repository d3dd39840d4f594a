"""Structure clone against the MongoDB wire server: equality, zero documents, idempotency, dry run, guards, drift."""

from __future__ import annotations

import os

import pytest

from ferry.devclone import clone, drift, structure
from tests.devclone.conftest import dumps, load_fixture

pytestmark = pytest.mark.integration


def _struct_sans_name(db) -> dict:
    return structure.read_structure(db)["collections"]


def _total_docs(db) -> int:
    return sum(db[c["name"]].count_documents({}) for c in db.list_collections() if c.get("type") != "view")


def test_clone_to_another_server_copies_every_structure_and_no_documents(
    source_db, mongo_local, stack, command_recorder
):
    client, rec = command_recorder(stack.mongo_local_uri)
    target = client[source_db.name + "_dev"]
    res = clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    assert res.failures == []

    src, tgt = _struct_sans_name(source_db), _struct_sans_name(mongo_local[target.name])
    assert structure.diff({"collections": src}, {"collections": tgt}) == [], dumps(tgt)
    # users has a default collation: its indexes listed without one are sent with the simple one (as mongorestore
    # does). The bundled server lists no inherited collation (mongod does, so there the source lists it and it is
    # copied as it is) and shows the simple one it was sent; listIndexes on mongod leaves the simple one out.
    bundled = not os.environ.get("MONGO_URI")
    assert not bundled or {n: i.get("collation") for n, i in tgt["users"]["indexes"].items()} == {
        "_id_": None,
        "followers_idx": {"locale": "simple"},
        "last_seen_hidden": {"locale": "simple"},
        "name_fr": {"locale": "fr", "strength": 1},
        "users_email_unique": {"locale": "simple"},
        "users_handle_unique": {"locale": "simple"},
    }
    for spec in tgt["users"]["indexes"].values():
        if spec.get("collation") == {"locale": "simple"}:
            del spec["collation"]
    assert src == tgt
    # the kinds we meant to cover really are there
    assert src["metrics"]["options"]["timeseries"]["granularity"] == "minutes"
    assert src["sessions"]["options"]["clusteredIndex"]["unique"] is True
    assert src["audit_log"]["options"] == {"capped": True, "size": 65536, "max": 1000}
    assert src["users"]["options"]["collation"]["locale"] == "en"
    assert src["active_user_emails"]["options"]["viewOn"] == "active_users"
    assert tgt["users"]["indexes"]["last_seen_hidden"]["hidden"] is True
    assert tgt["orders"]["indexes"]["attrs_wildcard"]["key"] == {"$**": 1}
    assert tgt["places"]["indexes"]["loc_2dsphere"]["key"] == {"loc": "2dsphere"}
    assert _total_docs(source_db) == 31 and _total_docs(mongo_local[target.name]) == 0

    # commands: one create per collection/view, ONE createIndexes per collection with indexes
    writes = rec.writes()
    creates = [c["create"] for n, _, c in writes if n == "create"]
    assert creates.index("active_user_emails") > creates.index("active_users") > creates.index("users")
    batches = {c["createIndexes"]: [i["name"] for i in c["indexes"]] for n, _, c in writes if n == "createIndexes"}
    assert batches["orders"] == ["attrs_wildcard", "customer_created", "expires_ttl", "open_orders"]  # TTL/partial last
    assert batches["users"] == [
        "followers_idx",
        "last_seen_hidden",
        "name_fr",
        "users_email_unique",
        "users_handle_unique",
    ]
    assert len(writes) == len(src) + len(batches) == res.write_commands
    assert {n for n, _, _ in writes} == {"create", "createIndexes"}

    # second run: nothing to create
    rec.clear()
    again = clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    assert rec.writes() == [] and again.failures == [] and again.write_commands == 0
    assert {r["action"] for r in again.rows} == {"exists"}


def test_dry_run_writes_nothing_and_prints_the_plan(source_db, stack, command_recorder, mongo_prod):
    client, rec = command_recorder(stack.mongo_prod_uri)
    target = client[source_db.name + "_dev"]
    target.create_collection("users")  # partly there already
    rec.clear()
    res = clone.clone_database(client[source_db.name], target, clone.CloneOptions(dry_run=True))
    assert rec.writes() == []
    assert mongo_prod[target.name].list_collection_names() == ["users"]
    acts = {(r["collection"], r["object"]): r["action"] for r in res.rows}
    assert acts[("orders", "orders")] == "create" and acts[("users", "users")] == "recreate"  # empty
    assert acts[("users", "users_email_unique")] == "create"
    from ferry import report

    text = report.table(clone.report_rows(res))
    assert "| database" in text and "dry run" in text
    assert '{"key": {"customer_id": 1, "created_at": -1}}' in text  # compound key order kept
    assert '{"key": {"email": 1}, "unique": true}' in text  # options shown


def test_guards_refuse_a_target_with_documents(source_db, mongo_prod, stack, command_recorder):
    mongo_prod[source_db.name + "_dev"].users.insert_one({"email": "real@data"})
    client, rec = command_recorder(stack.mongo_prod_uri)
    with pytest.raises(clone.GuardError, match="already holds documents in \\['users'\\]"):
        clone.preflight(client, client, [source_db.name], clone.CloneOptions(dry_run=False))
    with pytest.raises(clone.GuardError, match="already holds documents"):
        clone.clone_database(client[source_db.name], client[source_db.name + "_dev"], clone.CloneOptions(dry_run=False))
    assert rec.writes() == []
    opts = clone.CloneOptions(dry_run=False, allow_nonempty_target=True)
    assert clone.preflight(client, client, [source_db.name], opts) == [(source_db.name, source_db.name + "_dev")]
    res = clone.clone_database(client[source_db.name], client[source_db.name + "_dev"], opts)
    # users already existed without the source's collation: reported, not silently left different
    assert [f["object"] for f in res.failures] == ["users options"]
    assert [r["detail"] for r in res.rows if r["object"] == "users options" and r["action"] == "differs"] == [
        "['collation'] differ (drop and re-create the collection to change)"
    ]
    assert mongo_prod[source_db.name + "_dev"].users.count_documents({}) == 1  # never deleted


def test_rejected_index_is_reported_with_the_server_error_and_the_rest_is_created(
    mongo_prod, mongo_db_name, stack, command_recorder
):
    """Text index from a recorded Atlas listIndexes: the wire server answers code 67; every other index lands."""
    specs = [structure.normalize_index(i) for i in load_fixture("alphasync_db.events.listIndexes.json")["indexes"]]
    src = {
        "database": mongo_db_name,
        "collections": {"events": {"type": "collection", "options": {}, "indexes": {s["name"]: s for s in specs}}},
    }
    client, rec = command_recorder(stack.mongo_prod_uri)
    target = client[mongo_db_name + "_dev"]
    rows = clone.plan_clone(src, structure.read_structure(target))
    failures, sent = clone.apply_plan(target, rows)
    created = structure.read_structure(mongo_prod[target.name])["collections"]["events"]["indexes"]
    if not failures:  # MONGO_URI points at a real mongod: everything, text index included, lands
        assert set(created) == {s["name"] for s in specs}
        pytest.skip("server supports text indexes: the rejection path needs the wire server")
    assert [(f["object"], "code 67" in f["error"]) for f in failures] == [("name_text_description_text", True)]
    assert set(created) == {s["name"] for s in specs} - {"name_text_description_text"}
    assert created["title_ci"]["collation"]["strength"] == 2
    batches = [c for n, _, c in rec.writes() if n == "createIndexes"]
    assert len(batches[0]["indexes"]) == 11 and all(len(b["indexes"]) == 1 for b in batches[1:])
    with pytest.raises(clone.CloneFailed, match="name_text_description_text: text indexes are not supported"):
        raise clone.CloneFailed(failures)


def test_drop_extra_indexes(source_db, mongo_prod):
    target = mongo_prod[source_db.name + "_dev"]
    clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    target.users.create_index("scratch", name="scratch_1")
    target.users.drop_index("followers_idx")
    target.users.create_index([("followers", 1)], name="followers_idx")  # same name, other direction
    res = clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    assert [(f["object"], "drop_extra_indexes" in f["error"]) for f in res.failures] == [("followers_idx", True)]
    assert "scratch_1" in target.users.index_information()  # extra indexes are kept by default
    res = clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False, drop_extra_indexes=True))
    assert res.failures == []
    assert structure.diff(structure.read_structure(source_db), structure.read_structure(target)) == []


def test_drift_detects_dropped_added_and_changed_then_repairs(source_db, mongo_prod):
    target = mongo_prod[source_db.name + "_dev"]
    clone.clone_database(source_db, target, clone.CloneOptions(dry_run=False))
    assert drift.check(source_db, target).rows == []

    target.users.drop_index("followers_idx")  # dropped from the clone
    source_db.orders.create_index([("region", 1), ("total", -1)], name="region_total")  # added to prod
    source_db.command(
        "collMod", "users", validator={"$jsonSchema": {"bsonType": "object", "required": ["email", "handle"]}}
    )
    target.create_collection("scratch")
    target.command("collMod", "places", validator={"loc": {"$exists": True}})  # validator only in the clone

    res = drift.check(source_db, target)
    assert {(r["collection"], r["item"], r["change"]) for r in res.rows} == {
        ("users", "index followers_idx", "missing"),
        ("orders", "index region_total", "missing"),
        ("users", "option validator", "different"),
        ("places", "option validator", "extra"),
        ("scratch", "collection", "extra"),
    }
    assert res.drifted
    rows = drift.table_rows(res)
    assert rows[0]["source"] == source_db.name and "in target" in rows[0]

    fixed = drift.check(source_db, target, repair=True)
    assert fixed.failures == []
    assert {(r["object"], r["status"]) for r in fixed.repaired} == {
        ("followers_idx", "created"),
        ("region_total", "created"),
        ("users options", "modified"),
        ("places options", "modified"),
    }
    assert [(r["collection"], r["change"]) for r in fixed.remaining] == [("scratch", "extra")]  # never dropped
    assert target.users.count_documents({}) == 0


def test_a_missing_source_is_refused_not_reported_as_clean(mongo_prod, mongo_db_name):
    with pytest.raises(clone.GuardError, match="has no collections"):
        drift.check(mongo_prod[mongo_db_name], mongo_prod[mongo_db_name + "_dev"])
    with pytest.raises(clone.GuardError, match="has no collections"):
        clone.clone_database(mongo_prod[mongo_db_name], mongo_prod[mongo_db_name + "_dev"], clone.CloneOptions())


def test_clone_and_repair_emit_asset_events_for_the_clone_collections_they_changed(
    source_db, mongo_prod, monkeypatch, tmp_path
):
    """Through the task's ``AssetAlias(runs.TARGET_ALIAS)`` outlet: mongodb://host:port/<clone>/<collection> for
    what a clone created and what a repair changed; a dry run and a clean check emit nothing."""
    from airflow.sdk import AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from ferry import audit
    from ferry.devclone import runs

    monkeypatch.setenv("FERRY_STORAGE_URL", str(tmp_path))
    run = audit.Run(dag_id="t", run_id="r1")
    dev = source_db.name + "_dev"
    host, port = mongo_prod.address

    def events(fn, *args, **kwargs) -> set[str]:
        ctx = {"outlet_events": OutletEventAccessors()}
        fn(mongo_prod, mongo_prod, [source_db.name], *args, run=run, context=ctx, **kwargs)
        return {e.dest_asset_key.uri for e in ctx["outlet_events"][AssetAlias(runs.TARGET_ALIAS)].asset_alias_events}

    assert events(runs.clone_structure, clone.CloneOptions(dry_run=True)) == set()
    cloned = {c["name"] for c in source_db.list_collections()}
    assert events(runs.clone_structure, clone.CloneOptions(dry_run=False)) == {
        f"mongodb://{host}:{port}/{dev}/{c}" for c in cloned
    }
    repair = runs.DriftOptions(suffix="_dev", repair=True, include_search=False)
    assert events(runs.drift_check, repair) == set()
    mongo_prod[dev].orders.drop_index("customer_created")
    assert events(runs.drift_check, repair) == {f"mongodb://{host}:{port}/{dev}/orders"}


def test_a_clone_waits_for_the_run_writing_the_same_clone(source_db, mongo_prod, monkeypatch):
    """One writer per clone: dev_db_structure_clone and a drift repair of one target never interleave."""
    from ferry import audit, locks
    from ferry.devclone import runs
    from ferry.mongo import meta_db

    dev = source_db.name + "_dev"
    assert locks.try_acquire(
        mongo_prod[meta_db(dev)], f"devclone:{dev}", owner="repair-run", dag_id="dev_db_drift_check"
    )
    monkeypatch.setenv("FERRY_LOCK_WAIT_SECONDS", "1")
    run = audit.Run(dag_id="dev_db_structure_clone", run_id="clone-run")
    with pytest.raises(locks.Locked, match="repair-run"):
        runs.clone_structure(mongo_prod, mongo_prod, [source_db.name], clone.CloneOptions(dry_run=False), run=run)
    assert dev not in mongo_prod.list_database_names()  # nothing written
    locks.release(mongo_prod[meta_db(dev)], f"devclone:{dev}", owner="repair-run")
    runs.clone_structure(mongo_prod, mongo_prod, [source_db.name], clone.CloneOptions(dry_run=False), run=run)
    assert mongo_prod[meta_db(dev)][locks.LOCKS].count_documents({}) == 0  # released


def test_a_refused_clone_or_repair_of_a_missing_source_writes_nothing(mongo_prod, mongo_db_name, monkeypatch, tmp_path):
    """Checked before the lock is taken: no ``<db>_dev__ferry`` with an empty ``_ferry_locks`` is left behind."""
    from ferry import audit
    from ferry.devclone import runs
    from ferry.mongo import meta_db

    monkeypatch.setenv("FERRY_STORAGE_URL", str(tmp_path))
    run = audit.Run(dag_id="t", run_id="r-missing")
    before = set(mongo_prod.list_database_names())
    with pytest.raises(clone.GuardError, match=f"source database '{mongo_db_name}' has no collections"):
        runs.clone_structure(mongo_prod, mongo_prod, [mongo_db_name], clone.CloneOptions(dry_run=False), run=run)
    with pytest.raises(clone.GuardError, match="has no collections"):
        runs.drift_check(mongo_prod, mongo_prod, [mongo_db_name], runs.DriftOptions(repair=True), run=run)
    assert set(mongo_prod.list_database_names()) == before
    assert meta_db(mongo_db_name + "_dev") not in mongo_prod.list_database_names()


def test_drift_of_an_extra_index_names_the_fix_that_works(source_db, mongo_prod, monkeypatch, tmp_path):
    """repair never drops what only the clone has: the message points at drop_extra_indexes, not at repair."""
    from ferry import audit
    from ferry.devclone import runs
    from ferry.errors import FerryError

    monkeypatch.setenv("FERRY_STORAGE_URL", str(tmp_path))
    run = audit.Run(dag_id="t", run_id="r-extra")
    runs.clone_structure(mongo_prod, mongo_prod, [source_db.name], clone.CloneOptions(dry_run=False), run=run)
    mongo_prod[source_db.name + "_dev"].orders.create_index("only_in_the_clone")
    for repair in (False, True):
        with pytest.raises(FerryError) as err:
            runs.drift_check(mongo_prod, mongo_prod, [source_db.name], runs.DriftOptions(repair=repair), run=run)
        msg = str(err.value)
        assert "only_in_the_clone_1: extra" in msg and "drop_extra_indexes=true" in msg
        assert "rerun with repair=true" not in msg
    mongo_prod[source_db.name + "_dev"].orders.drop_index("customer_created")
    with pytest.raises(FerryError, match="rerun with repair=true to create what is missing; what only the clone"):
        runs.drift_check(mongo_prod, mongo_prod, [source_db.name], runs.DriftOptions(), run=run)
