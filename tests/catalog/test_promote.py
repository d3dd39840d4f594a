"""Dataset catalog promotion: schema reuse, data copies verified per object, error cases, idempotency."""

from __future__ import annotations

import pytest

from ferry.catalog import promote as catalog

pytestmark = pytest.mark.integration

SCHEMA = {
    "module": "clausea.samples",
    "class_name": "PolicySample",
    "version": "1.0.0",
    "definition": {"fields": {"text": "str", "label": "int"}},
}
REF = "clausea.samples.PolicySample@1.0.0"


def seed_catalog(local_db, s3, bucket):
    local_db.schemas.insert_one(dict(SCHEMA))
    for name, n in (("policies-a", 2), ("policies-b", 1)):
        urls = []
        for i in range(n):
            key = f"raw/{name}/part-{i}.tar"
            s3.put_object(Bucket=bucket, Key=key, Body=(f"{name}-{i}-" * 1000).encode())
            urls.append(f"s3://{bucket}/{key}")
        local_db.datasets.insert_one(
            {
                "name": name,
                "schema_ref": REF,
                "data_urls": urls,
                "tags": ["legal"],
                "description": name,
                "license": "CC-BY-4.0",
                "metadata": {"rows": n * 10},
            }
        )


def test_schema_published_once_and_reused_urls_kept(mongo_local, mongo_prod, mongo_db_name, s3, s3_bucket):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    seed_catalog(local_db, s3, s3_bucket)
    rows = catalog.promote(local_db, prod_db)
    assert [r["schema"] for r in rows] == [f"{REF} (published)", f"{REF} (reused)"]
    assert prod_db.schemas.count_documents({}) == 1
    a = prod_db.datasets.find_one({"_id": "policies-a"})
    assert a["data_urls"] == [
        f"s3://{s3_bucket}/raw/policies-a/part-0.tar",
        f"s3://{s3_bucket}/raw/policies-a/part-1.tar",
    ]
    assert a["schema_ref"] == REF and a["license"] == "CC-BY-4.0"
    # rerun: nothing new
    rows2 = catalog.promote(local_db, prod_db)
    assert [r["entry"] for r in rows2] == ["unchanged", "unchanged"]
    assert all("(reused)" in r["schema"] for r in rows2)
    assert prod_db.schemas.count_documents({}) == 1 and prod_db.datasets.count_documents({}) == 2


def test_copy_data_verifies_each_object_and_rewrites_urls(mongo_local, mongo_prod, mongo_db_name, s3, s3_bucket):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    seed_catalog(local_db, s3, s3_bucket)
    target = s3_bucket + "-pub"
    s3.create_bucket(Bucket=target)
    rows = catalog.promote(
        local_db,
        prod_db,
        names=["policies-a"],
        s3=s3,
        target_bucket=target,
        overrides={"name": "policies-public", "tags": ["legal", "public"], "license": "MIT", "description": ""},
    )
    assert rows[0]["data"].startswith("2 object(s) verified (2 copied")
    entry = prod_db.datasets.find_one({"_id": "policies-public"})
    assert entry["tags"] == ["legal", "public"] and entry["license"] == "MIT" and entry["description"] == "policies-a"
    for src, dst in zip(
        local_db.datasets.find_one({"name": "policies-a"})["data_urls"], entry["data_urls"], strict=True
    ):
        sb, sk = src[5:].split("/", 1)
        db, dk = dst[5:].split("/", 1)
        assert db == target
        s, d = s3.head_object(Bucket=sb, Key=sk), s3.head_object(Bucket=db, Key=dk)
        assert (s["ContentLength"], s["ETag"]) == (d["ContentLength"], d["ETag"])
        assert s3.get_object(Bucket=db, Key=dk)["Body"].read() == s3.get_object(Bucket=sb, Key=sk)["Body"].read()
    rows2 = catalog.promote(
        local_db,
        prod_db,
        names=["policies-a"],
        s3=s3,
        target_bucket=target,
        overrides={"name": "policies-public", "tags": ["legal", "public"], "license": "MIT"},
    )
    assert rows2[0]["entry"] == "unchanged" and "(0 copied" in rows2[0]["data"]


def test_missing_schema_and_missing_urls_are_clear_errors_and_write_nothing(mongo_local, mongo_prod, mongo_db_name):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    local_db.datasets.insert_many(
        [
            {"name": "orphan", "schema_ref": "pkg.Missing@2.0", "data_urls": ["s3://b/k"]},
            {"name": "empty", "schema_ref": REF, "data_urls": []},
        ]
    )
    with pytest.raises(catalog.CatalogError) as exc:
        catalog.promote(local_db, prod_db)
    msg = str(exc.value)
    assert "schema 'pkg.Missing@2.0' (used by dataset 'orphan') is not in the local catalog" in msg
    assert "dataset 'empty' has no data URLs" in msg
    assert prod_db.datasets.count_documents({}) == 0 and prod_db.schemas.count_documents({}) == 0


def test_same_schema_identity_with_other_definition_names_both(mongo_local, mongo_prod, mongo_db_name, s3, s3_bucket):
    local_db, prod_db = mongo_local[mongo_db_name], mongo_prod[mongo_db_name]
    seed_catalog(local_db, s3, s3_bucket)
    prod_db.schemas.insert_one(
        {
            "_id": REF,
            **{k: v for k, v in SCHEMA.items() if k != "definition"},
            "definition": {"fields": {"text": "str"}},
        }
    )
    with pytest.raises(
        catalog.CatalogError, match=r"schema 'clausea.samples.PolicySample@1.0.0' differs: local .* vs production"
    ):
        catalog.promote(local_db, prod_db)
    assert prod_db.datasets.count_documents({}) == 0


def test_promote_task_emits_asset_events_for_the_catalog_collections_it_wrote(
    airflow_conns, mongo_local, mongo_prod, mongo_db_name, s3, s3_bucket
):
    """Through the task's ``AssetAlias(runs.TARGET_ALIAS)`` outlet: mongodb://host:port/<catalog>/schemas and
    .../datasets when a promotion wrote them; nothing on a rerun that changed nothing."""
    from types import SimpleNamespace

    from airflow.sdk import AssetAlias
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from ferry.catalog import runs

    seed_catalog(mongo_local[mongo_db_name], s3, s3_bucket)
    params = {"source_db": mongo_db_name, "target_db": mongo_db_name, "copy_data": False, "target_bucket": None}
    params["dry_run"] = False  # the DAG param defaults to true

    def events(run_id: str) -> set[str]:
        ctx = {
            "params": params,
            "run_id": run_id,
            "dag_run": SimpleNamespace(dag_id="dataset_promotion", triggering_user_name="t", run_type="manual"),
            "outlet_events": OutletEventAccessors(),
        }
        runs.promote(**ctx)
        return {e.dest_asset_key.uri for e in ctx["outlet_events"][AssetAlias(runs.TARGET_ALIAS)].asset_alias_events}

    host, port = mongo_prod.address
    assert events("r1") == {f"mongodb://{host}:{port}/{mongo_db_name}/{c}" for c in ("schemas", "datasets")}
    assert events("r2") == set()
