"""MongoDriftCheckOperator: compare production databases with their structure clones, optionally repair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ferry.operators.mongo_structure import MongoStructureOperator
from ferry.params import truthy


class MongoDriftCheckOperator(MongoStructureOperator):
    """Diff each of ``source_databases`` (``source_conn_id``) against ``<name><target_suffix>`` on
    ``target_conn_id``; with ``repair`` create what is missing and re-apply changed validators first.

    Logs one table per database, fails listing every difference left. Returns one summary row per database.
    """

    template_fields: Sequence[str] = ("source_databases", "target_suffix", "repair", "include_search_indexes")
    ui_color = "#fff3c4"

    def __init__(self, *, repair: Any = False, include_search_indexes: Any = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.repair, self.include_search_indexes = repair, include_search_indexes

    def execute(self, context) -> list[dict]:
        from ferry.devclone import runs

        return self.run_with_clients(
            context,
            runs.drift_check,
            runs.DriftOptions(
                suffix=self.target_suffix,
                repair=truthy(self.repair, "repair"),
                include_search=truthy(self.include_search_indexes, "include_search_indexes"),
            ),
        )
