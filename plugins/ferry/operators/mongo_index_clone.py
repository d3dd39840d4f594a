"""MongoIndexCloneOperator: clone databases' collections, options and indexes (no documents)."""

from __future__ import annotations

import json
from typing import Any, Sequence

from airflow.sdk import BaseOperator


def as_bool(value: Any, name: str) -> bool:
    """A templated flag: bools as is, "true"/"false" (any case) from string rendering; else a clear error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{name}={value!r} is not a boolean")


def as_list(value: Any, name: str) -> list[str]:
    """A list of names from a list, a JSON list string or a comma-separated string."""
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}={value!r} is not a list of database names")
    return list(value)


class MongoIndexCloneOperator(BaseOperator):
    """Clone the structure of ``source_databases`` (``source_conn_id``) to ``<name><target_suffix>`` on ``target_conn_id``.

    Creates missing collections with their options (views after their sources), then one
    ``createIndexes`` per collection; search indexes where the target supports them, else a
    hand-over report. ``dry_run`` only logs the plan. Fails at the end listing every object the
    target rejected. Returns one summary row per database.
    """

    template_fields: Sequence[str] = (
        "source_databases",
        "target_suffix",
        "dry_run",
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
        self.dry_run = dry_run
        self.drop_extra_indexes = drop_extra_indexes
        self.include_search_indexes = include_search_indexes
        self.allow_nonempty_target = allow_nonempty_target
        self.search_timeout = search_timeout
        self.verify_vector_search = verify_vector_search

    def options(self):
        from ferry.devclone.clone import CloneOptions

        return CloneOptions(
            target_suffix=self.target_suffix,
            dry_run=as_bool(self.dry_run, "dry_run"),
            drop_extra_indexes=as_bool(self.drop_extra_indexes, "drop_extra_indexes"),
            include_search_indexes=as_bool(self.include_search_indexes, "include_search_indexes"),
            allow_nonempty_target=as_bool(self.allow_nonempty_target, "allow_nonempty_target"),
            search_timeout=float(self.search_timeout),
            verify_vector_search=as_bool(self.verify_vector_search, "verify_vector_search"),
        )

    def execute(self, context) -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException

        from ferry import conns, report
        from ferry.devclone import clone

        opts = self.options()
        names = as_list(self.source_databases, "source_databases")
        run_id = str(context.get("run_id") or "manual").replace(":", "_").replace("+", "_")
        out_dir = report.artifacts_dir("dev_db_clone", run_id)
        results: list = []
        with conns.mongo_client(self.source_conn_id) as source, conns.mongo_client(self.target_conn_id) as target:
            try:
                pairs = clone.preflight(source, target, names, opts)
            except clone.GuardError as exc:
                raise AirflowFailException(str(exc)) from exc
            progress = report.Progress(self.log, "databases cloned", total=len(pairs))
            for src_name, tgt_name in pairs:
                try:
                    res = clone.clone_database(
                        source[src_name], target[tgt_name], opts, report_dir=out_dir / tgt_name, logger=self.log
                    )
                except clone.GuardError as exc:
                    raise AirflowFailException(str(exc)) from exc
                results.append(res)
                title = f"{'Plan (dry run)' if opts.dry_run else 'Clone'} {src_name} → {tgt_name}"
                rows = [{k: v for k, v in r.items() if k != "database"} for r in clone.report_rows(res)]
                report.log_table(self.log, title, rows)
                (out_dir / f"{tgt_name}.md").write_text(f"# {title}\n\n{report.table(rows)}\n")
                if res.search_report:
                    self.log.info("search indexes need manual steps: %s", res.search_report)
                progress.add(1)
            progress.log(final=True)
        summary = [r.summary() for r in results]
        report.log_table(self.log, "Structure clone summary", summary)
        failures = [f for r in results for f in r.failures]
        if failures:
            report.log_table(self.log, "Objects the target rejected", failures)
            raise AirflowFailException(str(clone.CloneFailed(failures)))
        return summary
