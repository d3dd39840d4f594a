"""Dataset promotion to the ATProto atmosphere, against a real local PDS (``@atproto/dev-env``), an atdata
index on a real Redis and its data on moto S3."""

from __future__ import annotations

import atdata
import numpy as np
import pytest

from ferry.catalog import atmosphere
from ferry.catalog.atmosphere import ENTRY_COLLECTION, SCHEMA_COLLECTION, list_records

pytestmark = [pytest.mark.integration, pytest.mark.atmosphere]


@atdata.packable
class FeatureSample:
    """A feature vector and its label."""

    features: np.ndarray
    label: int


def s3_store(stack, bucket):
    from atdata.stores import S3DataStore

    creds = {"AWS_ENDPOINT": stack.s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return S3DataStore(creds, bucket=bucket)


def seed_index(index, stack, bucket, tmp_path, names=("feat-a", "feat-b")) -> str:
    """The original workflow's set-up: publish the schema, write samples, insert them through the S3 store."""
    ref = index.publish_schema(FeatureSample, version="1.0.0")
    for n, name in enumerate(names):
        samples = [FeatureSample(features=np.arange(4, dtype="float32") * i, label=10 * n + i) for i in range(5)]
        ds = atdata.write_samples(samples, str(tmp_path / f"{name}.tar"))
        index.insert_dataset(ds, name=name, schema_ref=ref, data_store=s3_store(stack, bucket), metadata={"n": 5})
    return ref


def records(atmo, collection):
    return list_records(atmo, collection)


def read_labels(stack, urls):
    from atdata._sources import S3Source

    src = S3Source.from_urls(urls, endpoint=stack.s3_endpoint, access_key="testing", secret_key="testing")
    return [s.label for s in atdata.Dataset[FeatureSample](src).ordered()]


def test_publish_reuses_the_schema_across_two_entries(stack, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    out = atmosphere.promote(atdata_index, atmo, dry_run=False)
    rows = out["rows"]
    assert [r["schema"] for r in rows] == ["FeatureSample@1.0.0 (published)", "FeatureSample@1.0.0 (reused)"]
    assert [r["entry"] for r in rows] == ["published", "published"]
    schemas, entries = records(atmo, SCHEMA_COLLECTION), records(atmo, ENTRY_COLLECTION)
    assert len(schemas) == 1 and len(entries) == 2
    assert {e["value"]["schemaRef"] for e in entries} == {schemas[0]["uri"]} == {r["schema_uri"] for r in rows}
    assert {e["uri"]: e["cid"] for e in entries} == {r["uri"]: r["cid"] for r in rows}
    assert all(r["uri"].startswith(f"at://{atmo.did}/{ENTRY_COLLECTION}/") for r in rows)
    local = {e.name: e.data_urls for e in atdata_index.list_entries()}
    by_name = {e["value"]["name"]: atmosphere._entry_urls(e["value"]) for e in entries}
    assert by_name == local  # URLs kept
    assert [p["kind"] for p in out["published"]] == ["schema", "entry", "entry"]


def test_overrides_name_description_tags_license(stack, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    o = {"name": "feat-a-v2", "description": "promoted", "tags": ["x", "y"], "license": "CC-BY-4.0"}
    rows = atmosphere.promote(atdata_index, atmo, names=["feat-a"], overrides=o, dry_run=False)["rows"]
    (entry,) = records(atmo, ENTRY_COLLECTION)
    assert rows[0]["dataset"] == "feat-a-v2" and entry["uri"] == rows[0]["uri"]
    assert {k: entry["value"].get(k) for k in o} == o


def test_rerun_publishes_nothing_and_reports_the_existing_uris(stack, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    first = atmosphere.promote(atdata_index, atmo, dry_run=False)["rows"]
    again = atmosphere.promote(atdata_index, atmo, dry_run=False)
    assert again["published"] == []
    assert [r["entry"] for r in again["rows"]] == ["exists", "exists"]
    assert [(r["uri"], r["cid"]) for r in again["rows"]] == [(r["uri"], r["cid"]) for r in first]
    assert all(r["schema"].endswith("(reused)") for r in again["rows"])
    assert len(records(atmo, SCHEMA_COLLECTION)) == 1 and len(records(atmo, ENTRY_COLLECTION)) == 2


def test_dry_run_lists_the_plan_and_writes_nothing(stack, s3, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    target = s3_bucket + "-out"
    s3.create_bucket(Bucket=target)
    rows = atmosphere.promote(atdata_index, atmo, s3=s3, target_bucket=target, dry_run=True)["rows"]
    assert [(r["dataset"], r["schema"], r["entry"]) for r in rows] == [
        ("feat-a", "FeatureSample@1.0.0 (new)", "new"),
        ("feat-b", "FeatureSample@1.0.0 (new)", "new"),
    ]
    assert records(atmo, SCHEMA_COLLECTION) == [] and records(atmo, ENTRY_COLLECTION) == []
    assert s3.list_objects_v2(Bucket=target).get("KeyCount") == 0
    # after a real run, the dry run says what is reused and what exists
    atmosphere.promote(atdata_index, atmo, names=["feat-a"], dry_run=False)
    rows = atmosphere.promote(atdata_index, atmo, dry_run=True)["rows"]
    assert [(r["schema"], r["entry"][:6]) for r in rows] == [
        ("FeatureSample@1.0.0 (reused)", "exists"),
        ("FeatureSample@1.0.0 (reused)", "new"),
    ]
    assert len(records(atmo, ENTRY_COLLECTION)) == 1


def test_copy_data_copies_shards_and_atdata_reads_them_back(stack, s3, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    target = s3_bucket + "-out"
    s3.create_bucket(Bucket=target)
    rows = atmosphere.promote(atdata_index, atmo, s3=s3, target_bucket=target, dry_run=False)["rows"]
    assert all(r["data"] == "1 object(s) verified (1 copied)" for r in rows)
    entries = {e["value"]["name"]: atmosphere._entry_urls(e["value"]) for e in records(atmo, ENTRY_COLLECTION)}
    for e in atdata_index.list_entries():
        urls = entries[e.name]
        assert all(u.startswith(f"s3://{target}/") for u in urls) and urls != e.data_urls
        assert read_labels(stack, urls) == read_labels(stack, e.data_urls) and len(read_labels(stack, urls)) == 5
    # rerun: the copies verify, nothing is copied or published again
    again = atmosphere.promote(atdata_index, atmo, s3=s3, target_bucket=target, dry_run=False)
    assert again["published"] == [] and all("(0 copied)" in r["data"] for r in again["rows"])


def test_schema_missing_from_the_local_index_is_named(stack, atdata_index, atmo, s3_bucket, tmp_path):
    from atdata.index._entry import LocalDatasetEntry

    seed_index(atdata_index, stack, s3_bucket, tmp_path, names=("feat-a",))
    ghost = "atdata://local/schema/GhostSample@2.0.0"
    LocalDatasetEntry(name="ghost", schema_ref=ghost, data_urls=[f"s3://{s3_bucket}/x.tar"]).write_to(
        atdata_index._redis
    )
    with pytest.raises(atmosphere.CatalogError, match="GhostSample@2.0.0.*dataset 'ghost'.*not in the local index"):
        atmosphere.promote(atdata_index, atmo, dry_run=False)
    assert records(atmo, SCHEMA_COLLECTION) == [] and records(atmo, ENTRY_COLLECTION) == []  # nothing written


def test_entry_without_data_urls_is_named(stack, atdata_index, atmo, s3_bucket, tmp_path):
    from atdata.index._entry import LocalDatasetEntry

    ref = seed_index(atdata_index, stack, s3_bucket, tmp_path, names=("feat-a",))
    LocalDatasetEntry(name="empty-set", schema_ref=ref, data_urls=[]).write_to(atdata_index._redis)
    with pytest.raises(atmosphere.CatalogError, match="dataset 'empty-set' has no data URLs"):
        atmosphere.promote(atdata_index, atmo, dry_run=False)
    assert records(atmo, ENTRY_COLLECTION) == []


def test_same_schema_identity_with_another_definition_names_both(stack, atdata_index, atmo, s3_bucket, tmp_path):
    seed_index(atdata_index, stack, s3_bucket, tmp_path, names=("feat-a",))
    other = {
        "$type": SCHEMA_COLLECTION,
        "name": "FeatureSample",
        "version": "1.0.0",
        "schemaType": "jsonSchema",
        "schema": {"type": "object", "properties": {"label": {"type": "string"}}},
        "createdAt": "2026-01-01T00:00:00Z",
    }
    theirs = atmo.create_record(SCHEMA_COLLECTION, other)
    with pytest.raises(atmosphere.CatalogError) as err:
        atmosphere.promote(atdata_index, atmo, dry_run=False)
    msg = str(err.value)
    assert "schema FeatureSample@1.0.0 differs" in msg and "atdata://local/schema/FeatureSample@1.0.0" in msg
    assert str(theirs) in msg and '"label": {"type": "string"}' in msg
    assert records(atmo, ENTRY_COLLECTION) == []


def test_bad_credentials_and_unreachable_pds_are_clear(pds_account):
    from ferry_dev.devstack import free_port

    with pytest.raises(atmosphere.AtmosphereError, match="bad credentials") as err:
        atmosphere.login(pds_account["pds_url"], pds_account["handle"], "wrong-password-123")
    assert "wrong-password-123" not in str(err.value)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(atmosphere.AtmosphereError, match=f"PDS {dead}: PDS unreachable"):
        atmosphere.login(dead, pds_account["handle"], pds_account["password"])


def test_pds_lost_mid_way_reports_exactly_what_was_published(stack, atdata_index, atmo, s3_bucket, tmp_path):
    from ferry_dev.devstack import free_port

    seed_index(atdata_index, stack, s3_bucket, tmp_path)
    real, calls = atmo.create_record, []

    def create_then_lose_the_pds(*a, **kw):  # the 3rd record (2nd entry) meets a PDS that is gone
        calls.append(kw.get("collection"))
        if len(calls) == 3:
            atmo._client.update_base_url(f"http://127.0.0.1:{free_port()}")
        return real(*a, **kw)

    atmo.create_record = create_then_lose_the_pds
    with pytest.raises(atmosphere.PublishFailed, match="unreachable") as err:
        atmosphere.promote(atdata_index, atmo, dry_run=False, pds_url="the-pds")
    published = err.value.published
    assert [p["kind"] for p in published] == ["schema", "entry"]
    assert published[1]["dataset"] == "feat-a" and published[1]["uri"] in str(err.value)
    atmo._client.update_base_url(stack.pds["pds_url"])
    assert [e["uri"] for e in records(atmo, ENTRY_COLLECTION)] == [published[1]["uri"]]
    # a rerun finishes the job: feat-a exists, feat-b is published
    rows = atmosphere.promote(atdata_index, atmo, dry_run=False)["rows"]
    assert [r["entry"] for r in rows] == ["exists", "published"]


def test_the_index_connection_accepts_the_sqlite_provider(tmp_path, monkeypatch):
    import json

    from ferry.catalog import connections

    db = tmp_path / "index.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ATDATA_INDEX",
        json.dumps({"conn_type": "sqlite", "host": str(db), "extra": {"provider": "sqlite"}}),
    )
    ref = connections.atdata_index().publish_schema(FeatureSample, version="1.0.0")
    assert connections.atdata_index().get_schema(ref)["name"] == "FeatureSample" and db.exists()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ATDATA_INDEX", json.dumps({"conn_type": "redis", "extra": {"provider": "mysql"}})
    )
    with pytest.raises(Exception, match="provider='mysql' is not redis, sqlite or postgres"):
        connections.atdata_index()
