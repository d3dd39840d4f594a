"""The Airflow UI in a real browser (Debian's Chromium driven by Playwright) on the real deployment: every
trigger form opens with Trigger enabled on its defaults; the promotion approval panel and the ETL schema
review panel work by click; the viewer / operator / approver roles of test_roles.py hold by click too (issue
28). Screenshots are kept in ``.ferry/test-artifacts/browser/``."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from ferry_dev.devstack import REPO_ROOT
from tests.conftest import unique
from tests.deployment.conftest import DAG_IDS, PG_DB, assert_promoted_by_operator_approved_by_approver

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
def login(browser, deployment):
    """``login(user)``: a new page, in its own browser context (cookies), logged in as ``user``
    (``ferry_dev.deployment.USERS``) through the login form."""
    from ferry_dev.deployment import USERS

    contexts = []

    def _login(user: str):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        contexts.append(ctx)
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        pg.goto(deployment.url + "/")
        pg.fill("input[name=username]", user)
        pg.fill("input[name=password]", USERS[user][1])
        pg.click("button[type=submit]")
        pg.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
        return pg

    yield _login
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def page(login):
    """A page logged in as ``approver`` through the login form."""
    return login("approver")


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


def _fill_promotion_form(page, dialog, db: str) -> None:
    """The trigger form of prod_promotion, filled as test_roles.py's conf: execute, confirmed, with approval."""
    dialog.locator("#element_mode input[role=combobox]").click()
    page.get_by_role("option", name="execute", exact=True).click()
    assert dialog.locator("input[name=element_mode]").input_value() == "execute"
    for field in ("confirm", "source_db", "target_db"):
        dialog.locator(f"#element_{field}").fill(db)
    switch = dialog.get_by_role("checkbox", name="require_approval")
    dialog.locator("label[data-scope=switch]:has(input[name=element_require_approval])").click()  # not the 1px input
    assert switch.is_checked()


def _toast(page, title: str):
    """The toast titled ``title`` (Chakra renders each toast twice: the first is the visible one)."""
    toast = page.get_by_role("status", name=title).first
    toast.wait_for()
    page.wait_for_timeout(500)  # its slide-in, so the screenshot shows it whole
    return toast


def test_roles_in_the_browser_viewer_operator_approver(login, deployment, api, stack, promo_db):
    """test_roles.py's story by click (issue 28). What Airflow 3.3's UI does, observed: it shows the Trigger
    button and the form to every role, and the Approve / Reject buttons to every user; the server refuses
    (403) and the UI's global handler for a refused change toasts "Access Denied". The server's own reason
    ("is not a respondent") is in the 403 response only: the HITL form's error handler skips 403s."""
    from playwright.sync_api import expect

    denied = "You do not have permission to perform this action."
    url, runs_path = f"{deployment.url}/dags/prod_promotion", "/api/v2/dags/prod_promotion/dagRuns?limit=100"
    api.unpause("prod_promotion")  # so the form sends no "unpause on trigger" request of its own
    before = {r["dag_run_id"] for r in api.get(runs_path)["dag_runs"]}

    def trigger_by_form(page):
        page.goto(url)
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        _fill_promotion_form(page, dialog, promo_db)
        submit = dialog.get_by_role("button", name="Trigger", exact=True)
        with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/dagRuns")) as resp:
            submit.click()
        return dialog, submit, resp.value

    # viewer: the form opens and submits; Airflow refuses, the dialog says so and disables its Trigger
    viewer = login("viewer")
    dialog, submit, resp = trigger_by_form(viewer)
    assert (resp.status, resp.json()) == (403, {"detail": "Forbidden"})
    assert _toast(viewer, "Access Denied").inner_text().splitlines() == ["Access Denied", denied]
    dialog.get_by_text("403 Forbidden", exact=True).wait_for()
    expect(submit).to_be_disabled()
    dialog.get_by_text("403 Forbidden", exact=True).scroll_into_view_if_needed()
    _shot(viewer, "roles-viewer-trigger-refused")
    assert {r["dag_run_id"] for r in api.get(runs_path)["dag_runs"]} == before  # no run was created

    # operator: triggers by the form; Approve is offered but refused, and prod is untouched
    operator = login("operator")
    dialog, _submit, resp = trigger_by_form(operator)
    assert resp.status == 200, resp.text()
    run_id = resp.json()["dag_run_id"]
    dialog.wait_for(state="hidden")
    run = api.run("prod_promotion", run_id)
    assert run["triggering_user_name"] == "operator"
    want = {"mode": "execute", "confirm": promo_db, "source_db": promo_db, "target_db": promo_db,
            "require_approval": True}  # fmt: skip
    assert {k: run["conf"][k] for k in want} == want
    detail = api.wait_hitl("prod_promotion", run_id, "approve")
    assert [u["id"] for u in detail["assigned_users"]] == ["approver"]
    _required_action(operator, deployment, "prod_promotion", run_id, "approve")
    operator.get_by_role("table").get_by_text("meta_summaries", exact=True).wait_for()
    approve = operator.get_by_role("button", name="Approve", exact=True)
    assert approve.is_enabled() and operator.get_by_role("button", name="Reject", exact=True).is_enabled()
    _shot(operator, "roles-operator-approval-offered")
    with operator.expect_response(lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url) as resp_info:
        approve.click()
    refused = resp_info.value
    assert refused.status == 403
    assert refused.json() == {"detail": "User=operator (id=operator) is not a respondent for the task."}
    assert _toast(operator, "Access Denied").inner_text().splitlines() == ["Access Denied", denied]
    _shot(operator, "roles-operator-approve-refused")
    assert api.task_states("prod_promotion", run_id)["approve"] == "awaiting_input"
    with stack.mongo_client("prod") as prod:
        assert prod[promo_db].companies.count_documents({}) == 1  # nothing written

    # approver: the same page, Approve; the write happens and the audit names both
    approver = login("approver")
    _required_action(approver, deployment, "prod_promotion", run_id, "approve")
    approver.get_by_role("table").get_by_text("meta_summaries", exact=True).wait_for()
    with approver.expect_response(lambda r: r.request.method == "PATCH" and "/hitlDetails" in r.url) as resp_info:
        approver.get_by_role("button", name="Approve", exact=True).click()
    answer = resp_info.value
    assert answer.status == 200, answer.text()
    assert answer.json()["responded_by"]["id"] == "approver" and answer.json()["chosen_options"] == ["Approve"]
    _toast(approver, "approve response successful")
    approver.get_by_text(re.compile(r"Response received at .* from approver")).first.wait_for()
    expect(approver.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    _shot(approver, "roles-approver-approved")
    assert_promoted_by_operator_approved_by_approver(api, stack, promo_db, run_id)
