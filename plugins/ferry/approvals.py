"""Who may answer an approval before a production write: the approvers setting and the four-eyes rule.

``FERRY_APPROVERS`` names the Airflow user ids who may answer; the approval step hands them to Airflow as the
human-in-the-loop task's ``assigned_users``, minus the user who triggered the run (unless
``FERRY_ALLOW_SELF_APPROVAL=true``), so the UI and the REST API refuse anyone else themselves (403). With no
approvers set, Airflow lets any user who may edit the DAG answer; the triggering user's answer is then
refused when it arrives (the step fails, nothing is written, the refusal is audited).

Scheduled and backfill runs have no triggering user: every approver may answer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry import settings
from ferry.errors import FerryError

#: The XCom key an approval step keeps its answer under (with ``refused``: why it does not count).
ANSWER_KEY = "answer"


@dataclass(frozen=True)
class Assignment:
    """The approvers of one run: who triggered it, who is configured, whether self-approval is allowed."""

    triggered_by: str | None
    approvers: tuple[str, ...]
    allow_self: bool = False

    @classmethod
    def of(cls, context: Any) -> Assignment:
        dr = context.get("dag_run") if hasattr(context, "get") else None
        user = getattr(dr, "triggering_user_name", None)
        return cls(str(user) if user else None, tuple(settings.approvers()), settings.allow_self_approval())

    def assigned_users(self) -> list[dict]:
        """Airflow's ``assigned_users`` (``[]``: anyone with edit rights may answer). Refuses a step nobody but
        the triggering user could answer before it is asked."""
        allowed = [a for a in self.approvers if self.allow_self or a != self.triggered_by]
        if self.approvers and not allowed:
            raise FerryError(
                f"nobody may approve this run: FERRY_APPROVERS names only {self.triggered_by!r}, who triggered it, "
                "and four eyes are required (add another approver, or set FERRY_ALLOW_SELF_APPROVAL=true); "
                "nothing was written"
            )
        return [{"id": a, "name": a} for a in allowed]

    def refusal(self, responder: dict | None) -> str | None:
        """Why an answer from ``responder`` does not count (``None``: it counts)."""
        user = (responder or {}).get("id") or (responder or {}).get("name")
        if self.approvers and user not in self.approvers:  # Airflow refuses them first, unless all are admins
            return f"{user!r} is not one of FERRY_APPROVERS {list(self.approvers)}: nothing was written"
        if self.allow_self or not self.triggered_by or user != self.triggered_by:
            return None
        return (
            f"{user!r} triggered this run and may not approve it too (four eyes; "
            "FERRY_ALLOW_SELF_APPROVAL=true allows it): nothing was written"
        )
