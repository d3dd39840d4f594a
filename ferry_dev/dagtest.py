"""Run Ferry's DAGs in-process with ``dag.test()`` (the demo and the end-to-end tests use this).

The environment (``AIRFLOW_HOME``, ``AIRFLOW_CONN_*``) must be set before Airflow is imported:
see ``ferry_dev.devstack.airflow_env``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

from ferry_dev.devstack import REPO_ROOT


class DagRunFailed(AssertionError):
    def __init__(self, dag_id: str, states: dict[str, str | None]):
        failed = {t: s for t, s in states.items() if s not in ("success", "skipped")}
        super().__init__(f"DAG {dag_id} did not succeed; task states: {failed}")
        self.states = states


@functools.cache
def _migrated() -> bool:
    from airflow.utils.db import initdb

    initdb()
    return True


@functools.cache
def dagbag(dag_folder: str | None = None):
    from airflow.models import DagBag

    bag = DagBag(dag_folder=dag_folder or str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag


def get_dag(dag_id: str, fresh: bool = True):
    """The DAG object; ``fresh`` re-parses its file so no state (e.g. param values) leaks between runs."""
    dag = dagbag().get_dag(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r} in {REPO_ROOT / 'dags'}; known: {sorted(dagbag().dag_ids)}")
    if fresh:
        from airflow.models import DagBag

        dag = DagBag(dag_folder=dag.fileloc).get_dag(dag_id)
    return dag


def run_dag(
    dag_id: str,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    *,
    check: bool = True,
    mark_success_pattern: str | None = None,
):
    """Run one DAG run with ``dag.test()``; raise ``DagRunFailed`` naming failed tasks when ``check``."""
    _migrated()
    _fresh_lineage_collector()
    dag = get_dag(dag_id)
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    if mark_success_pattern:
        kwargs["mark_success_pattern"] = mark_success_pattern
    dr = dag.test(**kwargs)
    if check and dr.state != "success":
        raise DagRunFailed(dag_id, task_states(dr))
    return dr


def _fresh_lineage_collector() -> None:
    """Empty Airflow's hook lineage collector before a run. A worker runs each task in a process of its own,
    so its collector starts empty; ``dag.test()`` in a long test process keeps one collector (a cached
    singleton) for every run, and it stops collecting at ``[lineage] max_assets_per_collector`` (100), so
    later runs' events would name only what earlier runs reported."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # pragma: no cover - an Airflow without hook lineage
        return
    collector = get_hook_lineage_collector()
    for name in ("_inputs", "_outputs", "_extra", "_input_counts", "_output_counts", "_extra_counts"):
        store = getattr(collector, name, None)
        if hasattr(store, "clear"):
            store.clear()


def task_states(dr) -> dict[str, str | None]:
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dr.get_task_instances(session=session) if hasattr(dr, "get_task_instances") else []
        return {ti.task_id: (str(ti.state) if ti.state else None) for ti in tis}


def xcom(dr, task_id: str, key: str = "return_value") -> Any:
    """The XCom a task of ``dr`` pushed (a list for a mapped task, by map index)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key=key)
            .order_by(XComModel.map_index)
            .all()
        )
        if not rows:
            return None
        if rows[0].map_index < 0:
            return XComModel.deserialize_value(rows[0])
        return [XComModel.deserialize_value(r) for r in rows]  # a mapped task: one per map index


def dags_folder() -> Path:
    return REPO_ROOT / "dags"
