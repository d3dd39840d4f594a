"""What to do about detected schema changes (param ``schema_change_policy`` and the human's answer)."""

from __future__ import annotations

from typing import Any, Literal, get_args

#: ``schema_change_policy``: the run request's type (``ferry.etl.request``) and the values checked here.
Policy = Literal["auto_safe", "apply_all", "abort", "ask"]
POLICIES: tuple[str, ...] = get_args(Policy)
APPLY_ALL, SKIP, ABORT, REVIEW = "Apply all", "Skip schema updates", "Abort", "Review each change"
OPTIONS = [APPLY_ALL, SKIP, ABORT, REVIEW]

#: action -> status of the snapshot
STATUS = {
    "none": "accepted",
    "apply_safe": "accepted",
    "apply_all": "accepted",
    "review": "accepted",
    "skip": "skipped",
    "abort": "rejected",
}

#: per-change review (``Review each change``): the choices of each change's form field
APPLY, SKIP_ONE = "apply", "skip"
CAST, KEEP_TYPE, QUARANTINE = "cast", "keep old type", "quarantine rows that don't cast"
RENAME, DROP_ADD = "rename", "drop and add"
CHOICES = {
    "type_changed": [CAST, KEEP_TYPE, QUARANTINE, SKIP_ONE],
    "column_renamed_likely": [RENAME, DROP_ADD, SKIP_ONE],
}
DEFAULT_SUFFIX = "__default"


def needs_human(policy: str, changes: list[dict]) -> bool:
    return policy == "ask" and bool(changes)


def change_key(i: int, change: dict) -> str:
    """The form field of change ``i`` (a stable, readable parameter name)."""
    import re

    raw = f"{i + 1:02d}_{change['kind']}_{change['table']}_{change.get('column') or ''}".rstrip("_")
    return re.sub(r"[^A-Za-z0-9_]", "_", raw)


def review_params(changes: list[dict], impact: dict[str, str] | None = None) -> dict[str, dict]:
    """The per-change review form: ``{field: {"value", "enum"|"type", "description", "title"}}`` (plain data,
    turned into HITL params by ``SchemaReviewOperator``). One field per change (apply / skip, or the cast
    strategy of a type change, or rename / drop and add); a new required column also gets its default.
    With ``impact`` (field -> text, ``ferry.etl.impact.summaries``) each description says what each choice
    does to the consumer contract."""
    out: dict[str, dict] = {}
    for i, ch in enumerate(changes):
        key = change_key(i, ch)
        where = ch["table"] + (f".{ch['column']}" if ch.get("column") else "")
        choices = CHOICES.get(ch["kind"], [APPLY, SKIP_ONE])
        out[key] = {
            "value": choices[0],
            "enum": choices,
            "title": f"{ch['kind']} {where}",
            "description": f"{ch['class']}: {ch.get('detail') or ''}".strip(),
        }
        if impact and impact.get(key):
            out[key]["description"] += f" Contract: {impact[key]}."
        if ch["kind"] == "column_added_required":
            out[key + DEFAULT_SUFFIX] = {
                "value": "",
                "type": "string",
                "title": f"default of {where}",
                "description": "Value for documents whose row has none (empty: no default).",
            }
    return out


def review_decisions(changes: list[dict], params_input: dict | None, responder: str | None) -> list[dict]:
    """The reviewer's choice per change (an unanswered field takes its form default), each with who decided."""
    form = review_params(changes)
    given = params_input or {}
    out = []
    for i, ch in enumerate(changes):
        key = change_key(i, ch)
        choice = given.get(key, form[key]["value"])
        if choice not in form[key]["enum"]:
            raise ValueError(f"review field {key}: {choice!r} is not one of {form[key]['enum']}")
        d = {"field": key, "kind": ch["kind"], "table": ch["table"], "column": ch.get("column"), "choice": choice}
        if key + DEFAULT_SUFFIX in form:
            d["default"] = given.get(key + DEFAULT_SUFFIX) or None
        out.append({**d, "by": responder or "reviewer"})
    return out


def decide(
    policy: str,
    changes: list[dict],
    chosen: list[str] | None = None,
    responder: str | None = None,
    params_input: dict | None = None,
) -> dict:
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
    action = {APPLY_ALL: "apply_all", SKIP: "skip", ABORT: "abort", REVIEW: "review"}.get(choice)
    if action is None:
        raise ValueError(f"unknown review answer {choice!r}; expected one of {OPTIONS}")
    decided: dict[str, Any] = {
        **out,
        "action": action,
        "reason": f"reviewer chose {choice!r}",
        "by": responder or "reviewer",
    }
    if action == "review":
        per_change = review_decisions(changes, params_input, responder)
        skipped = sum(1 for d in per_change if d["choice"] == SKIP_ONE)
        decided["changes"] = per_change
        decided["reason"] += f": {len(changes) - skipped} change(s) applied, {skipped} skipped"
    return decided
