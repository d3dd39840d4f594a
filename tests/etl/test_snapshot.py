"""One source snapshot for every load task of a run: the holder exports it, each task imports it, every
task reads the source as it was when the snapshot was taken, and stopping the holder ends it."""

from __future__ import annotations

import time

import pytest

from ferry.etl import load, snapshot
from tests.etl.conftest import MAPPING

pytestmark = pytest.mark.integration


def _holders(conn, run_id: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (snapshot.application_name(run_id),)
    ).fetchone()[0]


def test_tasks_read_one_snapshot_while_the_source_changes(stack, pg_database, demo_pg, mongo_local, mongo_db_name):
    import psycopg

    from ferry.etl import mapping

    admin = psycopg.connect(stack.pg.uri(pg_database), autocommit=True)
    conninfo = stack.pg.uri(pg_database)
    held = snapshot.start(conninfo, None, "run-a", admin)
    assert _holders(admin, "run-a") == 1
    # the source changes after the snapshot: a parent and its children
    admin.execute("DELETE FROM line_items WHERE campaign_id IN (SELECT id FROM campaigns WHERE account_id = 1)")
    admin.execute("DELETE FROM campaign_tags WHERE campaign_id IN (SELECT id FROM campaigns WHERE account_id = 1)")
    admin.execute("DELETE FROM campaigns WHERE account_id = 1; DELETE FROM accounts WHERE id = 1")
    eff = mapping.resolve(mapping.load(MAPPING), _snap(admin))
    from ferry.etl import acquire

    eff = acquire.add_join_keys(eff, _snap(admin))
    results = []
    for name in [c["name"] for c in eff["collections"]]:  # as the mapped load tasks do, one connection each
        with psycopg.connect(conninfo) as conn:
            snapshot.use(conn, held["snapshot"])
            results.append(
                load.load(conn, mongo_local, mongo_db_name, eff, load.Options(collections=[name], publish_now=False))
            )
    merged = load.merge(results)
    assert {k: v["documents"] for k, v in merged["collections"].items()} == {
        "accounts": demo_pg.counts["accounts"],
        "campaigns": demo_pg.counts["campaigns"],
    }
    staging = mongo_local[load.staging_db(mongo_db_name)]
    assert staging.accounts.find_one({"_id": 1}) is not None  # as of the snapshot
    mine = list(staging.campaigns.find({"accountId": 1}))
    assert len(mine) == 3 and all(c["account"] is not None and c["lineItems"] for c in mine)  # parent, children
    items = sum(len(c["lineItems"]) for c in staging.campaigns.find({}, {"lineItems": 1}))
    assert items == demo_pg.counts["line_items"]
    # a new holder for the same run ends the earlier one; stop ends it and the snapshot can't be imported
    again = snapshot.start(conninfo, None, "run-a", admin)
    assert again["snapshot"] != held["snapshot"] and _holders(admin, "run-a") == 1
    assert snapshot.stop(admin, "run-a") == 1
    for _ in range(50):
        if _holders(admin, "run-a") == 0:
            break
        time.sleep(0.1)
    assert _holders(admin, "run-a") == 0
    with psycopg.connect(conninfo) as conn, pytest.raises(snapshot.SnapshotGone, match="is gone"):
        snapshot.use(conn, again["snapshot"])
    admin.close()


def _snap(conn):
    from ferry.etl import schema

    return schema.snapshot(conn)
