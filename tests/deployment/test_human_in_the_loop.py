"""Human-in-the-loop steps answered through Airflow's REST API by a named user, on the real deployment:
the promotion approval (approved, then rejected) and the ETL schema review (Apply all, then Abort; and every choice
of "Review each change")."""

from __future__ import annotations

import pytest

from ferry_dev.deployment import ApiError
from tests.conftest import unique
from tests.helpers import REVIEW_ALTER

pytestmark = [pytest.mark.deployment, pytest.mark.integration]


@pytest.fixture
def promo_db(stack):
    from ferry_dev.demo import promotion as promo_demo

    name = unique("dep_promo")
    with stack.mongo_client("local") as local, stack.mongo_client("prod") as prod:
        promo_demo._seed(local[name], prod[name])
        yield name
        local.drop_database(name)
        prod.drop_database(name)


def test_promotion_approved_then_rejected_by_the_approver(api, approver, stack, promo_db):
    conf = {"mode": "execute", "confirm": promo_db, "source_db": promo_db, "target_db": promo_db,
            "require_approval": True}  # fmt: skip
    with stack.mongo_client("prod") as prod:
        before = {c: prod[promo_db][c].count_documents({}) for c in ("companies", "documents", "meta_summaries")}

        api.unpause("prod_promotion")
        run_id = api.trigger("prod_promotion", conf)
        detail = api.wait_hitl("prod_promotion", run_id, "approve")
        assert detail["options"] == ["Approve", "Reject"]
        assert "| companies" in detail["body"] and "Plan report: s3://" in detail["body"]  # the summary table
        # nothing is written while the approval waits
        assert {c: prod[promo_db][c].count_documents({}) for c in before} == before
        approver.respond("prod_promotion", run_id, "approve", ["Approve"])
        assert api.wait_run("prod_promotion", run_id) == "success", api.failure_logs("prod_promotion", run_id)
        after = {c: prod[promo_db][c].count_documents({}) for c in before}
        # 2 new companies; acme's privacy document and summary are already in production (natural keys)
        assert after == {"companies": 3, "documents": 6, "meta_summaries": 3}
        rec = prod[promo_db]["_ferry_promotions"].find_one({"_id": run_id})
        assert rec["status"] == "succeeded" and rec["approved_by"] == "approver" and rec["approved_at"]

        # a second run, rejected: nothing is written, the audit says who rejected and when, the run fails
        run_id = api.trigger("prod_promotion", {**conf, "on_conflict": "overwrite"})
        api.wait_hitl("prod_promotion", run_id, "approve")
        approver.respond("prod_promotion", run_id, "approve", ["Reject"])
        assert api.wait_run("prod_promotion", run_id) == "failed"
        states = api.task_states("prod_promotion", run_id)
        assert states["execute"] == "skipped" and states["outcome"] == "failed"
        assert "was rejected by approver" in api.task_log("prod_promotion", run_id, "outcome")
        rec = prod[promo_db]["_ferry_promotions"].find_one({"_id": run_id})
        assert rec["status"] == "rejected" and rec["rejected_by"] == "approver" and rec["rejected_at"]
        assert {c: prod[promo_db][c].count_documents({}) for c in before} == after


@pytest.fixture
def etl_target(stack):
    name = unique("dep_etl")
    yield name
    with stack.mongo_client("local") as local:
        for db in local.list_database_names():
            if db.startswith(name):
                local.drop_database(db)


def test_etl_schema_review_apply_all_then_abort(deployment, api, approver, stack, etl_target):
    from ferry import hashing
    from ferry_dev import etl_demodata as demodata
    from tests.deployment.conftest import PG_DB

    pg_db = PG_DB
    conf = {"mongo_db": etl_target, "schema_change_policy": "ask", "batch_size": 50, "push_to_s3": False}
    run_id = api.trigger("production_etl", conf)  # first load: nothing to review
    api.unpause("production_etl")
    assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
    # one load task per collection, run by the Celery workers, all on the snapshot backup exported
    loads = [t for t in api.task_instances("production_etl", run_id) if t["task_id"] == "load"]
    assert sorted((t["map_index"], t["state"]) for t in loads) == [(0, "success"), (1, "success")]
    snap = api.xcom("production_etl", run_id, "backup")["snapshot"]
    assert [api.xcom("production_etl", run_id, "load", map_index=i)["snapshot"] for i in (0, 1)] == [snap, snap]
    assert all(t["hostname"].startswith("ferry-worker-") for t in loads)

    with stack.pg.connect(pg_db) as conn:  # a breaking change: a mapped column disappears
        conn.execute("ALTER TABLE campaigns RENAME COLUMN budget TO budget_eur")
    try:
        operator = deployment.client("operator")
        run_id = operator.trigger("production_etl", conf)
        detail = api.wait_hitl("production_etl", run_id, "review_schema_changes")
        assert detail["options"] == ["Apply all", "Skip schema updates", "Abort", "Review each change"]
        assert "budget" in detail["body"] and "breaking" in detail["body"].lower()
        assert [u["id"] for u in detail["assigned_users"]] == ["approver"]  # FERRY_APPROVERS, four eyes
        for who in (operator, api):  # the triggering user, and an admin not named in FERRY_APPROVERS: Airflow's 403
            with pytest.raises(ApiError, match="-> 403.*is not a respondent"):
                who.respond("production_etl", run_id, "review_schema_changes", ["Apply all"])
        approver.respond("production_etl", run_id, "review_schema_changes", ["Apply all"])
        assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
        with stack.mongo_client("local") as local:
            meta = local[f"{etl_target}__ferry"]
            rec = meta["_ferry_etl_runs"].find_one({"_id": run_id})
            assert rec["status"] == "success" and rec["decision"]["action"] == "apply_all"
            assert rec["decision"]["by"] == "approver"
            state = hashing.db_digest(local[etl_target])

        with stack.pg.connect(pg_db) as conn:  # another breaking change, aborted: nothing is written
            conn.execute("ALTER TABLE campaigns DROP COLUMN budget_eur")
        run_id = api.trigger("production_etl", conf)
        api.wait_hitl("production_etl", run_id, "review_schema_changes")
        approver.respond("production_etl", run_id, "review_schema_changes", ["Abort"])
        assert api.wait_run("production_etl", run_id) == "failed"
        states = api.task_states("production_etl", run_id)
        assert states["plan"] == "failed" and states["backup"] == "upstream_failed"
        with stack.mongo_client("local") as local:
            assert hashing.db_digest(local[etl_target]) == state
            rec = local[f"{etl_target}__ferry"]["_ferry_etl_runs"].find_one({"_id": run_id})
            assert rec["status"] == "failed" and rec["decision"]["action"] == "abort"
    finally:
        with stack.pg.connect(pg_db) as conn:  # the other deployment tests read the demo schema
            conn.execute("DROP TABLE IF EXISTS campaign_tags, line_items, campaigns, accounts CASCADE")
            demodata.create_schema(conn)
            demodata.seed(conn, accounts=30, campaigns_per=2, items_per=2, tags_per=1)


@pytest.mark.parametrize(
    ("cast", "rename", "new_column"),
    [
        ("cast", "rename", "apply"),
        ("keep old type", "drop and add", "skip"),
        ("quarantine rows that don't cast", "rename", "apply"),
    ],
)
def test_etl_review_each_change_through_the_rest_api(cast, rename, new_column, api, approver, stack, etl_target):
    """The fourth choice: a field per change in the HITL form (every choice of each: cast / keep old type /
    quarantine, rename / drop and add, apply / skip, the default of a new required column), answered through
    REST by a named user; the decisions are audited with the reviewer's name and the documents follow them."""
    from bson.decimal128 import Decimal128

    from ferry_dev import etl_demodata as demodata
    from tests.deployment.conftest import PG_DB

    conf = {"mongo_db": etl_target, "schema_change_policy": "ask", "batch_size": 50, "push_to_s3": False}
    api.unpause("production_etl")
    run_id = api.trigger("production_etl", conf)
    assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
    with stack.mongo_client("local") as local:
        first = local[etl_target].accounts.find_one({"_id": 3})
    with stack.pg.connect(PG_DB) as conn:
        conn.execute(REVIEW_ALTER)
    try:
        run_id = api.trigger("production_etl", conf)
        detail = api.wait_hitl("production_etl", run_id, "review_schema_changes")
        assert "Review each change" in detail["options"]
        fields = detail["params"]

        def field(suffix: str) -> str:
            return next(k for k in fields if k.endswith(suffix))

        def enum(key: str) -> list:
            f = fields[key]
            return (f.get("schema") or f).get("enum") if isinstance(f, dict) else None

        typed, renamed = field("type_changed_accounts_balance"), field("column_renamed_likely_accounts_area")
        required, added = field("column_added_required_accounts_tier"), field("column_added_accounts_notes")
        assert enum(typed) == ["cast", "keep old type", "quarantine rows that don't cast", "skip"]
        assert enum(renamed) == ["rename", "drop and add", "skip"]
        assert enum(required) == enum(added) == ["apply", "skip"]
        answers = {k: v["value"] if isinstance(v, dict) else v for k, v in fields.items()}
        answers.update({typed: cast, renamed: rename, required: "apply", required + "__default": "bronze",
                        added: new_column})  # fmt: skip
        approver.respond("production_etl", run_id, "review_schema_changes", ["Review each change"], answers)
        assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
        with stack.mongo_client("local") as local:
            meta = local[f"{etl_target}__ferry"]
            rec = meta["_ferry_etl_runs"].find_one({"_id": run_id})
            assert rec["decision"]["action"] == "review" and rec["decision"]["by"] == "approver"
            got = {d["field"]: d for d in rec["decision"]["changes"]}
            assert {k: (got[k]["choice"], got[k]["by"]) for k in (typed, renamed, added)} == {
                typed: (cast, "approver"),
                renamed: (rename, "approver"),
                added: (new_column, "approver"),
            }
            assert got[required]["default"] == "bronze"
            accounts = local[etl_target].accounts
            one, three = accounts.find_one({"_id": 1}), accounts.find_one({"_id": 3})
            assert one["tier"] == "gold"  # the row's value wins; the default fills rows without one
            if cast == "cast":
                assert one["balance"] == "12.50" and accounts.find_one({"_id": 999})["balance"] == "n/a"
            elif cast == "keep old type":
                assert one["balance"] == Decimal128("12.50") and accounts.find_one({"_id": 999})["balance"] == "n/a"
            else:  # the row that does not cast is quarantined, with its error
                assert one["balance"] == Decimal128("12.50") and accounts.find_one({"_id": 999}) is None
                q = meta["_ferry_etl_quarantine"].find_one({"collection": "accounts", "key": "999"})
                assert "n/a" in q["error"]
            if rename == "rename":  # the field keeps its name and its place
                assert "area" not in three and three["region"] == first["region"]
                assert list(three).index("region") == list(first).index("region")
            else:
                assert "region" not in three and "area" in three
            assert ("notes" in three) == (new_column == "apply")
    finally:
        with stack.pg.connect(PG_DB) as conn:  # the other deployment tests read the demo schema
            conn.execute("DROP TABLE IF EXISTS campaign_tags, line_items, campaigns, accounts CASCADE")
            demodata.create_schema(conn)
            demodata.seed(conn, accounts=30, campaigns_per=2, items_per=2, tags_per=1)
