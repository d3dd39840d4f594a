"""The review's contract impact: per change and per choice, what the consumer contract gains or loses, and
whether a consumer breaks; in the review form's field descriptions and the detect task's markdown."""

from __future__ import annotations

import pytest

from ferry.etl import impact, policy
from ferry.etl.names import meta_db
from tests.etl.conftest import MAPPING, detect, run_etl
from tests.helpers import REVIEW_ALTER as ALTER

pytestmark = pytest.mark.integration


def test_each_choice_says_what_it_does_to_the_contract(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    conn.execute(ALTER)
    conn.commit()
    detected = detect(conn, mongo_local, db, run_id="t2")
    rows = impact.review_impact(mongo_local[meta_db(db)], MAPPING, detected)
    got = {}
    for r in rows:
        change = r["change"].split("_", 1)[-1]  # "04_type_changed_accounts_balance" -> without its number
        got.setdefault((change, r["choice"]), set()).add((r["collection"], r["field"], r["contract"], r["consumers"]))
    none = {("-", "-", impact.NO_CHANGE, "-")}
    bal = "type_changed_accounts_balance"
    assert got[bal, policy.CAST] == {("accounts", "balance", "type changed", "BREAKING")}
    assert got[bal, policy.KEEP_TYPE] == none and got[bal, policy.QUARANTINE] == none
    ren = "column_renamed_likely_accounts_area"
    assert got[ren, policy.RENAME] == none  # the field keeps its name: consumers see nothing
    assert got[ren, policy.DROP_ADD] == {
        ("accounts", "region", "field removed", "BREAKING"),
        ("accounts", "area", "field added", "additive"),
        ("campaigns", "account.region", "field removed", "BREAKING"),  # the embedded copy too
        ("campaigns", "account.area", "field added", "additive"),
    }
    (stop,) = got[ren, policy.SKIP_ONE]
    assert stop[2].startswith("the run would stop:") and "'region' not in the source table" in stop[2]
    assert got["column_added_required_accounts_tier", policy.APPLY] == {
        ("accounts", "tier", "field added", "BREAKING")  # a new required field breaks a strict consumer
    }
    assert got["column_added_accounts_notes", policy.APPLY] == {("accounts", "notes", "field added", "additive")}
    assert got["column_added_accounts_notes", policy.SKIP_ONE] == none
    assert ("accounts", "balance", "type changed", "BREAKING") in got["(all)", policy.APPLY_ALL]

    form = policy.review_params(detected["changes"], impact=impact.summaries(rows))
    (key,) = [k for k in form if k.endswith(bal)]
    assert (
        "Contract: cast: accounts.balance type changed (BREAKING); keep old type: no contract change"
        in (form[key]["description"])
    )
    md = impact.markdown(rows)
    assert "Contract impact per choice" in md and "| 0" in md


def test_no_impact_without_an_accepted_schema_or_changes():
    assert impact.review_impact(None, MAPPING, {"changes": [], "base_version": 1}) == []
    assert impact.review_impact(None, MAPPING, {"changes": [{"kind": "x"}], "base_version": None}) == []


def test_the_review_form_carries_the_impact_of_each_choice(monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from ferry.operators.schema_change import SchemaReviewOperator

    shown: dict = {}
    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: shown.update(self.serialized_params))
    op = SchemaReviewOperator(task_id="review", subject="s", options=policy.OPTIONS, defaults=["Abort"])
    changes = [{"kind": "type_changed", "class": "breaking", "table": "t", "column": "d", "detail": "int -> text"}]
    key = policy.change_key(0, changes[0])
    rows = [
        {"change": key, "choice": policy.CAST, "collection": "t", "field": "d", "contract": "type changed"},
        {"change": key, "choice": policy.KEEP_TYPE, "collection": "-", "field": "-", "contract": impact.NO_CHANGE},
    ]
    rows[0]["consumers"], rows[1]["consumers"] = "BREAKING", "-"

    class TI:
        def xcom_pull(self, task_ids):
            return {"changes": changes, "impact": rows}

    op.execute({"ti": TI()})
    assert shown[key]["description"] == (
        "breaking: int -> text Contract: cast: t.d type changed (BREAKING); keep old type: no contract change."
    )
