"""Two Celery workers whose local disks differ: production_etl runs on worker a, production_etl_rollback of its
backup runs on worker b, and restores exactly. Nothing a later task or run reads lives on one worker's disk."""

from __future__ import annotations

import pytest

from tests.conftest import unique

pytestmark = [pytest.mark.deployment, pytest.mark.integration]


def _hosts(api, dag_id: str, run_id: str) -> set[str]:
    return {ti["hostname"] for ti in api.task_instances(dag_id, run_id) if ti["state"] == "success"}


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_etl_on_worker_a_rollback_on_worker_b(deployment, api, stack):
    from ferry import hashing
    from tests.deployment.conftest import PG_DB

    db = unique("dep_celery")
    conf = {"mongo_db": db, "batch_size": 50}
    disk_a = deployment.root / "worker-a"
    try:
        deployment.stop_worker("b")  # only worker a takes work
        api.unpause("production_etl")
        run1 = api.trigger("production_etl", conf)
        assert api.wait_run("production_etl", run1) == "success", api.failure_logs("production_etl", run1)
        with stack.mongo_client("local") as local:
            before = hashing.db_digest(local[db])
        with stack.pg.connect(PG_DB) as conn:  # the next load changes what readers see
            conn.execute("UPDATE accounts SET name = name || ' (renamed)' WHERE id % 3 = 0")
        run2 = api.trigger("production_etl", conf)
        assert api.wait_run("production_etl", run2) == "success", api.failure_logs("production_etl", run2)
        assert _hosts(api, "production_etl", run1) == _hosts(api, "production_etl", run2) == {"ferry-worker-a"}
        backup = api.xcom("production_etl", run2, "backup")  # run 2 backed up what run 1 had published
        assert backup["location"].startswith("s3://")
        with stack.mongo_client("local") as local:
            assert hashing.db_digest(local[db]) != before

        deployment.start_worker("b")  # worker a goes away: its disk with it
        deployment.stop_worker("a")
        api.unpause("production_etl_rollback")
        rb = api.trigger("production_etl_rollback", {"mongo_db": db, "version": backup["version"]})
        assert api.wait_run("production_etl_rollback", rb) == "success", api.failure_logs("production_etl_rollback", rb)
        assert _hosts(api, "production_etl_rollback", rb) == {"ferry-worker-b"}
        with stack.mongo_client("local") as local:
            assert hashing.db_digest(local[db]) == before  # restored exactly
        # the tasks on worker a left nothing that a later task needed on its own disk (only tmp litter at most)
        assert [f for f in _files(disk_a) if not f.startswith(("tmp/", "home/"))] == []
    finally:
        deployment.start_worker("a")
        deployment.start_worker("b")
        with stack.pg.connect(PG_DB) as conn:
            conn.execute("UPDATE accounts SET name = replace(name, ' (renamed)', '')")
        with stack.mongo_client("local") as local:
            for name in local.list_database_names():
                if name.startswith(db):
                    local.drop_database(name)
