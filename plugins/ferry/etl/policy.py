"""What to do about detected schema changes (param ``schema_change_policy`` and the human's answer)."""

from __future__ import annotations

POLICIES = ("auto_safe", "apply_all", "abort", "ask")
APPLY_ALL, SKIP, ABORT = "Apply all", "Skip schema updates", "Abort"
OPTIONS = [APPLY_ALL, SKIP, ABORT]

#: action -> status of the snapshot
STATUS = {"none": "accepted", "apply_safe": "accepted", "apply_all": "accepted", "skip": "skipped", "abort": "rejected"}


def needs_human(policy: str, changes: list[dict]) -> bool:
    return policy == "ask" and bool(changes)


def decide(policy: str, changes: list[dict], chosen: list[str] | None = None, responder: str | None = None) -> dict:
    """``{"action": none|apply_safe|apply_all|skip|abort, "reason", "policy", "by"}``."""
    if policy not in POLICIES:
        raise ValueError(f"schema_change_policy {policy!r} is not one of {', '.join(POLICIES)}")
    # a breaking change that leaves every document as it was (``affects_documents`` False) does not stop a run
    breaking = [c for c in changes if c["class"] == "breaking" and c.get("affects_documents", True)]
    out = {"policy": policy, "by": responder or "policy"}
    if not changes:
        return {**out, "action": "none", "reason": "no schema changes"}
    if policy == "apply_all":
        return {**out, "action": "apply_all", "reason": f"{len(changes)} change(s) applied by policy"}
    if policy == "abort":
        return {**out, "action": "abort", "reason": f"{len(changes)} schema change(s) and policy is abort"}
    if policy == "auto_safe":
        if breaking:
            return {
                **out,
                "action": "abort",
                "reason": f"{len(breaking)} breaking change(s): "
                + "; ".join(f"{c['kind']} {c['table']}" + (f".{c['column']}" if c["column"] else "") for c in breaking),
            }
        inert = sum(1 for c in changes if c["class"] == "breaking")
        note = f" ({inert} breaking by class, but no document changes)" if inert else ""
        return {**out, "action": "apply_safe", "reason": f"{len(changes)} safe change(s) applied{note}"}
    # ask
    if not chosen:
        return {**out, "action": "abort", "reason": "no decision was recorded for the schema review"}
    choice = chosen[0]
    action = {APPLY_ALL: "apply_all", SKIP: "skip", ABORT: "abort"}.get(choice)
    if action is None:
        raise ValueError(f"unknown review answer {choice!r}; expected one of {OPTIONS}")
    return {**out, "action": action, "reason": f"reviewer chose {choice!r}", "by": responder or "reviewer"}
