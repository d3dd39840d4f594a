"""Who may answer an approval: FERRY_APPROVERS as Airflow's assigned_users, minus the triggering user, and the
four-eyes check of an answer when it arrives (ferry.approvals, ferry.operators.approval)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ferry.approvals import ANSWER_KEY, Assignment
from ferry.errors import FerryError


def _ctx(user: str | None = "alice") -> dict:
    pushed: dict = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value), pushed=pushed)
    return {"dag_run": SimpleNamespace(triggering_user_name=user, run_type="manual"), "ti": ti}


def test_assigned_users_are_the_approvers_but_not_the_triggering_user(monkeypatch):
    monkeypatch.setenv("FERRY_APPROVERS", "alice, bob,carol")
    a = Assignment.of(_ctx("alice"))
    assert a.assigned_users() == [{"id": "bob", "name": "bob"}, {"id": "carol", "name": "carol"}]
    assert Assignment.of(_ctx(None)).assigned_users()[0] == {"id": "alice", "name": "alice"}  # scheduled run
    monkeypatch.setenv("FERRY_ALLOW_SELF_APPROVAL", "true")
    assert [u["id"] for u in Assignment.of(_ctx("alice")).assigned_users()] == ["alice", "bob", "carol"]


def test_nobody_left_to_approve_is_refused_before_asking(monkeypatch):
    monkeypatch.setenv("FERRY_APPROVERS", "alice")
    with pytest.raises(FerryError, match="FERRY_APPROVERS names only 'alice', who triggered it"):
        Assignment.of(_ctx("alice")).assigned_users()
    monkeypatch.delenv("FERRY_APPROVERS")
    assert Assignment.of(_ctx("alice")).assigned_users() == []  # Airflow's default: anyone with edit rights


def test_an_answer_from_the_triggering_user_or_a_stranger_does_not_count(monkeypatch):
    monkeypatch.delenv("FERRY_APPROVERS", raising=False)
    a = Assignment.of(_ctx("alice"))
    assert "triggered this run and may not approve it" in a.refusal({"id": "alice", "name": "alice"})
    assert a.refusal({"id": "bob", "name": "bob"}) is None
    monkeypatch.setenv("FERRY_APPROVERS", "bob")
    assert "not one of FERRY_APPROVERS ['bob']" in Assignment.of(_ctx("alice")).refusal({"id": "eve"})
    monkeypatch.setenv("FERRY_ALLOW_SELF_APPROVAL", "yes")
    monkeypatch.setenv("FERRY_APPROVERS", "alice")
    assert Assignment.of(_ctx("alice")).refusal({"id": "alice"}) is None
    monkeypatch.setenv("FERRY_ALLOW_SELF_APPROVAL", "maybe")
    with pytest.raises(ValueError, match="FERRY_ALLOW_SELF_APPROVAL='maybe' is not a boolean"):
        Assignment.of(_ctx("alice"))


def test_the_operator_assigns_when_it_runs_and_refuses_a_self_approval(monkeypatch):
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.sdk.exceptions import AirflowFailException

    from ferry.operators.approval import RecordedApprovalOperator

    monkeypatch.setenv("FERRY_APPROVERS", "alice,bob")
    asked: dict = {}
    monkeypatch.setattr(ApprovalOperator, "execute", lambda self, context: asked.update(users=self.assigned_users))
    monkeypatch.setattr(ApprovalOperator, "execute_complete", lambda self, context, event: "approved")
    op = RecordedApprovalOperator(task_id="approve", subject="s")
    ctx = _ctx("alice")
    op.execute(ctx)
    assert asked["users"] == [{"id": "bob", "name": "bob"}]  # what Airflow checks an answer against (403)

    event = {"chosen_options": ["Approve"], "responded_by_user": {"id": "bob", "name": "bob"}, "responded_at": None}
    assert op.execute_complete(ctx, event) == "approved"
    assert ctx["ti"].pushed[ANSWER_KEY]["refused"] is None
    # all-admins mode lets anyone answer: the answer is still checked
    event = {**event, "responded_by_user": {"id": "alice", "name": "alice"}}
    with pytest.raises(AirflowFailException, match="'alice' triggered this run"):
        op.execute_complete(ctx, event)
    assert ctx["ti"].pushed[ANSWER_KEY]["chosen_options"] == ["Approve"]
    assert "four eyes" in ctx["ti"].pushed[ANSWER_KEY]["refused"]

    monkeypatch.setenv("FERRY_APPROVERS", "alice")
    with pytest.raises(AirflowFailException, match="nobody may approve this run"):
        op.execute(ctx)
    assert "nobody may approve" in ctx["ti"].pushed[ANSWER_KEY]["refused"]
