"""production_etl_preview, the dry run of a mapping (issue 27's walk-through): the documents the load would
build, counted and sized, the rows it would quarantine with why, a sample, and nothing written anywhere (both
MongoDB servers, S3 and the source hold what they held). Real PostgreSQL, wire servers, moto."""

from __future__ import annotations

import pytest

from ferry import hashing
from ferry.etl import mapping
from ferry.etl.preview import preview
from tests.etl.conftest import MAPPING

pytestmark = pytest.mark.integration


def _everything(mongo_local, mongo_prod, s3, conn) -> dict:
    """A digest of what a run could write: every database on both servers, every S3 object, the source rows."""
    out = {}
    for role, client in (("local", mongo_local), ("prod", mongo_prod)):
        for name in client.list_database_names():
            if name not in ("admin", "local", "config"):
                out[f"{role}:{name}"] = hashing.db_digest(client[name])
    for b in s3.list_buckets()["Buckets"]:
        objs = s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
        out[f"s3:{b['Name']}"] = sorted((o["Key"], o["ETag"]) for o in objs)
    for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall():
        out[f"pg:{table}"] = conn.execute(f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t").fetchone()  # fmt: skip
    conn.commit()
    return out


def test_the_dry_run_counts_what_the_load_would_build_and_writes_nothing(demo_pg, mongo_local, mongo_prod, s3):
    conn, counts = demo_pg.conn, demo_pg.counts
    conn.execute("UPDATE campaigns SET budget = 'NaN' WHERE id = 3")  # NaN does not fit Decimal128: quarantined
    conn.commit()
    before = _everything(mongo_local, mongo_prod, s3, conn)
    out = preview(conn, MAPPING, batch_size=7)
    rows = {r["collection"]: r for r in out["collections"]}
    assert (rows["accounts"]["read"], rows["accounts"]["documents"]) == (counts["accounts"], counts["accounts"])
    camp = rows["campaigns"]
    assert (camp["source_rows"], camp["read"], camp["documents"], camp["quarantined"]) == (
        counts["campaigns"],
        counts["campaigns"],
        counts["campaigns"] - 1,
        1,
    )
    (why,) = out["rejected"]["campaigns"]
    assert why["key"] == "3" and "campaigns.budget" in why["error"] and "NaN" in why["error"]
    assert 0 < camp["avg_bytes"] <= camp["largest_bytes"] < 16 * 1024 * 1024 and camp["of_16_MiB"].endswith("%")
    sample = out["samples"]["campaigns"]
    assert sample["_id"] == 1 and isinstance(sample["lineItems"], list) and "_ferry_hash" not in sample
    assert _everything(mongo_local, mongo_prod, s3, conn) == before  # nothing written anywhere

    first = {r["collection"]: r["read"] for r in preview(conn, MAPPING, rows=5, batch_size=2)["collections"]}
    assert first == {"accounts": 5, "campaigns": 5}


def test_the_dry_run_refuses_a_mapping_the_load_would_refuse(demo_pg, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(MAPPING).read().replace("table: campaigns", "table: campaignz", 1))
    with pytest.raises(mapping.MappingError, match="table 'campaignz' not in the source schema"):
        preview(demo_pg.conn, str(bad))
