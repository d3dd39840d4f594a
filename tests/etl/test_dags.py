"""production_etl and production_etl_rollback end to end with dag.test() on the demo schema."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ferry import hashing
from ferry.etl import snapshot
from ferry.etl.load import merge
from ferry.etl.names import meta_db
from ferry.pgtools import pg_tool
from ferry_dev import dagtest
from ferry_dev import etl_demodata as demodata

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_production_etl_and_rollback_end_to_end(
    airflow_conns, stack, pg_database, mongo_local, mongo_db_name, s3, s3_bucket, tmp_path, monkeypatch
):
    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        counts = demodata.seed(conn, accounts=15, campaigns_per=2, items_per=3, tags_per=2)
    db, meta = mongo_local[mongo_db_name], mongo_local[meta_db(mongo_db_name)]
    # every run passes every param it relies on: dag.test() on a cached DAG keeps the previous run's conf
    conf = {
        "mongo_db": mongo_db_name,
        "bucket": s3_bucket,
        "batch_size": 10,
        "source": "direct",
        "refresh_strategy": "full",
        "schema_change_policy": "auto_safe",
        "apply_validators": False,
    }

    # 1. full load of the demo schema
    dr = dagtest.run_dag("production_etl", conf)
    assert db.accounts.count_documents({}) == counts["accounts"] == 15
    assert db.campaigns.count_documents({}) == counts["campaigns"] == 30
    c1 = db.campaigns.find_one({"_id": 1})
    assert c1["accountId"] == 1 and c1["account"] == {"name": "Account 1", "region": "amer"}
    assert len(c1["lineItems"]) == 3 and [t["tag"] for t in c1["tags"]] == ["tag-1", "tag-2"]
    assert isinstance(c1["lineItems"][0]["rate"], float)
    v1 = dagtest.xcom(dr, "backup")["version"]
    # one load task per collection, all on the snapshot backup exported; the teardown ended its holder
    parts = dagtest.xcom(dr, "load")
    assert [list(p["collections"]) for p in parts] == [["accounts"], ["campaigns"]]
    assert {p["snapshot"] for p in parts} == {dagtest.xcom(dr, "backup")["snapshot"]}
    with stack.pg.connect(pg_database) as conn:
        app = snapshot.application_name(dr.run_id)
        assert (
            conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[0] == 0
        )
    state1 = hashing.db_digest(db)
    run1 = meta["_ferry_etl_runs"].find_one({"_id": dr.run_id})
    assert run1["status"] == "success" and run1["backup_version"] == v1 and run1["decision"]["action"] == "none"
    assert run1["counts"]["campaigns"]["written"] == 30 and run1["snapshot"]["version"] == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="processed/")["Contents"]}
    manifest_key = next(k for k in keys if k.endswith("manifest.json"))
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    assert {n: f["count"] for n, f in manifest["collections"].items()} == {"accounts": 15, "campaigns": 30}
    assert [r["check"] for r in dagtest.xcom(dr, "validate")][:4] == [
        "documents",
        "duplicate _id",
        "null _id",
        "sample checksum (15 docs)",
    ]

    # the consumer contract: staged by URL, published after the data, every artifact new
    from ferry.etl import contract_store as cs

    c1 = dagtest.xcom(dr, "contract")
    assert c1["previous"] is None and cs.latest(mongo_db_name)["version"] == c1["version"]
    assert {r["artifact"] for r in c1["artifacts"]} >= {"openapi.json", "types.d.ts", "zod.ts"}
    assert run1["contract"]["version"] == c1["version"]

    # 2. a safe schema change, incremental: the new column joins the documents, nothing else is rewritten
    with stack.pg.connect(pg_database) as conn:
        conn.execute("ALTER TABLE accounts ADD COLUMN tier text; UPDATE accounts SET tier = 'gold' WHERE id = 2")
    dr = dagtest.run_dag("production_etl", {**conf, "refresh_strategy": "incremental", "apply_validators": True})
    loaded = merge(dagtest.xcom(dr, "load"))["collections"]
    assert loaded["accounts"]["written"] == 15 and loaded["campaigns"]["written"] == 0
    assert db.accounts.find_one({"_id": 2})["tier"] == "gold" and db.accounts.find_one({"_id": 3})["tier"] is None
    planned = dagtest.xcom(dr, "plan")
    assert planned["decision"]["action"] == "apply_safe"
    assert planned["schemas"]["accounts"]["properties"]["tier"]["bsonType"] == ["string", "null"]
    opts = mongo_local[mongo_db_name].command("listCollections", filter={"name": "accounts"})["cursor"]["firstBatch"][0]
    assert "tier" in opts["options"]["validator"]["$jsonSchema"]["properties"]
    c2 = dagtest.xcom(dr, "contract")  # a nullable field added: the contract changes, additively
    assert c2["previous"] == c1["version"] != c2["version"] and not c2["breaking"]
    assert {(r["collection"], r["field"], r["consumers"]) for r in c2["impact"]} == {("accounts", "tier", "additive")}
    rows = {r["artifact"]: r for r in c2["artifacts"]}
    assert rows["jsonschema/accounts.schema.json"]["consumers"] == "additive"
    assert rows["jsonschema/campaigns.schema.json"]["changed"] == "no"
    assert cs.latest(mongo_db_name)["version"] == c2["version"]
    # the S3 export of an incremental run is a delta on the full export of step 1: the accounts it rewrote;
    # the base and the chain assemble into exactly what the target holds
    from ferry.etl import publish

    pushed = dagtest.xcom(dr, "push_s3")
    assert pushed["kind"] == "delta" and pushed["collections"] == {"accounts": 15, "campaigns": 0}
    assembled = publish.assemble(s3_bucket, pushed["manifest"], s3=s3)
    for name in ("accounts", "campaigns"):
        assert assembled[name] == {d["_id"]: d for d in db[name].find()}, name

    # 3. source=s3: a real pg_dump -Fc in the bucket, restored into a scratch database; nothing changed
    with stack.pg.connect(pg_database) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    dump = tmp_path / "prod.dump"
    subprocess.run([pg_tool("pg_dump", major), "-Fc", "-f", str(dump), stack.pg.uri(pg_database)], check=True)
    s3.upload_file(str(dump), s3_bucket, "postgres-exports/old.dump")
    time.sleep(1.1)  # S3 LastModified has second resolution
    s3.upload_file(str(dump), s3_bucket, "postgres-exports/new.dump")
    dr = dagtest.run_dag("production_etl", {**conf, "source": "s3", "refresh_strategy": "incremental"})
    acquired = dagtest.xcom(dr, "acquire")
    assert acquired["key"] == "postgres-exports/new.dump" and acquired["bytes"] == dump.stat().st_size
    assert sum(c["written"] for c in merge(dagtest.xcom(dr, "load"))["collections"].values()) == 0
    with stack.pg.connect() as conn:  # the scratch database is dropped at the end
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (acquired["database"],)).fetchone() is None

    # 4. a breaking change with policy=ask: the review task (resolved by marking it) gives no decision -> abort,
    #    before any write to the target; the audit record says so
    state3 = hashing.db_digest(db)
    with stack.pg.connect(pg_database) as conn:
        conn.execute("ALTER TABLE campaigns DROP COLUMN budget")
    dr = dagtest.run_dag(
        "production_etl",
        {**conf, "schema_change_policy": "ask"},
        check=False,
        mark_success_pattern="review_schema_changes",
    )
    states = dagtest.task_states(dr)
    assert dr.state == "failed" and states["plan"] == "failed" and states["backup"] == "upstream_failed"
    assert hashing.db_digest(db) == state3
    run4 = meta["_ferry_etl_runs"].find_one({"_id": dr.run_id})
    assert run4["status"] == "failed" and run4["decision"] is None and run4["diff_summary"]["breaking"] == 1
    assert (
        meta["_ferry_schema_snapshots"].find_one({"_id": dagtest.xcom(dr, "detect_schema")["snapshot_id"]})["status"]
        == "rejected"
    )

    # 5. rollback: unknown versions are refused with the list; a known one restores the exact content
    dr = dagtest.run_dag(
        "production_etl_rollback", {"mongo_db": mongo_db_name, "version": "1999-01-01-001"}, check=False
    )
    assert dr.state == "failed" and dagtest.task_states(dr)["restore"] == "failed"
    listed = [v["version"] for v in dagtest.xcom(dr, "list_versions")]
    assert len(listed) == 3 and v1 in listed
    v2 = listed[1]  # backup taken before the incremental run of step 2
    dr = dagtest.run_dag("production_etl_rollback", {"mongo_db": mongo_db_name, "version": v2})
    assert hashing.db_digest(db, ["accounts", "campaigns"]) == {k: state1[k] for k in ("accounts", "campaigns")}
    restored = dagtest.xcom(dr, "restore")
    assert restored["version"] == v2 and restored["backup_before"] not in listed
    # the rollback put back the contract the restored data was published under
    assert restored["contract"] == c1["version"] == cs.latest(mongo_db_name)["version"]
