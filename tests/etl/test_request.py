"""The ETL run requests: what the trigger form offers is what the tasks accept, bad values are named once, and
what the tasks derive (metadata database, target, backups, parallel targets) comes from one place."""

from __future__ import annotations

import pytest

from ferry import storage
from ferry.etl import policy, runs
from ferry.etl.request import EtlRequest, RollbackRequest
from ferry.request import RequestError


def test_defaults_and_derived_values():
    r = EtlRequest.of({})
    assert (r.mongo_db, r.refresh_strategy, r.batch_size, r.also_publish_to) == ("bravo-1", "full", 10000, None)
    assert r.meta == runs.meta_db("bravo-1") and r.target == "bravo-1"
    assert r.lineage_name == "demo_mapping" and r.mapping_file.endswith("/include/etl/demo_mapping.yaml")
    assert r.backups == storage.join(storage.root(), "etl-backups")
    assert EtlRequest.of({"source_name": "", "backup_url": "s3://ferry-b/x/"}).backups == "s3://ferry-b/x"
    assert EtlRequest.of({"also_publish_to": ["bravo-1a", "bravo-1-test"]}).parallel == ["bravo-1a", "bravo-1-test"]


def test_the_form_and_the_policy_module_share_one_list_of_policies():
    schema = EtlRequest.params()["schema_change_policy"].schema
    assert tuple(schema["enum"]) == policy.POLICIES == ("auto_safe", "apply_all", "abort", "ask")


@pytest.mark.parametrize(
    "conf,named",
    [
        ({"batch_size": 0}, "param batch_size: Input should be greater than or equal to 1"),
        ({"refresh_strategy": "nightly"}, "param refresh_strategy"),
        ({"mongo_db": "admin"}, "'admin' is a MongoDB system database"),
        ({"mongo_db": "a/b"}, "may not contain '/'"),
        ({"also_publish_to": ["bravo-1"]}, "also_publish_to: 'bravo-1' is mongo_db itself"),
        ({"also_publish_to": ["x.y"]}, "param also_publish_to.0"),
        ({"dryrun": True}, "unknown param(s) dryrun: EtlRequest accepts mapping, source"),
    ],
)
def test_a_bad_value_is_named(conf, named):
    with pytest.raises(RequestError) as exc:
        EtlRequest.of(conf)
    assert named in str(exc.value)


def test_the_rollback_request():
    r = RollbackRequest.of({"mongo_db": "bravo-2", "version": ""})
    assert r.version is None and r.target == "bravo-2" and r.meta == runs.meta_db("bravo-2")


def test_task_ids_the_tasks_read_are_the_dags_task_ids():
    from airflow.models import DagBag

    from ferry_dev.devstack import REPO_ROOT

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "etl.py")).dags["production_etl"]
    assert {runs.ACQUIRE, runs.DETECT, runs.REVIEW, runs.PLAN, runs.CONTRACT} <= set(dag.task_ids)
