"""The steps of production_etl that need no Airflow (the DAG calls these; tests call them directly)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ferry.errors import FerryError
from ferry.etl import acquire, mapping, policy, schema

log = logging.getLogger(__name__)


class Aborted(FerryError):
    """Schema changes stopped the run before any write to the target."""


@dataclass(frozen=True)
class Answer:
    """The reviewer's answer to ``review_schema_changes`` (Airflow's HITL XCom), when there was a review."""

    chosen: list[str] | None = None
    responder: str | None = None
    params_input: dict | None = None

    @classmethod
    def of(cls, xcom: dict | None) -> Answer:
        xcom = xcom or {}
        return cls(
            xcom.get("chosen_options"), (xcom.get("responded_by_user") or {}).get("name"), xcom.get("params_input")
        )


def plan(
    meta_db,
    mapping_path: str,
    detected: dict,
    policy_name: str,
    answer: Answer | None = None,
    *,
    new_tables: str | None = None,
    logger: logging.Logger = log,
) -> dict:
    """Decide about ``detected`` (the operator's XCom), build the effective mapping, record both.

    Raises ``Aborted`` (after recording the decision) when the run must stop; nothing was written
    to the target by then.
    """
    answer = answer or Answer()
    m = mapping.load(mapping_path)
    current, eff = current_and_base(meta_db, m, mapping_path, detected)
    changes = [{**c, "affects_documents": mapping.affects_documents(eff, c)} for c in detected["changes"]]
    decision = policy.decide(policy_name, changes, answer.chosen, answer.responder, answer.params_input)
    status = policy.STATUS[decision["action"]]
    logger.info("schema decision: %s (%s)", decision["action"], decision["reason"])
    if decision["action"] == "abort":
        schema.record_decision(meta_db, current["_id"], status, decision, None)
        raise Aborted(f"production_etl stopped before any write: {decision['reason']}\n{schema.markdown(changes)}")
    eff, applied = evolve(eff, changes, decision, current["snapshot"], new_tables or m["defaults"]["new_tables"])
    mapping.check_columns(eff, current["snapshot"])
    eff = acquire.add_join_keys(eff, current["snapshot"])
    decision["mapping_changes"] = applied
    schema.record_decision(meta_db, current["_id"], status, decision, eff)
    if applied:
        from ferry.report import table

        logger.info("effective mapping extended:\n%s", table(applied))
    return {"decision": decision, "effective_mapping": eff, "snapshot": current["snapshot"]}


def current_and_base(meta_db, m: dict, mapping_path: str, detected: dict) -> tuple[dict, dict]:
    """The snapshot just taken, and the effective mapping of the accepted one before it (reused when the
    mapping file did not change)."""
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
    if base is not None and base.get("effective_mapping") and base["effective_mapping"].get("hash") == m["hash"]:
        return current, base["effective_mapping"]
    return current, mapping.resolve(m, (base or current)["snapshot"])


def evolve(eff: dict, changes: list[dict], decision: dict, snapshot: dict, new_tables: str) -> tuple[dict, list]:
    """The effective mapping after the decision, and the mapping changes applied."""
    applied: list[dict] = []
    if decision["action"] == "review":  # each change as the reviewer decided
        eff, applied = mapping.evolve(eff, changes, apply_breaking=True, reviewed=decision["changes"])
        if any(d["kind"] == "table_added" and d["choice"] == "apply" for d in decision["changes"]):
            picked = [c for c, d in zip(changes, decision["changes"], strict=True) if d["choice"] == "apply"]
            eff, created = _new_tables(eff, picked, snapshot, new_tables)
            applied += created
    if decision["action"] in ("apply_safe", "apply_all"):
        # breaking changes that leave documents alone are applied under auto_safe too (e.g. a dropped
        # column nothing reads leaves the mapping as it is)
        inert = [c for c in changes if c["class"] == "safe" or not c["affects_documents"]]
        eff, applied = mapping.evolve(eff, changes if decision["action"] == "apply_all" else inert, apply_breaking=True)
        eff, created = _new_tables(eff, changes, snapshot, new_tables)
        applied += created
    return eff, applied


def _new_tables(eff: dict, changes: list[dict], snapshot: dict, mode: str) -> tuple[dict, list[dict]]:
    """``new_tables: create``: a default collection (every column, the primary key as ``_id``) per new table."""
    import copy

    if mode not in mapping.NEW_TABLES:
        raise mapping.MappingError(f"new_tables {mode!r} is not one of {', '.join(mapping.NEW_TABLES)}")
    added = [c for c in changes if c["kind"] == "table_added"]
    if mode != "create" or not added:
        return eff, [
            {"mapping": c["table"], "action": "new table reported (new_tables: report), not loaded"} for c in added
        ]
    eff = copy.deepcopy(eff)
    out = []
    for ch in added:
        coll, what = mapping.default_collection(
            ch["table"], snapshot["tables"][ch["table"]], {c["name"] for c in eff["collections"]}
        )
        if coll is not None:
            eff["collections"].append(coll)
        out.append({"mapping": ch["table"], "action": what})
    return eff, out
