"""The base of the dev-clone operators: production databases and their structure clones."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator


def as_list(value: Any, name: str) -> list[str]:
    """A list of names from a list, a JSON list string or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}={value!r} is not a list of database names")
    return list(value)


class MongoStructureOperator(BaseOperator):
    """``source_databases`` on ``source_conn_id`` and their clones ``<name><target_suffix>`` on ``target_conn_id``."""

    template_fields: Sequence[str] = ("source_databases", "target_suffix")

    def __init__(
        self,
        *,
        source_databases: list[str] | str,
        source_conn_id: str = "ferry_mongo_prod",
        target_conn_id: str = "ferry_mongo_dev",
        target_suffix: str = "_dev",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.source_databases = source_databases
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.target_suffix = target_suffix

    def run_with_clients(self, context, entry: Callable[..., list[dict]], *args: Any, **kwargs: Any) -> list[dict]:
        """``entry(source client, target client, databases, *args, run=, logger=, context=, **kwargs)`` (a
        ``ferry.devclone.runs`` function) with both connections open; a ``FerryError`` fails the task at once."""
        from ferry import audit, conns
        from ferry.errors import fails_fast
        from ferry.request import check_database

        run = audit.Run(dag_id=self.dag_id, run_id=str(context["run_id"]), who=audit.who(context))
        databases = as_list(self.source_databases, "source_databases")
        for name in databases:  # refused before any connection opens
            check_database("source_databases", str(name), "DevCloneRequest")
            check_database("target_suffix", f"{name}{self.target_suffix}", "DevCloneRequest")
        with conns.mongo_client(self.source_conn_id) as source, conns.mongo_client(self.target_conn_id) as target:
            return fails_fast(entry)(
                source, target, databases, *args, run=run, logger=self.log, context=context, **kwargs
            )
