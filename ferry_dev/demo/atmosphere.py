"""Demo step: promote two datasets of an atdata index (Redis + S3) to a local ATProto PDS, printing the AT URIs.

Starts the local PDS + PLC (``@atproto/dev-env``; installed into ``.ferry/pds`` on the first demo, minutes)
and a private Redis, seeds the index the way the original workflow does (``publish_schema``, then
``insert_dataset`` through an ``S3DataStore``), then runs ``dataset_promotion`` with ``target=atmosphere``:
a dry run, the promotion with ``copy_data``, and a rerun that publishes nothing.
"""

from __future__ import annotations

import os
import tempfile

import atdata
import numpy as np

ORDER = 45
TARGET_DB = "ferry_catalog_demo"  # where the audit record goes (ferry_mongo_prod)


@atdata.packable
class PolicyFeatures:
    """Embedding of a privacy-policy paragraph and its label."""

    features: np.ndarray
    label: int


def _seed(stack, bucket: str) -> None:
    from atdata.local import Index
    from atdata.stores import S3DataStore
    from redis import Redis

    redis = Redis.from_url(stack.atdata_redis_url)
    redis.flushdb()
    creds = {"AWS_ENDPOINT": stack.s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    index = Index(redis=redis, data_store=S3DataStore(creds, bucket=bucket), atmosphere=None)
    ref = index.publish_schema(PolicyFeatures, version="1.0.0")
    with tempfile.TemporaryDirectory() as tmp:
        for n, name in enumerate(("policy-features-train", "policy-features-test")):
            samples = [PolicyFeatures(features=np.full(8, i, dtype="float32"), label=(i + n) % 2) for i in range(20)]
            ds = atdata.write_samples(samples, os.path.join(tmp, f"{name}.tar"))
            index.insert_dataset(ds, name=name, schema_ref=ref, metadata={"source": "ferry demo"})


def run(ctx) -> list[dict]:
    from ferry_dev import dagtest

    stack = ctx.stack
    stack.start_pds()
    stack.start_redis()
    os.environ.update(stack.connection_env(pg_db=ctx.pg_db))  # adds ferry_atproto and ferry_atdata_index
    s3 = stack.s3_client()
    source, published = ctx.bucket + "-atdata", ctx.bucket + "-atmosphere"
    for b in (source, published):
        try:
            s3.create_bucket(Bucket=b)
        except Exception:  # noqa: BLE001 - already there
            pass
    _seed(stack, source)
    conf = {"target": "atmosphere", "target_db": TARGET_DB, "copy_data": True, "target_bucket": published}
    plan = dagtest.xcom(ctx.run_dag("dataset_promotion", conf), "promote")
    rows = dagtest.xcom(ctx.run_dag("dataset_promotion", {**conf, "dry_run": False, "license": "CC-BY-4.0"}), "promote")
    again = dagtest.xcom(
        ctx.run_dag("dataset_promotion", {**conf, "dry_run": False, "license": "CC-BY-4.0"}), "promote"
    )
    pds = stack.pds
    ctx.notes.append(f"atmosphere: PDS {pds['pds_url']} (PLC {pds['plc_url']}), account {pds['handle']} ({pds['did']})")
    ctx.notes.append(f"atmosphere: schema {rows[0]['schema_uri']}")
    for r in rows:
        ctx.notes.append(f"atmosphere: {r['dataset']} -> {r['uri']} (cid {r['cid']})")
    return [
        {
            "dag": "dataset_promotion atmosphere (dry_run)",
            "result": "; ".join(f"{r['dataset']}: {r['schema']}, {r['entry']}" for r in plan),
        },
        {
            "dag": "dataset_promotion atmosphere",
            "result": "; ".join(f"{r['dataset']}: {r['uri']} [{r['schema']}, {r['data']}]" for r in rows),
        },
        {
            "dag": "dataset_promotion atmosphere (rerun)",
            "result": "; ".join(f"{r['dataset']}: {r['entry']}" for r in again),
        },
    ]
