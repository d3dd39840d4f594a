"""ferry.alerts: the failure callback every DAG uses (Slack-compatible webhook + task log)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from ferry import alerts
from ferry.dagdefaults import default_args
from ferry_dev.mailbox import Mailbox, free_port, smtp_conn_json
from ferry_dev.mailbox import body as mailbox_body
from tests.sales.conftest import Webhook


@pytest.fixture
def hook(monkeypatch):
    w = Webhook()
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK", json.dumps({"conn_type": "slackwebhook", "password": w.url + "/x"})
    )
    yield w
    w.close()


def _context(exc):
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r1", try_number=2, log_url="http://airflow/log")
    return {"task_instance": ti, "run_id": "r1", "exception": exc}


def test_every_dag_default_args_use_the_callback():
    assert default_args()["on_failure_callback"] is alerts.on_failure


def test_on_failure_posts_slack_payload_and_logs(hook, caplog):
    caplog.set_level(logging.INFO)
    alerts.on_failure(_context(ValueError("row 7: bad region")))
    assert len(hook.payloads) == 1
    p = hook.payloads[0]
    assert "d.t (r1)" in p["text"] and "ValueError: row 7: bad region" in p["text"]
    assert p["blocks"][0]["text"]["type"] == "mrkdwn"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in p["blocks"][1]["fields"]}
    assert fields["*dag*"] == "d" and fields["*try*"] == "2"
    assert "FERRY ALERT" in caplog.text and "bad region" in caplog.text


def test_without_connection_it_only_logs(monkeypatch, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK", raising=False)
    caplog.set_level(logging.INFO)
    assert alerts.post("hello") is False
    alerts.on_failure(_context(RuntimeError("x")))  # never raises
    assert "logged only" in caplog.text


def test_unreachable_webhook_never_raises(monkeypatch, caplog):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "slackwebhook", "password": f"http://127.0.0.1:{port}/x"}),
    )
    assert alerts.post("hello", timeout=2) is False
    alerts.on_failure(_context(RuntimeError("x")))
    assert "alert webhook ferry_alerts_webhook failed" in caplog.text


def test_zero_sales_alert(hook):
    assert alerts.zero_sales("2024-01-02", run_id="r9") is True
    assert "loaded 0 sales for 2024-01-02 (r9)" in hook.payloads[0]["text"]


def test_alerts_carry_a_short_redacted_excerpt_not_data(hook):
    records = [{"order_id": f"A-{i}", "user_id": i, "region": "Europe", "total_amount": 12.5} for i in range(40)]
    alerts.on_failure(_context(ValueError(f"response is not {{'data': [...]}}: {records}")))
    text = hook.payloads[0]["text"]
    assert "A-3" not in text and "chars of data redacted" in text and len(text) < 700


# --- e-mail: a real local SMTP server (aiosmtpd), Airflow's SMTP provider in the code -------------------


@pytest.fixture
def mailbox(monkeypatch):
    with Mailbox() as box:
        monkeypatch.setenv("AIRFLOW_CONN_FERRY_SMTP", box.conn_json())
        monkeypatch.setenv("FERRY_ALERT_EMAIL", "oncall@example.test, data@example.test")
        yield box


def test_a_failing_task_sends_one_email_and_one_webhook_call(mailbox, hook, monkeypatch):
    secret = "s3cr3t-webhook-token"
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "slackwebhook", "password": hook.url + "/" + secret}),
    )
    alerts.on_failure(_context(ValueError("row 7: bad region\nTraceback detail line")))
    assert len(hook.payloads) == 1 and "d.t (r1)" in hook.payloads[0]["text"]
    assert len(mailbox.messages) == 1
    rcpt, msg = mailbox.messages[0]
    assert sorted(rcpt) == ["data@example.test", "oncall@example.test"]
    assert msg["Subject"] == "Ferry task failed: d.t (r1)" and msg["From"] == "ferry@example.test"
    body = mailbox_body(msg)
    assert "ValueError: row 7: bad region" in body and "http://airflow/log" in body
    assert "Traceback detail line" not in body and secret not in body and secret not in str(msg)


def test_email_without_recipients_or_connection_is_skipped(mailbox, monkeypatch):
    monkeypatch.setenv("FERRY_ALERT_EMAIL", "")
    assert alerts.email("s", "t") is False
    monkeypatch.setenv("FERRY_ALERT_EMAIL", "a@example.test")
    monkeypatch.delenv("AIRFLOW_CONN_FERRY_SMTP")
    assert alerts.email("s", "t") is False
    assert mailbox.messages == []


def test_a_down_smtp_server_does_not_hide_the_failure(monkeypatch, hook, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_FERRY_SMTP", smtp_conn_json(free_port()))  # nothing listens there
    monkeypatch.setenv("FERRY_ALERT_EMAIL", "oncall@example.test")
    caplog.set_level(logging.INFO)
    alerts.on_failure(_context(ValueError("row 7: bad region")))  # never raises
    assert "alert e-mail via ferry_smtp failed" in caplog.text
    assert "FERRY ALERT" in caplog.text and "bad region" in caplog.text  # the failure is still logged
    assert len(hook.payloads) == 1  # and the webhook still got it


def test_zero_sales_also_mails(mailbox, hook):
    assert alerts.zero_sales("2024-01-02", run_id="r9") is True
    assert mailbox.messages[0][1]["Subject"] == "Ferry: nightly_sales_sync loaded 0 sales for 2024-01-02"
