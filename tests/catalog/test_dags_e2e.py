"""dataset_promotion end to end with dag.test(): the MongoDB catalog target and the atmosphere target."""

from __future__ import annotations

import pytest

from ferry_dev import dagtest
from tests.catalog.test_promote import REF, seed_catalog

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_dataset_promotion_dag(airflow_conns, mongo_local, mongo_prod, mongo_db_name, s3, s3_bucket):

    seed_catalog(mongo_local[mongo_db_name], s3, s3_bucket)
    target = s3_bucket + "-out"
    s3.create_bucket(Bucket=target)
    conf = {"source_db": mongo_db_name, "target_db": mongo_db_name, "copy_data": True, "target_bucket": target}
    # dry_run is on by default: the plan, nothing written
    rows = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")
    assert [(r["schema"], r["entry"]) for r in rows] == [(f"{REF} (new)", "new"), (f"{REF} (reused)", "new")]
    assert mongo_db_name not in mongo_prod.list_database_names()
    assert s3.list_objects_v2(Bucket=target).get("KeyCount") == 0
    conf.update(dry_run=False, require_approval=True)
    # the approval step is passed (marked success, as dag.test cannot answer it): the plan it shows, then the write
    dr = dagtest.run_dag("dataset_promotion", conf, mark_success_pattern="approve")
    shown = dagtest.xcom(dr, "plan")
    assert shown["rows"] == 2 and f"| policies-a | {REF} (new)" in shown["table"]  # the dry run, shown first
    rows = dagtest.xcom(dr, "promote")
    assert [r["schema"] for r in rows] == [f"{REF} (published)", f"{REF} (reused)"]
    rec = mongo_prod[mongo_db_name]["_ferry_catalog_runs"].find_one({"_id": dr.run_id})
    assert rec["outcome"] == "success" and rec["params"]["require_approval"] is True
    conf["require_approval"] = False
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"])
    assert keys == [
        f"{s3_bucket}/raw/policies-a/part-0.tar",
        f"{s3_bucket}/raw/policies-a/part-1.tar",
        f"{s3_bucket}/raw/policies-b/part-0.tar",
    ]
    rows = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")
    assert [r["entry"] for r in rows] == ["unchanged", "unchanged"]


@pytest.mark.atmosphere
def test_dataset_promotion_dag_to_the_atmosphere(
    stack, atmosphere_conns, atdata_index, atmo, mongo_prod, mongo_db_name, s3, s3_bucket, tmp_path
):
    from ferry.catalog.atmosphere import ENTRY_COLLECTION, SCHEMA_COLLECTION, list_records
    from ferry.catalog.runs import RUNS
    from tests.catalog.test_atmosphere import read_labels, seed_index

    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    target = s3_bucket + "-pub"
    s3.create_bucket(Bucket=target)
    conf = {"target": "atmosphere", "target_db": mongo_db_name, "copy_data": True, "target_bucket": target}
    rows = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")  # dry run
    assert [r["schema"] for r in rows] == ["FeatureSample@1.0.0 (new)"] * 2
    assert list_records(atmo, ENTRY_COLLECTION) == [] and s3.list_objects_v2(Bucket=target)["KeyCount"] == 0
    assert mongo_prod[mongo_db_name][RUNS].count_documents({}) == 0  # no audit record either

    conf |= {"dry_run": False, "datasets": ["feat-a"], "license": "CC0-1.0", "tags": ["demo"]}
    dr = dagtest.run_dag("dataset_promotion", conf)
    (row,) = dagtest.xcom(dr, "promote")
    (entry,) = list_records(atmo, ENTRY_COLLECTION)
    assert row["uri"] == entry["uri"] and row["cid"] == entry["cid"]
    assert entry["value"]["license"] == "CC0-1.0" and entry["value"]["tags"] == ["demo"]
    urls = [s["url"] for s in entry["value"]["storage"]["shards"]]
    assert urls[0].startswith(f"s3://{target}/") and len(read_labels(stack, urls)) == 5
    rec = mongo_prod[mongo_db_name][RUNS].find_one({"_id": dr.run_id})
    assert rec["outcome"] == "success" and rec["target"] == "atmosphere" and rec["did"] == atmo.did
    assert [(p["kind"], p["uri"], p["cid"]) for p in rec["published"]] == [
        ("schema", list_records(atmo, SCHEMA_COLLECTION)[0]["uri"], list_records(atmo, SCHEMA_COLLECTION)[0]["cid"]),
        ("entry", entry["uri"], entry["cid"]),
    ]
    assert rec["datasets"][0]["schema"] == "FeatureSample@1.0.0 (published)" and rec["who"]
    assert atmosphere_conns["password"] not in str(rec)

    (again,) = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")
    assert again["entry"] == "exists" and again["uri"] == entry["uri"]
    assert len(list_records(atmo, ENTRY_COLLECTION)) == 1
