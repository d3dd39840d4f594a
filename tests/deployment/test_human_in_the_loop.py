"""Human-in-the-loop steps answered through Airflow's REST API by a named user, on the real deployment:
the promotion approval (approved, then rejected) and the ETL schema review (Apply all, then Abort)."""

from __future__ import annotations

import pytest

from tests.conftest import unique

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


def test_etl_schema_review_apply_all_then_abort(api, approver, stack, etl_target):
    from ferry import hashing
    from ferry.etl import demodata
    from tests.deployment.conftest import PG_DB

    pg_db = PG_DB
    conf = {"mongo_db": etl_target, "schema_change_policy": "ask", "batch_size": 50, "push_to_s3": False}
    run_id = api.trigger("production_etl", conf)  # first load: nothing to review
    api.unpause("production_etl")
    assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)

    with stack.pg.connect(pg_db) as conn:  # a breaking change: a mapped column disappears
        conn.execute("ALTER TABLE campaigns RENAME COLUMN budget TO budget_eur")
    try:
        run_id = api.trigger("production_etl", conf)
        detail = api.wait_hitl("production_etl", run_id, "review_schema_changes")
        assert detail["options"] == ["Apply all", "Skip schema updates", "Abort", "Review each change"]
        assert "budget" in detail["body"] and "breaking" in detail["body"].lower()
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


def test_etl_review_each_change_through_the_rest_api(api, approver, stack, etl_target):
    """The fourth choice: a field per change in the HITL form, answered through REST; the decisions are
    audited with the reviewer's name and the documents follow them."""
    from ferry.etl import demodata
    from tests.deployment.conftest import PG_DB

    conf = {"mongo_db": etl_target, "schema_change_policy": "ask", "batch_size": 50, "push_to_s3": False}
    api.unpause("production_etl")
    run_id = api.trigger("production_etl", conf)
    assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
    with stack.pg.connect(PG_DB) as conn:
        conn.execute("ALTER TABLE accounts RENAME COLUMN region TO area; ALTER TABLE accounts ADD COLUMN tier text")
    try:
        run_id = api.trigger("production_etl", conf)
        detail = api.wait_hitl("production_etl", run_id, "review_schema_changes")
        assert "Review each change" in detail["options"]
        fields = detail["params"]
        rename = next(k for k in fields if "column_renamed_likely" in k)
        added = next(k for k in fields if "column_added" in k)
        answers = {k: v["value"] if isinstance(v, dict) else v for k, v in fields.items()}
        answers.update({rename: "drop and add", added: "skip"})
        approver.respond("production_etl", run_id, "review_schema_changes", ["Review each change"], answers)
        assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
        with stack.mongo_client("local") as local:
            rec = local[f"{etl_target}__ferry"]["_ferry_etl_runs"].find_one({"_id": run_id})
            assert rec["decision"]["action"] == "review"
            got = {d["field"]: (d["choice"], d["by"]) for d in rec["decision"]["changes"]}
            assert got[rename] == ("drop and add", "approver") and got[added] == ("skip", "approver")
            doc = local[etl_target].accounts.find_one({"_id": 1})
            assert "area" in doc and "region" not in doc and "tier" not in doc
    finally:
        with stack.pg.connect(PG_DB) as conn:  # the other deployment tests read the demo schema
            conn.execute("DROP TABLE IF EXISTS campaign_tags, line_items, campaigns, accounts CASCADE")
            demodata.create_schema(conn)
            demodata.seed(conn, accounts=30, campaigns_per=2, items_per=2, tags_per=1)
