"""Approval steps before a production write: who may answer (``ferry.approvals``), and the answer kept.

``FourEyes`` gives a human-in-the-loop operator its ``assigned_users`` from ``FERRY_APPROVERS`` when it runs
(minus the triggering user), and refuses an answer that breaks the four-eyes rule when it arrives.

On "Reject", Airflow's ``ApprovalOperator`` skips its downstream tasks by raising ``DownstreamTasksSkipped``,
so its return value (who answered, when, what) never reaches XCom. Ferry audits rejections and refusals:
both operators push the answer under the XCom key ``answer`` first (with ``refused``: why, when it does not
count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow.providers.standard.operators.hitl import ApprovalOperator

from ferry.approvals import ANSWER_KEY

if TYPE_CHECKING:
    from airflow.sdk.execution_time.hitl import HITLUser


def _answer(event: dict[str, Any]) -> dict[str, Any]:
    at: Any = event.get("responded_at")
    return {
        "chosen_options": event.get("chosen_options"),
        "params_input": event.get("params_input"),
        "responded_by_user": event.get("responded_by_user"),
        "responded_at": at.isoformat() if hasattr(at, "isoformat") else at,
    }


class FourEyes:
    """Mixin for a ``HITLOperator``: approvers assigned when the task runs, the answer recorded and checked."""

    assigned_users: list[HITLUser] | None

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from ferry.approvals import Assignment
        from ferry.errors import FerryError

        try:
            self.assigned_users = cast("list[HITLUser]", Assignment.of(context).assigned_users())
        except FerryError as e:
            context["ti"].xcom_push(key=ANSWER_KEY, value={"refused": str(e)})
            raise AirflowFailException(str(e)) from None
        names = [u["id"] for u in self.assigned_users or []] or "any user who may edit this DAG"
        self.log.info("approvers of this step: %s", names)  # type: ignore[attr-defined]
        return super().execute(context)  # type: ignore[misc]

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            from airflow.sdk.exceptions import AirflowFailException

            from ferry.approvals import Assignment

            answer = _answer(event)
            refused = Assignment.of(context).refusal(answer["responded_by_user"])
            context["ti"].xcom_push(key=ANSWER_KEY, value={**answer, "refused": refused})
            if refused:
                raise AirflowFailException(refused)
        return super().execute_complete(context=context, event=event)  # type: ignore[misc]


class RecordedApprovalOperator(FourEyes, ApprovalOperator):
    """Airflow's ``ApprovalOperator`` with ``FourEyes``."""
