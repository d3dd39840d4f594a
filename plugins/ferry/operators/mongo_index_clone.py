"""MongoIndexCloneOperator: clone databases' collections, options and indexes (no documents)."""

from __future__ import annotations

from collections.abc import Sequence

from ferry.operators.mongo_structure import MongoStructureOperator
from ferry.params import truthy


class MongoIndexCloneOperator(MongoStructureOperator):
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
        dry_run: bool | str = True,
        drop_extra_indexes: bool | str = False,
        include_search_indexes: bool | str = True,
        allow_nonempty_target: bool | str = False,
        search_timeout: float = 600.0,
        verify_vector_search: bool | str = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
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
        from ferry.devclone import runs

        return self.run_with_clients(context, runs.clone_structure, self.options())
