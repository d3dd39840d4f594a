"""The steps of production_etl that need no Airflow (the DAG calls these; tests call them directly)."""

from __future__ import annotations

import logging

from ferry.errors import FerryError
from ferry.etl import acquire, mapping, policy, schema

log = logging.getLogger(__name__)


class Aborted(FerryError):
    """Schema changes stopped the run before any write to the target."""


def plan(
    meta_db,
    mapping_path: str,
    detected: dict,
    policy_name: str,
    chosen: list[str] | None = None,
    responder: str | None = None,
    logger: logging.Logger = log,
) -> dict:
    """Decide about ``detected`` (the operator's XCom), build the effective mapping, record both.

    Raises ``Aborted`` (after recording the decision) when the run must stop; nothing was written
    to the target by then.
    """
    m = mapping.load(mapping_path)
    snaps = meta_db[schema.SNAPSHOTS]
    current = snaps.find_one({"_id": detected["snapshot_id"]})
    base = (
        snaps.find_one({"source": current["source"], "version": detected["base_version"]})
        if detected["base_version"] is not None
        else None
    )
    if current["snapshot"]["schema"] != m["source"]["schema"]:
        raise mapping.MappingError(
            f"{mapping_path}: source.schema is {m['source']['schema']!r} but the snapshot is of "
            f"{current['snapshot']['schema']!r}: set the pg_schema param to match"
        )
    changes = detected["changes"]
    decision = policy.decide(policy_name, changes, chosen, responder)
    status = policy.STATUS[decision["action"]]
    logger.info("schema decision: %s (%s)", decision["action"], decision["reason"])
    if decision["action"] == "abort":
        schema.record_decision(meta_db, current["_id"], status, decision, None)
        raise Aborted(f"production_etl stopped before any write: {decision['reason']}\n{schema.markdown(changes)}")
    if base is not None and base.get("effective_mapping") and base["effective_mapping"].get("hash") == m["hash"]:
        eff = base["effective_mapping"]
    else:
        eff = mapping.resolve(m, (base or current)["snapshot"])
    applied: list[dict] = []
    if decision["action"] in ("apply_safe", "apply_all"):
        eff, applied = mapping.evolve(eff, changes, apply_breaking=decision["action"] == "apply_all")
    mapping.check_columns(eff, current["snapshot"])
    eff = acquire.add_join_keys(eff, current["snapshot"])
    decision["mapping_changes"] = applied
    schema.record_decision(meta_db, current["_id"], status, decision, eff)
    if applied:
        from ferry.report import table

        logger.info("effective mapping extended:\n%s", table(applied))
    return {"decision": decision, "effective_mapping": eff, "snapshot": current["snapshot"]}
