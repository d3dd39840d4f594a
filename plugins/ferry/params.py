"""Param helpers for the trigger form, and parsing of flags. Imported by DAG files at parse time: keep it light.

In Airflow's trigger form a param whose schema does not admit ``null`` is *required*: an empty default
(``""``, ``[]``) disables the Trigger button. Optional params are therefore ``type: ["null", ...]`` with a
``None`` default, and the library reads ``None`` (and ``""``, which the form may send for a cleared field)
as "use the documented default".
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def optional(type_: str, description: str, *, default: Any = None, **schema: Any) -> Param:
    """An optional param of JSON-schema ``type_``; empty means the default that ``description`` states."""
    return Param(default, type=["null", type_], description=description, **schema)


def optional_date(description: str) -> Param:
    """An optional calendar day (``YYYY-MM-DD``; the form shows a date picker)."""
    return Param(None, type=["null", "string"], format="date", description=description)


def choices(values: list[str], description: str, *, default: list[str] | None = None, min_items: int = 0) -> Param:
    """A multi-select of ``values`` (an array of allowed values, each at most once).

    The trigger form renders an array as a multi-select only when the schema itself lists ``examples`` (or
    ``enum``); ``items.enum`` alone gives a free-text box. ``items.enum`` is what validates."""
    return Param(
        list(values if default is None else default),
        type="array",
        examples=list(values),
        items={"type": "string", "enum": list(values)},
        uniqueItems=True,
        minItems=min_items,
        description=description,
    )


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


def given(value: Any) -> bool:
    """Whether an optional param was filled in (``None``, ``""`` and ``[]`` mean "not given")."""
    return value not in (None, "", [], {})


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
