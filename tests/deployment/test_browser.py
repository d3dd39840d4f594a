"""The Airflow UI in a real browser (Debian's Chromium driven by Playwright) on the real deployment: every
trigger form opens with Trigger enabled on its defaults; the promotion approval panel and the ETL schema
review panel work by click. Screenshots are kept in ``.ferry/test-artifacts/browser/``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from ferry_dev.devstack import REPO_ROOT
from tests.conftest import unique
from tests.deployment.conftest import DAG_IDS, PG_DB

pytestmark = [pytest.mark.deployment, pytest.mark.integration, pytest.mark.browser]

CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("FERRY_TEST_ARTIFACTS", REPO_ROOT / ".ferry" / "test-artifacts")) / "browser"


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("FERRY_SKIP_BROWSER") == "1":
            pytest.skip("FERRY_SKIP_BROWSER=1 and no Chromium")
        pytest.fail(f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium (or set FERRY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, deployment):
    """A page logged in as ``approver`` through the login form."""
    from ferry_dev.deployment import USERS

    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(deployment.url + "/")
    pg.fill("input[name=username]", "approver")
    pg.fill("input[name=password]", USERS["approver"][1])
    pg.click("button[type=submit]")
    pg.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
    yield pg
    ctx.close()


def _shot(page, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_every_trigger_form_opens_with_trigger_enabled(page, deployment, api):
    for dag_id in DAG_IDS:
        page.goto(f"{deployment.url}/dags/{dag_id}")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        submit = dialog.get_by_role("button", name="Trigger", exact=True)
        _shot(page, f"trigger-form-{dag_id}")
        submit.scroll_into_view_if_needed()  # the form's end, with its Trigger button
        _shot(page, f"trigger-form-{dag_id}-end")
        assert submit.is_enabled(), f"{dag_id}: Trigger is disabled on the defaults"
        assert "This field is required" not in dialog.inner_text(), dag_id
        if dag_id == "prod_promotion":  # an array of allowed values is a multi-select, not a text box
            tag = dialog.locator("#element_collections").evaluate("e => e.tagName")
            assert tag.lower() != "textarea"
            for name in ("companies", "documents", "meta_summaries"):
                assert dialog.get_by_text(name, exact=True).count() >= 1
        page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")

    # and the form really triggers: ferry_smoke on its defaults, by click
    before = {r["dag_run_id"] for r in api.get("/api/v2/dags/ferry_smoke/dagRuns?limit=100")["dag_runs"]}
    page.goto(f"{deployment.url}/dags/ferry_smoke")
    page.get_by_role("button", name="Trigger").first.click()
    page.get_by_role("dialog").get_by_role("button", name="Trigger", exact=True).click()
    page.get_by_role("dialog").wait_for(state="hidden")
    for _ in range(30):
        new = [
            r
            for r in api.get("/api/v2/dags/ferry_smoke/dagRuns?limit=100")["dag_runs"]
            if r["dag_run_id"] not in before
        ]
        if new:
            break
        page.wait_for_timeout(1000)
    assert new, "the form's Trigger created no run"
    assert new[0]["conf"]["mongo_db"] == "ferry_smoke" and new[0]["conf"]["bucket"] == "ferry-smoke"  # the defaults
    assert api.wait_run("ferry_smoke", new[0]["dag_run_id"]) == "success"


def _required_action(page, deployment, dag_id: str, run_id: str, task_id: str):
    page.goto(f"{deployment.url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}/required_actions")


@pytest.fixture
def promo_db(stack):
    from ferry_dev.demo import promotion as promo_demo

    name = unique("web_promo")
    with stack.mongo_client("local") as local, stack.mongo_client("prod") as prod:
        promo_demo._seed(local[name], prod[name])
        yield name
        local.drop_database(name)
        prod.drop_database(name)


def test_promotion_approval_panel_approve_and_reject_by_click(page, deployment, api, stack, promo_db):
    conf = {"mode": "execute", "confirm": promo_db, "source_db": promo_db, "target_db": promo_db,
            "require_approval": True}  # fmt: skip
    api.unpause("prod_promotion")
    for choice, final in (("Approve", "success"), ("Reject", "failed")):
        run_id = api.trigger("prod_promotion", conf)
        api.wait_hitl("prod_promotion", run_id, "approve")
        _required_action(page, deployment, "prod_promotion", run_id, "approve")
        table = page.get_by_role("table")
        table.get_by_text("meta_summaries", exact=True).wait_for()
        headers = [h.strip() for h in table.locator("th").all_inner_texts()]
        assert headers[:6] == ["collection", "local_total", "local_selected", "prod_total", "insert", "skip"]
        assert page.get_by_text("Plan report: s3://").count() == 1
        _shot(page, f"promotion-approval-{choice.lower()}")
        page.get_by_role("button", name=choice, exact=True).click()
        assert api.wait_run("prod_promotion", run_id) == final, api.failure_logs("prod_promotion", run_id)
        with stack.mongo_client("prod") as prod:
            rec = prod[promo_db]["_ferry_promotions"].find_one({"_id": run_id})
        if choice == "Approve":
            assert rec["status"] == "succeeded" and rec["approved_by"] == "approver"
            with stack.mongo_client("prod") as prod:
                assert prod[promo_db].companies.count_documents({}) == 3
        else:
            assert rec["status"] == "rejected" and rec["rejected_by"] == "approver"
    _required_action(page, deployment, "prod_promotion", run_id, "approve")
    page.get_by_text("Reject").first.wait_for()
    _shot(page, "promotion-approval-rejected-after")


def test_etl_schema_review_panel_apply_all_by_click(page, deployment, api, stack):
    from ferry_dev import etl_demodata as demodata

    db = unique("web_etl")
    conf = {"mongo_db": db, "schema_change_policy": "ask", "batch_size": 50, "push_to_s3": False}
    api.unpause("production_etl")
    try:
        run_id = api.trigger("production_etl", conf)
        assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
        with stack.pg.connect(PG_DB) as conn:
            conn.execute("ALTER TABLE campaigns DROP COLUMN budget")
        run_id = api.trigger("production_etl", conf)
        api.wait_hitl("production_etl", run_id, "review_schema_changes")
        _required_action(page, deployment, "production_etl", run_id, "review_schema_changes")
        page.get_by_text("budget").first.wait_for()  # the diff names the dropped column
        _shot(page, "etl-schema-review")
        page.get_by_role("button", name="Apply all", exact=True).click()
        assert api.wait_run("production_etl", run_id) == "success", api.failure_logs("production_etl", run_id)
        with stack.mongo_client("local") as local:
            rec = local[f"{db}__ferry"]["_ferry_etl_runs"].find_one({"_id": run_id})
        assert rec["decision"]["action"] == "apply_all" and rec["decision"]["by"] == "approver"
    finally:
        with stack.pg.connect(PG_DB) as conn:
            conn.execute("DROP TABLE IF EXISTS campaign_tags, line_items, campaigns, accounts CASCADE")
            demodata.create_schema(conn)
            demodata.seed(conn, accounts=30, campaigns_per=2, items_per=2, tags_per=1)
        with stack.mongo_client("local") as local:
            for name in local.list_database_names():
                if name.startswith(db):
                    local.drop_database(name)
