"""Flags from rendered templates, and the refusal of conf keys a DAG does not have. Imported by DAG files at
parse time: keep it light. (The params themselves are declared as typed requests: ``ferry.request``.)
"""

from __future__ import annotations

from typing import Any

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def truthy(value: Any, name: str) -> bool:
    """A flag from a bool, or ``true/1/yes`` / ``false/0/no/""`` in any case (rendered templates, env vars)."""
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean: use true/1/yes or false/0/no")


def unknown_conf_keys(conf: Any, params: Any) -> list[str]:
    """Keys of a run's ``conf`` that are not params of its DAG (a misspelled ``dryrun`` is not ``dry_run``)."""
    return sorted(set(conf or {}) - set(params or {}))


def refuse_unknown_conf(context: Any) -> None:
    """``pre_execute`` of every Ferry task (``ferry.dagdefaults``): a run whose ``conf`` names a key its DAG
    does not have fails at its first task, before any read or write, naming the key and the accepted ones.
    Airflow itself ignores such keys silently. Teardowns run anyway (they release what a setup took)."""
    task, dag_run, dag = context.get("task"), context.get("dag_run"), context.get("dag")
    if getattr(task, "is_teardown", False) or dag_run is None or dag is None:
        return
    unknown = unknown_conf_keys(getattr(dag_run, "conf", None), dag.params)
    if unknown:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(
            f"{dag.dag_id}: unknown param(s) {', '.join(map(repr, unknown))} in the run's conf; accepted: "
            f"{', '.join(sorted(dag.params))}. Nothing was read or written."
        )
