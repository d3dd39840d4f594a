"""MongoDriftCheckOperator: compare production databases with their structure clones, optionally repair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ferry.operators.mongo_index_clone import as_list
from ferry.params import truthy


class MongoDriftCheckOperator(BaseOperator):
    """Diff each of ``source_databases`` (``source_conn_id``) against ``<name><target_suffix>`` on
    ``target_conn_id``; with ``repair`` create what is missing and re-apply changed validators first.

    Logs one table per database, fails listing every difference left. Returns one summary row per database.
    """

    template_fields: Sequence[str] = ("source_databases", "target_suffix", "repair", "include_search_indexes")
    ui_color = "#fff3c4"

    def __init__(
        self,
        *,
        source_databases: list[str] | str,
        source_conn_id: str = "ferry_mongo_prod",
        target_conn_id: str = "ferry_mongo_dev",
        target_suffix: str = "_dev",
        repair: Any = False,
        include_search_indexes: Any = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.source_databases, self.target_suffix = source_databases, target_suffix
        self.source_conn_id, self.target_conn_id = source_conn_id, target_conn_id
        self.repair, self.include_search_indexes = repair, include_search_indexes

    def execute(self, context) -> list[dict]:
        from ferry import audit, conns
        from ferry.devclone import runs
        from ferry.errors import fails_fast

        with conns.mongo_client(self.source_conn_id) as source, conns.mongo_client(self.target_conn_id) as target:
            return fails_fast(runs.drift_check)(
                source,
                target,
                as_list(self.source_databases, "source_databases"),
                suffix=self.target_suffix,
                repair=truthy(self.repair, "repair"),
                include_search=truthy(self.include_search_indexes, "include_search_indexes"),
                run_id=str(context["run_id"]),
                dag_id=self.dag_id,
                who=audit.who(context),
                logger=self.log,
            )
