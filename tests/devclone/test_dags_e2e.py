"""dev_db_structure_clone and dev_db_drift_check end to end with dag.test()."""

from __future__ import annotations

import pytest

from ferry.devclone import structure
from ferry_dev import dagtest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_clone_dag_dry_run_then_apply_then_drift_check(airflow_conns, source_db, mongo_prod, tmp_path):
    name, dev = source_db.name, source_db.name + "_dev"
    # default conf = dry run: a plan, no database created
    dr = dagtest.run_dag("dev_db_structure_clone", {"source_databases": [name]})
    summary = dagtest.xcom(dr, "clone_structure")
    assert summary[0]["target"] == dev and summary[0]["create"] > 0 and summary[0]["write_commands"] == 0
    assert dev not in mongo_prod.list_database_names()
    plans = list((tmp_path / "storage" / "reports" / "devclone").glob(f"*/{dev}.md"))
    assert plans and "Plan (dry run)" in plans[0].read_text()
    assert mongo_prod[dev + "__ferry"].name not in mongo_prod.list_database_names()  # no audit for a dry run

    dr = dagtest.run_dag("dev_db_structure_clone", {"source_databases": [name], "dry_run": False})
    assert dagtest.xcom(dr, "clone_structure")[0]["failures"] == 0
    assert structure.diff(structure.read_structure(source_db), structure.read_structure(mongo_prod[dev])) == []
    assert sum(mongo_prod[dev][c].count_documents({}) for c in ("users", "orders", "places")) == 0
    run = mongo_prod[dev + "__ferry"]["_ferry_clone_runs"].find_one({"run_id": dr.run_id})
    assert run["family"] == "devclone" and run["outcome"] == "success" and run["counts"]["failures"] == 0

    dr = dagtest.run_dag("dev_db_drift_check", {"source_databases": [name]})
    assert dagtest.xcom(dr, "drift_check") == [
        {"source": name, "target": dev, "differences": 0, "repaired": 0, "remaining": 0}
    ]

    mongo_prod[dev].orders.drop_index("customer_created")
    with pytest.raises(dagtest.DagRunFailed, match="drift_check"):
        dagtest.run_dag("dev_db_drift_check", {"source_databases": [name]})
    dr = dagtest.run_dag("dev_db_drift_check", {"source_databases": [name], "repair": True})
    assert dagtest.xcom(dr, "drift_check")[0] == {
        "source": name,
        "target": dev,
        "differences": 1,
        "repaired": 1,
        "remaining": 0,
    }
    assert "customer_created" in mongo_prod[dev].orders.index_information()


def test_clone_dag_refuses_a_nonempty_target(airflow_conns, source_db, mongo_prod):
    mongo_prod[source_db.name + "_dev"].users.insert_one({"email": "keep@me"})
    with pytest.raises(dagtest.DagRunFailed, match="clone_structure"):
        dagtest.run_dag("dev_db_structure_clone", {"source_databases": [source_db.name], "dry_run": False})
    assert mongo_prod[source_db.name + "_dev"].list_collection_names() == ["users"]
