"""OpenLineage: a run's events name the systems each task read and wrote (provider asset URIs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ferry_dev import dagtest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _events(dag_id: str, run_id: str) -> list[dict]:
    path = Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])
    out = []
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        parent = ev.get("run", {}).get("facets", {}).get("parent", {})
        if (
            ev.get("job", {}).get("name", "").startswith(f"{dag_id}.")
            and ev["eventType"] == "COMPLETE"
            and (parent.get("run", {}).get("runId") or ev["run"]["runId"])
        ):
            out.append(ev)
    return out


def _fill_collector() -> None:
    """Fill the hook lineage collector to its cap, as earlier ``dag.test()`` runs of one process do (CI once
    failed here: the ETL run's events named only earlier runs' assets). ``dagtest.run_dag`` empties it."""
    from airflow.sdk.lineage import MAX_COLLECTED_ASSETS, get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for i in range(MAX_COLLECTED_ASSETS):
        collector.add_input_asset(context=collector, uri=f"s3://earlier-runs/{i}")


def test_smoke_run_events_name_every_store_it_wrote(airflow_conns, stack, pg_database, s3):
    dr = dagtest.run_dag("ferry_smoke", {"run_key": "lineage", "bucket": "ferry-lineage-t"})
    events = {e["job"]["name"]: e for e in _events("ferry_smoke", dr.run_id)}
    outputs = {
        task.split(".", 1)[1]: [(o["namespace"], o["name"]) for o in ev["outputs"]] for task, ev in events.items()
    }
    pg = f"postgres://{stack.pg.host}:{stack.pg.port}"
    assert (pg, f"{pg_database}.public.ferry_smoke") in outputs["postgres"]
    mongo_host = stack.mongo_local_uri.split("//")[1].split("/")[0]
    assert (f"mongodb://{mongo_host}", "ferry_smoke.smoke_runs") in outputs["mongo"]
    assert ("s3://ferry-lineage-t", "smoke/lineage.json") in outputs["s3"]
    assert any(ns == "file" and name.endswith("ferry.duckdb") for ns, name in outputs["duckdb"])


def test_etl_run_events_name_source_tables_targets_and_published_files(
    airflow_conns, stack, pg_database, mongo_db_name, s3_bucket
):
    from ferry_dev import etl_demodata as demodata

    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=3, campaigns_per=1, items_per=1, tags_per=1)
    _fill_collector()  # what a long test process leaves: a collector full of earlier runs' assets
    dr = dagtest.run_dag(
        "production_etl",
        {
            "mongo_db": mongo_db_name,
            "bucket": s3_bucket,
            "source": "direct",
            "refresh_strategy": "full",
            "schema_change_policy": "auto_safe",
        },
    )
    ev = {e["job"]["name"].split(".", 1)[1]: e for e in _events("production_etl", dr.run_id)}
    load_in = {i["name"] for i in ev["load"]["inputs"]}
    assert {f"{pg_database}.public.{t}" for t in ("accounts", "campaigns", "line_items", "campaign_tags")} <= load_in
    # (dag.test runs every task in one process, where Airflow's lineage collector keeps what earlier tasks
    # reported; a worker runs each task in a process of its own)
    assert {f"{mongo_db_name}.accounts", f"{mongo_db_name}.campaigns"} <= {o["name"] for o in ev["load"]["outputs"]}
    assert f"s3://{s3_bucket}" in [o["namespace"] for o in ev["push_s3"]["outputs"]]


def test_etl_asset_events_name_the_published_collections(airflow_conns, stack, pg_database, mongo_db_name, s3_bucket):
    """production_etl's outlets (asset aliases) resolve to the collections it published and the manifest."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    from ferry_dev import etl_demodata as demodata

    with stack.pg.connect(pg_database) as conn:
        demodata.create_schema(conn)
        demodata.seed(conn, accounts=2, campaigns_per=1, items_per=1, tags_per=1)
    dr = dagtest.run_dag(
        "production_etl",
        {
            "mongo_db": mongo_db_name,
            "bucket": s3_bucket,
            "source": "direct",
            "refresh_strategy": "full",
            "schema_change_policy": "auto_safe",
        },
    )
    with create_session() as session:
        uris = {e.asset.uri for e in session.query(AssetEvent).filter(AssetEvent.source_run_id == dr.run_id)}
    mongo_host = stack.mongo_local_uri.split("//")[1].split("/")[0]
    assert {
        f"mongodb://{mongo_host}/{mongo_db_name}/accounts",
        f"mongodb://{mongo_host}/{mongo_db_name}/campaigns",
    } <= uris
    assert any(u.startswith(f"s3://{s3_bucket}/processed/") and u.endswith("manifest.json") for u in uris)
