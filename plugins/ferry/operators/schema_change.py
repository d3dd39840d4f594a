"""SchemaChangeDetectOperator: snapshot a PostgreSQL schema, diff it against the last accepted one."""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator

from ferry.operators.approval import FourEyes


class SchemaChangeDetectOperator(BaseOperator):
    """Snapshot ``pg_schema`` of ``database`` (on ``pg_conn_id``) into ``<mongo_db>__ferry._ferry_schema_snapshots``
    and return the classified diff against the last accepted snapshot of ``source_name``.

    With ``mapping`` (the mapping file), the diff also says what each choice of the review does to the consumer
    contract (``ferry.etl.impact``): a table in the log, in ``markdown`` and as ``impact``.

    XCom: ``{"snapshot_id", "version", "base_version", "changes": [...], "summary", "markdown", "impact"}``.
    """

    template_fields: Sequence[str] = ("database", "pg_schema", "mongo_db", "source_name", "mapping")

    def __init__(
        self,
        *,
        pg_conn_id: str,
        mongo_conn_id: str,
        mongo_db: str,
        source_name: str,
        database: str = "",
        pg_schema: str = "public",
        mapping: str = "",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mapping = mapping
        self.pg_conn_id, self.mongo_conn_id = pg_conn_id, mongo_conn_id
        self.database, self.pg_schema, self.mongo_db, self.source_name = database, pg_schema, mongo_db, source_name

    def execute(self, context):
        from ferry import conns, report
        from ferry.etl import schema
        from ferry.etl.names import meta_db

        with conns.pg_connect(self.pg_conn_id, self.database or None) as conn:
            snap = schema.snapshot(conn, self.pg_schema)
        with conns.mongo_client(self.mongo_conn_id) as client:
            meta = client[meta_db(self.mongo_db)]
            base = schema.last_accepted(meta, self.source_name)
            changes = schema.diff(base["snapshot"], snap) if base else []
            doc = schema.store(
                meta, self.source_name, snap, changes, base["version"] if base else None, context["run_id"]
            )
            out = {"snapshot_id": doc["_id"], "version": doc["version"], "base_version": doc["base_version"]}
            impact = self._impact(meta, {**out, "changes": changes})
        summary = schema.summary(changes)
        md = schema.markdown(changes) + _impact_markdown(impact)
        if base is None:
            self.log.info(
                "first snapshot of %s (version %s, %d tables): accepted as the baseline",
                self.source_name,
                doc["version"],
                len(snap["tables"]),
            )
        else:
            self.log.info(
                "schema of %s: snapshot %s vs accepted %s: %s\n%s",
                self.source_name,
                doc["version"],
                base["version"],
                summary,
                md,
            )
        report.publish("etl", context["run_id"], "schema_diff.md", md + "\n")
        out.update(changes=changes, summary=summary, markdown=md, fingerprint=snap["fingerprint"], impact=impact)
        return out

    def _impact(self, meta, detected: dict) -> list[dict]:
        if not self.mapping or not detected["changes"]:
            return []
        import logging

        from ferry import report, settings
        from ferry.etl import impact

        rows = impact.review_impact(meta, str(settings.repo_path(self.mapping)), detected)
        title = f"contract impact per choice (every artifact: {impact.ARTIFACTS})"
        report.log_table(logging.getLogger("ferry.etl"), title, rows)
        return rows


def _impact_markdown(rows: list[dict]) -> str:
    from ferry.etl import impact

    return impact.markdown(rows)


class SchemaReviewOperator(FourEyes, HITLOperator):
    """The schema review (human-in-the-loop): Apply all / Skip schema updates / Abort / Review each change.

    Answered by ``FERRY_APPROVERS`` other than the triggering user (``FourEyes``).

    Its form gets one field per detected change when the task runs (``ferry.etl.policy.review_params``):
    apply or skip; a new required column's default; a type change's cast strategy; rename or drop-and-add.
    The answer (``chosen_options``, ``params_input``, who, when) is the task's XCom, which ``plan`` reads.
    """

    def __init__(self, *, detect_task_id: str = "detect_schema", **kwargs):
        super().__init__(**kwargs)
        self.detect_task_id = detect_task_id

    def execute(self, context):
        from airflow.sdk import Param, ParamsDict  # type: ignore[attr-defined]  # public, lazily exported

        from ferry.etl import impact, policy

        detected = context["ti"].xcom_pull(task_ids=self.detect_task_id) or {}
        contract = impact.summaries(detected.get("impact") or [])
        form = policy.review_params(detected.get("changes") or [], impact=contract)
        self.params = ParamsDict({k: Param(f.pop("value"), **f) for k, f in form.items()})
        return super().execute(context)
