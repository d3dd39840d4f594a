"""``ApprovalOperator`` that leaves the answer where later tasks can read it, whatever it was.

On "Reject", Airflow's ``ApprovalOperator`` skips its downstream tasks by raising ``DownstreamTasksSkipped``,
so its return value (who answered, when, what) never reaches XCom. Ferry audits rejections: this operator
pushes the answer under the XCom key ``answer`` first.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

ANSWER_KEY = "answer"


class RecordedApprovalOperator(ApprovalOperator):
    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            at: Any = event.get("responded_at")
            context["ti"].xcom_push(
                key=ANSWER_KEY,
                value={
                    "chosen_options": event.get("chosen_options"),
                    "responded_by_user": event.get("responded_by_user"),
                    "responded_at": at.isoformat() if hasattr(at, "isoformat") else at,
                },
            )
        return super().execute_complete(context=context, event=event)
