"""Per-change review ("Review each change"): every choice of the form drives the effective mapping and the
documents, and each decision is recorded with the reviewer's name."""

from __future__ import annotations

import pytest
from bson.decimal128 import Decimal128

from ferry.etl import load, mapping, policy, schema, transform
from ferry.etl.names import meta_db
from tests.etl.conftest import run_etl
from tests.helpers import REVIEW_ALTER as ALTER

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("cast", "rename", "new_column"),
    [
        (policy.CAST, policy.RENAME, policy.APPLY),
        (policy.KEEP_TYPE, policy.DROP_ADD, policy.SKIP_ONE),
        (policy.QUARANTINE, policy.RENAME, policy.APPLY),
    ],
)
def test_every_review_choice(cast, rename, new_column, demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn, db = demo_pg.conn, mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path)
    before = list(mongo_local[db].accounts.find_one({"_id": 3}))
    conn.execute(ALTER)
    conn.commit()
    # the form: one field per change (and a default for the new required column)
    out_form = _form_for(conn, mongo_local, db)
    k = {f["title"]: key for key, f in out_form.items()}
    assert out_form[k["type_changed accounts.balance"]]["enum"] == [
        policy.CAST,
        policy.KEEP_TYPE,
        policy.QUARANTINE,
        policy.SKIP_ONE,
    ]
    assert out_form[k["column_renamed_likely accounts.area"]]["enum"] == [
        policy.RENAME,
        policy.DROP_ADD,
        policy.SKIP_ONE,
    ]
    assert out_form[k["column_added_required accounts.tier"]]["enum"] == [policy.APPLY, policy.SKIP_ONE]
    answers = {
        k["type_changed accounts.balance"]: cast,
        k["column_renamed_likely accounts.area"]: rename,
        k["column_added_required accounts.tier"]: policy.APPLY,
        k["default of accounts.tier"]: "bronze",
        k["column_added accounts.notes"]: new_column,
    }
    out = run_etl(
        conn,
        mongo_local,
        db,
        tmp_path,
        policy="ask",
        chosen=[policy.REVIEW],
        params_input=answers,
        responder="rita",
    )
    decision = out["planned"]["decision"]
    assert decision["action"] == "review" and decision["by"] == "rita"
    got = {(d["kind"], d["column"]): d for d in decision["changes"]}
    assert got["type_changed", "balance"]["choice"] == cast and got["type_changed", "balance"]["by"] == "rita"
    assert got["column_added_required", "tier"]["default"] == "bronze"
    snap = mongo_local[meta_db(db)][schema.SNAPSHOTS].find_one({"_id": out["detected"]["snapshot_id"]})
    assert snap["status"] == "accepted"
    assert [d["choice"] for d in snap["decision"]["changes"]] == [d["choice"] for d in decision["changes"]]
    eff = {c["name"]: c for c in out["planned"]["effective_mapping"]["collections"]}["accounts"]
    assert eff["fields"]["tier"] == {"name": "tier", "type": "auto", "default": "bronze"}
    accounts = mongo_local[db].accounts
    one, three = accounts.find_one({"_id": 1}), accounts.find_one({"_id": 3})
    assert one["tier"] == "gold"  # the row's value wins; the default fills rows without one
    if cast == policy.CAST:
        assert one["balance"] == "12.50" and accounts.find_one({"_id": 999})["balance"] == "n/a"
    elif cast == policy.KEEP_TYPE:
        assert one["balance"] == Decimal128("12.50") and accounts.find_one({"_id": 999})["balance"] == "n/a"
    else:
        assert one["balance"] == Decimal128("12.50") and accounts.find_one({"_id": 999}) is None
        assert out["load"]["collections"]["accounts"]["quarantined"] == 1
        q = mongo_local[meta_db(db)][load.QUARANTINE].find_one({"collection": "accounts", "key": "999"})
        assert "n/a" in q["error"]
    if rename == policy.RENAME:  # the field keeps its name and place
        assert list(three).index("region") == before.index("region") and "area" not in three
    else:
        assert "region" not in three and "area" in three
    assert ("notes" in three) == (new_column == policy.APPLY)


def _form_for(conn, client, db):
    """The review form for the changes the next run of ``db`` will see (what SchemaReviewOperator shows)."""
    base = schema.last_accepted(client[meta_db(db)], "demo")
    snap = schema.snapshot(conn)
    conn.commit()
    return policy.review_params(schema.diff(base["snapshot"], snap))


def test_unknown_choice_is_refused_and_defaults_fill_unanswered_fields():
    changes = [
        {"kind": "column_added", "class": "safe", "table": "t", "column": "c", "detail": "text NULL"},
        {"kind": "type_changed", "class": "breaking", "table": "t", "column": "d", "detail": "int -> text"},
    ]
    form = policy.review_params(changes)
    assert list(form) == ["01_column_added_t_c", "02_type_changed_t_d"]
    d = policy.decide("ask", changes, [policy.REVIEW], "rita", {"01_column_added_t_c": "skip"})
    assert [(x["choice"], x["by"]) for x in d["changes"]] == [("skip", "rita"), ("cast", "rita")]
    with pytest.raises(ValueError, match="not one of"):
        policy.decide("ask", changes, [policy.REVIEW], "rita", {"02_type_changed_t_d": "melt"})


def test_defaults_and_lenient_casts_in_documents():
    part = {
        "table": "t",
        "fields": {
            "a": {"name": "a", "type": "auto", "default": "x"},
            "b": {"name": "b", "type": "int", "on_cast_error": "keep"},
            "c": {"name": "c", "type": "int"},
        },
    }
    assert transform.project({"a": None, "b": "7", "c": 1}, part, "decimal128") == {"a": "x", "b": 7, "c": 1}
    assert transform.project({"a": "y", "b": "n/a", "c": 2}, part, "decimal128")["b"] == "n/a"
    with pytest.raises(transform.RowError):
        transform.project({"a": "y", "b": 1, "c": "n/a"}, part, "decimal128")
    assert mapping.field_type("numeric(14,2)") == "decimal128" and mapping.field_type("bigint") == "int"


def test_review_operator_builds_its_form_when_it_runs(monkeypatch):
    from airflow.providers.standard.operators.hitl import HITLOperator

    from ferry.operators.schema_change import SchemaReviewOperator

    shown: dict = {}
    monkeypatch.setattr(HITLOperator, "execute", lambda self, context: shown.update(self.serialized_params))
    op = SchemaReviewOperator(task_id="review", subject="s", options=policy.OPTIONS, defaults=["Abort"])
    changes = [
        {"kind": "type_changed", "class": "breaking", "table": "t", "column": "d", "detail": "integer -> text"},
        {"kind": "column_added_required", "class": "breaking", "table": "t", "column": "e", "detail": "text"},
    ]

    class TI:
        def xcom_pull(self, task_ids):
            assert task_ids == "detect_schema"
            return {"changes": changes}

    op.execute({"ti": TI()})
    assert list(shown) == [
        "01_type_changed_t_d",
        "02_column_added_required_t_e",
        "02_column_added_required_t_e__default",
    ]
    assert shown["01_type_changed_t_d"]["value"] == policy.CAST
    assert shown["01_type_changed_t_d"]["schema"]["enum"] == policy.CHOICES["type_changed"]
    assert policy.OPTIONS[-1] == "Review each change"
