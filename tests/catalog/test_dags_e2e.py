"""dataset_promotion end to end with dag.test()."""

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
    rows = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")
    assert [r["schema"] for r in rows] == [f"{REF} (published)", f"{REF} (reused)"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"])
    assert keys == [
        f"{s3_bucket}/raw/policies-a/part-0.tar",
        f"{s3_bucket}/raw/policies-a/part-1.tar",
        f"{s3_bucket}/raw/policies-b/part-0.tar",
    ]
    rows = dagtest.xcom(dagtest.run_dag("dataset_promotion", conf), "promote")
    assert [r["entry"] for r in rows] == ["unchanged", "unchanged"]
