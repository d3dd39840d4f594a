"""MongoIndexCloneOperator: clone databases' collections, options and indexes (no documents)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ferry.params import truthy


def as_list(value: Any, name: str) -> list[str]:
    """A list of names from a list, a JSON list string or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}={value!r} is not a list of database names")
    return list(value)


class MongoIndexCloneOperator(BaseOperator):
    """Clone the structure of ``source_databases`` (``source_conn_id``) to ``<name><target_suffix>`` on
    ``target_conn_id``.

    Creates missing collections with their options (views after their sources), then one
    ``createIndexes`` per collection; search indexes where the target supports them, else a
    hand-over report. ``dry_run`` only logs the plan. Fails at the end listing every object the
    target rejected. Returns one summary row per database.
    """

    template_fields: Sequence[str] = (
        "source_databases",
        "target_suffix",
        "plan_only",
        "drop_extra_indexes",
        "include_search_indexes",
        "allow_nonempty_target",
        "verify_vector_search",
    )
    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        source_databases: list[str] | str,
        source_conn_id: str = "ferry_mongo_prod",
        target_conn_id: str = "ferry_mongo_dev",
        target_suffix: str = "_dev",
        dry_run: bool | str = True,
        drop_extra_indexes: bool | str = False,
        include_search_indexes: bool | str = True,
        allow_nonempty_target: bool | str = False,
        search_timeout: float = 600.0,
        verify_vector_search: bool | str = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.source_databases = source_databases
        self.source_conn_id = source_conn_id
        self.target_conn_id = target_conn_id
        self.target_suffix = target_suffix
        # the ``dry_run`` argument; not ``self.dry_run``, which is ``BaseOperator.dry_run()``
        self.plan_only = dry_run
        self.drop_extra_indexes = drop_extra_indexes
        self.include_search_indexes = include_search_indexes
        self.allow_nonempty_target = allow_nonempty_target
        self.search_timeout = search_timeout
        self.verify_vector_search = verify_vector_search

    def options(self):
        from ferry.devclone.clone import CloneOptions

        return CloneOptions(
            target_suffix=self.target_suffix,
            dry_run=truthy(self.plan_only, "dry_run"),
            drop_extra_indexes=truthy(self.drop_extra_indexes, "drop_extra_indexes"),
            include_search_indexes=truthy(self.include_search_indexes, "include_search_indexes"),
            allow_nonempty_target=truthy(self.allow_nonempty_target, "allow_nonempty_target"),
            search_timeout=float(self.search_timeout),
            verify_vector_search=truthy(self.verify_vector_search, "verify_vector_search"),
        )

    def execute(self, context) -> list[dict]:
        from ferry import audit, conns
        from ferry.devclone import runs
        from ferry.errors import fails_fast

        with conns.mongo_client(self.source_conn_id) as source, conns.mongo_client(self.target_conn_id) as target:
            return fails_fast(runs.clone_structure)(
                source,
                target,
                as_list(self.source_databases, "source_databases"),
                self.options(),
                run_id=str(context["run_id"]),
                dag_id=self.dag_id,
                who=audit.who(context),
                logger=self.log,
            )
