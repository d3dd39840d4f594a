"""Who may do what on the real deployment (ferry_dev.deployment.USERS, FERRY_APPROVERS=approver): the viewer
cannot trigger; the operator triggers a promotion and cannot approve it, nor can an admin who is not an
approver (Airflow answers 403 itself); the approver approves, the write happens, the audit names both. The
same for the promotion's rollback: rejected (kept in the record, nothing undone), then approved; and for the
dataset catalog promotion (test_human_in_the_loop.py shows it for the ETL schema review)."""

from __future__ import annotations

import pytest

from ferry_dev.deployment import ApiError
from tests.conftest import unique
from tests.deployment.conftest import assert_promoted_by_operator_approved_by_approver

pytestmark = [pytest.mark.deployment, pytest.mark.integration]


@pytest.fixture
def promo_db(stack):
    from ferry_dev.demo import promotion as promo_demo

    name = unique("roles_promo")
    with stack.mongo_client("local") as local, stack.mongo_client("prod") as prod:
        promo_demo._seed(local[name], prod[name])
        yield name
        local.drop_database(name)
        prod.drop_database(name)


def test_viewer_operator_and_approver(deployment, api, approver, stack, promo_db):
    viewer, operator = deployment.client("viewer"), deployment.client("operator")
    conf = {"mode": "execute", "confirm": promo_db, "source_db": promo_db, "target_db": promo_db,
            "require_approval": True}  # fmt: skip
    api.unpause("prod_promotion")
    with pytest.raises(ApiError, match="-> 403"):
        viewer.trigger("prod_promotion", conf)
    assert viewer.get("/api/v2/dags/prod_promotion")["dag_id"] == "prod_promotion"  # but may look

    run_id = operator.trigger("prod_promotion", conf)
    detail = api.wait_hitl("prod_promotion", run_id, "approve")
    assert [u["id"] for u in detail["assigned_users"]] == ["approver"]
    for who in (operator, api):  # the triggering user, and an admin not named in FERRY_APPROVERS
        with pytest.raises(ApiError, match="-> 403.*is not a respondent"):
            who.respond("prod_promotion", run_id, "approve", ["Approve"])
    with stack.mongo_client("prod") as prod:
        assert prod[promo_db].companies.count_documents({}) == 1  # nothing written while it waits

    approver.respond("prod_promotion", run_id, "approve", ["Approve"])
    assert_promoted_by_operator_approved_by_approver(api, stack, promo_db, run_id)

    # its rollback, asked for by the operator: rejected first (nothing undone), then approved
    undo = {"promotion_id": run_id, "target_db": promo_db, "confirm": promo_db, "require_approval": True}
    api.unpause("prod_promotion_rollback")
    for answer, final in (("Reject", "failed"), ("Approve", "success")):
        rb_id = operator.trigger("prod_promotion_rollback", undo)
        detail = api.wait_hitl("prod_promotion_rollback", rb_id, "approve_rollback")
        assert [u["id"] for u in detail["assigned_users"]] == ["approver"] and run_id in detail["body"]
        with pytest.raises(ApiError, match="-> 403"):
            operator.respond("prod_promotion_rollback", rb_id, "approve_rollback", ["Approve"])
        approver.respond("prod_promotion_rollback", rb_id, "approve_rollback", [answer])
        assert api.wait_run("prod_promotion_rollback", rb_id) == final, api.failure_logs(
            "prod_promotion_rollback", rb_id
        )
        with stack.mongo_client("prod") as prod:
            rec = prod[promo_db]["_ferry_promotions"].find_one({"_id": run_id})
            companies = prod[promo_db].companies.count_documents({})
        if answer == "Reject":
            assert rec["status"] == "succeeded" and companies == 3  # nothing undone
            assert [(q["outcome"], q["triggered_by"], q["answered_by"]) for q in rec["rollback_requests"]] == [
                ("rejected", "operator", "approver")
            ]
        else:
            assert rec["status"] == "rolled_back" and companies == 1
            by = rec["rollback_by"]
            assert (by["run_id"], by["triggered_by"], by["approved_by"]) == (rb_id, "operator", "approver")


def test_catalog_promotion_needs_an_approver_who_did_not_trigger_it(deployment, api, approver, stack, s3):
    from tests.catalog.test_promote import seed_catalog

    operator = deployment.client("operator")
    db, bucket = unique("roles_cat"), unique("ferry-roles").replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    with stack.mongo_client("local") as local, stack.mongo_client("prod") as prod:
        seed_catalog(local[db], s3, bucket)
        try:
            conf = {"source_db": db, "target_db": db, "dry_run": False, "require_approval": True}
            api.unpause("dataset_promotion")
            run_id = operator.trigger("dataset_promotion", conf)
            detail = api.wait_hitl("dataset_promotion", run_id, "approve")
            assert [u["id"] for u in detail["assigned_users"]] == ["approver"]
            for who in (operator, api):
                with pytest.raises(ApiError, match="-> 403.*is not a respondent"):
                    who.respond("dataset_promotion", run_id, "approve", ["Approve"])
            assert "_ferry_catalog_runs" not in prod[db].list_collection_names()  # nothing written while it waits
            approver.respond("dataset_promotion", run_id, "approve", ["Approve"])
            assert api.wait_run("dataset_promotion", run_id) == "success", api.failure_logs("dataset_promotion", run_id)
            rec = prod[db]["_ferry_catalog_runs"].find_one({"_id": run_id})
            assert (rec["outcome"], rec["who"], rec["approved_by"]) == ("success", "operator", "approver")
            assert prod[db].datasets.count_documents({}) == 2
        finally:
            local.drop_database(db)
            prod.drop_database(db)
