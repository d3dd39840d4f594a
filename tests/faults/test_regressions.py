"""The two failures issue 11 found, replayed with a real MongoDB server restart (SIGKILL, then a start on
the same storage path and port) in the middle of the write:

1. production_etl full refresh: after a restart during the load and a rerun, readers saw every campaign twice
   (validate ran after the swap). Now: every campaign once, and a failed check leaves the target untouched.
2. prod_promotion execute with a restart mid-run, then its rollback: 38 of 40 inserted meta summaries stayed.
   Now: zero inserted documents remain.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from ferry_dev import faults
from tests.faults.scenarios import EtlFull, Promote

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _restart_when(stack, role: str, child: faults.Child, ready, timeout: float = 60) -> bool:
    """Restart ``role``'s server as soon as ``ready()`` holds while the child still runs; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not child.wait(0.02):
        if ready():
            stack.restart_mongo(role)
            return True
    return False


@pytest.fixture
def etl(stack, tmp_path):
    sc = EtlFull(stack, tmp_path)
    spec = sc.setup()
    yield sc, spec
    sc.cleanup(spec)


def test_etl_full_refresh_with_a_server_restart_during_the_load_publishes_every_campaign_once(
    etl, stack, mongo_local, tmp_path
):
    from ferry.etl import checks, load

    sc, spec = etl
    faults.run_op("etl", spec)  # readers see a first good load
    staging = mongo_local[load.staging_db(spec["db"])]
    child = faults.Child("etl", {**spec, "run_id": "restarted"}, tmp_path / "child.log")
    child.wait_ready()
    assert _restart_when(stack, "local", child, lambda: staging.campaigns.estimated_document_count() > 0), (
        "the load ended before the restart"
    )
    child.wait(120)
    faults.run_op("etl", {**spec, "run_id": "rerun"})  # the user's rerun
    assert sc.problems(spec) == []  # every campaign once, embedded line items once, counts = source
    with stack.pg.connect(spec["pg_db"]) as conn:
        assert (
            mongo_local[spec["db"]].campaigns.count_documents({})
            == conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]
        )
    assert load.staging_db(spec["db"]) not in mongo_local.list_database_names()

    # validation happens before the swap: a load whose check fails (restart in the middle too) leaves the
    # target exactly as readers saw it, and keeps the staging database for inspection
    before = faults.mongo_bytes(mongo_local[spec["db"]], ["accounts", "campaigns"])
    with stack.pg.connect(spec["pg_db"]) as conn:  # account 3 cannot be converted: quarantined, campaigns dangle
        conn.execute("UPDATE accounts SET balance = 'NaN' WHERE id = 3")
    child = faults.Child("etl", {**spec, "run_id": "bad"}, tmp_path / "child2.log")
    child.wait_ready()
    _restart_when(stack, "local", child, lambda: staging.campaigns.estimated_document_count() > 0)
    child.wait(120)
    with pytest.raises(checks.TargetDiffers):
        faults.run_op("etl", {**spec, "run_id": "bad-rerun"})
    assert faults.mongo_bytes(mongo_local[spec["db"]], ["accounts", "campaigns"]) == before
    assert staging.accounts.count_documents({}) > 0


@pytest.fixture
def promo(stack, tmp_path):
    sc = Promote(stack, tmp_path, "skip")
    spec = sc.setup()
    with stack.mongo_client("local") as c:  # 40 more meta summaries, the case
        local = c[spec["db"]]
        company = local.companies.find_one({"domain": "c20.com"})["_id"]
        local.meta_summaries.insert_many(
            [
                {"_id": f"mx{i}", "company_id": company, "kind": f"x{i}", "text": f"t{i}", "updated_at": i}
                for i in range(40)
            ]
        )
    yield sc, spec
    sc.cleanup(spec)


def test_promotion_execute_with_a_server_restart_then_rollback_leaves_no_inserted_document(
    promo, stack, mongo_prod, tmp_path
):
    from ferry.promotion import config
    from ferry.promotion import rollback as rb

    sc, spec = promo
    prod = mongo_prod[spec["db"]]
    before = faults.mongo_digest(prod)
    spec = {**spec, "batch_size": 5}
    child = faults.Child("promote", spec, tmp_path / "child.log")
    child.wait_ready()
    intents = prod["_ferry_promotion_backups"]
    assert _restart_when(
        stack, "prod", child, lambda: intents.count_documents({"kind": "inserts", "collection": "meta_summaries"}) > 1
    ), "the promotion ended before the restart"
    child.wait(120)
    assert prod.meta_summaries.count_documents({"_id": {"$regex": "^mx"}}) > 0  # some were written
    rows = {r["collection"]: r for r in rb.rollback(faults._promotion_cfg(spec), prod, "p-first")}
    assert prod.meta_summaries.count_documents({"_id": {"$regex": "^mx"}}) == 0
    assert rows["meta_summaries"]["left"] == 0
    assert faults.mongo_digest(prod) == before  # production exactly as before the promotion
    assert prod[config.load().audit_collection].find_one({"_id": "p-first"})["status"] == "rolled_back"


def test_dev_clone_rerun_finishes_a_collection_a_server_crash_left_without_its_options(stack, mongo_prod, tmp_path):
    """Found by ``FERRY_FAULT_SEED=1889641002`` dev_clone/restart#0: the server died during the clone and came
    back with ``orders`` created but without ``changeStreamPreAndPostImages``; the rerun reported it as
    "differs" and failed. ``collMod`` sets that option in place: the rerun now finishes the clone."""
    from ferry.devclone import clone, structure
    from tests.faults.scenarios import DevClone

    sc = DevClone(stack, tmp_path)
    spec = sc.setup()
    try:
        dev = mongo_prod[spec["db"] + "_dev"]
        dev.create_collection("orders")  # what the crash left
        res = clone.clone_database(
            mongo_prod[spec["db"]], dev, clone.CloneOptions(dry_run=False, include_search_indexes=False)
        )
        assert res.failures == []
        assert {r["action"] for r in res.rows if r["collection"] == "orders" and r["kind"] == "options"} == {"collMod"}
        assert sc.problems(spec) == []
        src = structure.read_structure(mongo_prod[spec["db"]])["collections"]["orders"]["options"]
        assert structure.read_structure(dev)["collections"]["orders"]["options"] == src
    finally:
        sc.cleanup(spec)


def test_dev_clone_rerun_recreates_an_empty_collection_a_server_crash_left_with_other_options(
    stack, mongo_prod, tmp_path
):
    """Found by ``FERRY_FAULT_SEED=1557805763`` dev_clone/restart#21: the server came back with the clone's
    ``users`` present but without an option ``collMod`` cannot set (its collation); the rerun reported
    "differs" and failed. An EMPTY clone collection is now dropped and created again with the source's
    options and indexes; one holding documents is still only reported."""
    from ferry.devclone import clone, structure
    from tests.faults.scenarios import DevClone

    sc = DevClone(stack, tmp_path)
    spec = sc.setup()
    try:
        src_db, dev = mongo_prod[spec["db"]], mongo_prod[spec["db"] + "_dev"]
        dev.create_collection("users")  # what the crash left: no validator, no collation, one stray index
        dev.users.create_index("stray")
        opts = clone.CloneOptions(dry_run=False, include_search_indexes=False)
        res = clone.clone_database(src_db, dev, opts)
        assert res.failures == []
        assert [r["action"] for r in res.rows if r["collection"] == "users" and r["object"] == "users"] == ["recreate"]
        assert sc.problems(spec) == []
        want, got = structure.read_structure(src_db), structure.read_structure(dev)
        g, w = got["collections"]["users"], want["collections"]["users"]
        assert g["options"] == w["options"]

        # every index, no stray (an index sent with collation simple equals one listed without, as on mongod)
        def comparable(coll: dict) -> dict:
            return {n: structure.comparable_index(i) for n, i in coll["indexes"].items()}

        assert comparable(g) == comparable(w)

        # a clone collection holding a document is never dropped: reported, the document kept
        dev.drop_collection("users")
        dev.create_collection("users")
        dev.users.insert_one({"_id": "keep"})
        res = clone.clone_database(src_db, dev, dataclasses.replace(opts, allow_nonempty_target=True))
        acts = [r["action"] for r in res.rows if r["collection"] == "users" and r["kind"] in ("options", "collection")]
        assert "recreate" not in acts and "differs" in acts  # the collation: reported (the validator: collMod)
        assert [d["_id"] for d in dev.users.find()] == ["keep"]
    finally:
        sc.cleanup(spec)


def test_etl_publish_replaces_a_namespace_and_counts_what_readers_see(
    stack, mongo_local, command_recorder, monkeypatch
):
    """Found by ``FERRY_FAULT_SEED=1557805763`` etl_full/restart#20: after a restart and the rerun, readers saw
    ``campaigns`` with ``_id`` 1, 2 and 3 twice (63 documents, staging checked with 60). A SIGKILL in the middle
    of the bundled server's rename can leave rows under a namespace it no longer lists; a rename onto a
    *missing* target keeps them beside the new rows. The publish now creates a missing target first (so the
    rename replaces it), renames with ``w: majority, j: true``, and counts each published collection."""
    from ferry.etl import load
    from tests.conftest import unique

    db = unique("ferry_pub")
    staging = load.staging_db(db)
    mongo_local[staging].campaigns.insert_many([{"_id": i} for i in range(1, 61)])
    client, rec = command_recorder(stack.mongo_local_uri)
    load.publish(client, staging, db, ["campaigns"])
    sent = [(name, body) for name, _, body in rec.writes()]
    assert [n for n, _ in sent] == ["create", "renameCollection", "dropDatabase"]
    assert sent[1][1]["dropTarget"] is True and sent[1][1]["writeConcern"] == {"w": "majority", "j": True}
    assert mongo_local[db].campaigns.count_documents({}) == 60
    assert staging not in mongo_local.list_database_names()

    # a published collection that does not hold the staged count fails the publish loudly, naming it
    mongo_local[staging].campaigns.insert_many([{"_id": i} for i in range(1, 61)])
    from ferry import mongo

    real = mongo.swap_in

    def swap_then_damage(c, src, dst, names):
        real(c, src, dst, names)
        c[dst][names[0]].insert_one({"_id": "stray"})

    monkeypatch.setattr(mongo, "swap_in", swap_then_damage)
    try:
        with pytest.raises(load.PublishDiffers, match="campaigns: staged 60 documents, readers see 61"):
            load.publish(mongo_local, staging, db, ["campaigns"])
    finally:
        mongo_local.drop_database(db)
        mongo_local.drop_database(staging)
