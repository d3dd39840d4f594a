"""The S3 export: a full export, then deltas on it from incremental runs; what a reader assembles equals the
target (real PostgreSQL, the MongoDB wire server, moto S3)."""

from __future__ import annotations

import pytest

from ferry.etl import backup, publish
from ferry.etl.names import meta_db
from tests.etl.conftest import run_etl

pytestmark = pytest.mark.integration


def _push(client, db, s3, bucket, out, run, full=False):
    loaded = out["load"]
    full = full or loaded["strategy"] != "incremental"
    names = list(loaded["collections"])
    base = f"s3://{bucket}/processed/{db}/{run}"
    return publish.push(client, db, names, s3, base, version=out["backup"]["_id"], full=full)


def _assert_assembles(client, db, s3, bucket, pushed):
    got = publish.assemble(bucket, pushed["manifest"], s3=s3)
    for name in ("accounts", "campaigns"):
        assert got[name] == {d["_id"]: d for d in client[db][name].find()}, name


def test_incremental_exports_are_deltas_that_assemble_into_the_target(
    demo_pg, mongo_local, mongo_db_name, s3, s3_bucket, tmp_path
):
    conn, db = demo_pg.conn, mongo_db_name
    first = _push(mongo_local, db, s3, s3_bucket, run_etl(conn, mongo_local, db, tmp_path, run_id="r1"), "r1")
    assert first["kind"] == "full" and first["collections"]["campaigns"] == demo_pg.counts["campaigns"]
    conn.execute(
        "UPDATE campaigns SET name = 'renamed' WHERE id = 4; DELETE FROM line_items WHERE campaign_id = 9;"
        "DELETE FROM campaign_tags WHERE campaign_id = 9; DELETE FROM campaigns WHERE id = 9;"
        "INSERT INTO campaigns (id, account_id, name, status) VALUES (901, 1, 'new', 'live')"
    )
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", run_id="r2")
    second = _push(mongo_local, db, s3, s3_bucket, out, "r2")
    assert second["kind"] == "delta" and second["collections"] == {"accounts": 0, "campaigns": 3}
    _assert_assembles(mongo_local, db, s3, s3_bucket, second)
    # a run whose export did not happen (push_to_s3 off, or it failed): the next delta covers its changes too
    conn.execute("UPDATE accounts SET name = 'A2' WHERE id = 2")
    conn.commit()
    run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", run_id="r3")
    conn.execute("UPDATE campaigns SET name = 'again' WHERE id = 5")
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", run_id="r4")
    fourth = _push(mongo_local, db, s3, s3_bucket, out, "r4")
    assert fourth["kind"] == "delta" and fourth["collections"]["accounts"] == 1
    manifest = publish._read_json(f"s3://{s3_bucket}/{fourth['manifest']}", s3)
    assert manifest["base"] == first["manifest"] and manifest["chain"] == [second["manifest"], fourth["manifest"]]
    _assert_assembles(mongo_local, db, s3, s3_bucket, fourth)
    # asked for, a full export; a rollback since the last export makes the next one full too
    assert _push(mongo_local, db, s3, s3_bucket, out, "r4-full", full=True)["kind"] == "full"
    meta = mongo_local[meta_db(db)]
    backup.restore(mongo_local, meta, out["backup"]["_id"])
    conn.execute("UPDATE campaigns SET name = 'after rollback' WHERE id = 6")
    conn.commit()
    out = run_etl(conn, mongo_local, db, tmp_path, strategy="incremental", run_id="r5")
    fifth = _push(mongo_local, db, s3, s3_bucket, out, "r5")
    assert fifth["kind"] == "full"
    _assert_assembles(mongo_local, db, s3, s3_bucket, fifth)
