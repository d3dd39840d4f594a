"""Ferry's one failure callback (every DAG's ``on_failure_callback``) and other alerts.

Alerts go to two channels, each optional, and are always logged:

- a Slack-compatible incoming webhook through the Slack provider's ``SlackWebhookHook``: the
  ``ferry_alerts_webhook`` connection (type ``slackwebhook``; password = the webhook URL, or host + token as
  the provider documents);
- e-mail through the SMTP provider's ``SmtpHook``: the ``ferry_smtp`` connection (type ``smtp``; host, port,
  login/password, extra ``from_email``, ``disable_tls``/``disable_ssl``) to the recipients of setting
  ``FERRY_ALERT_EMAIL``.

No connection (or no recipients) → that channel is skipped; a failing channel is logged and never fails the
task or hides the original error.

Alerts carry no raw data: an error message is cut to a short excerpt, and JSON-like payloads inside it
(records, API responses) are replaced by their length.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from ferry import settings

log = logging.getLogger(__name__)

CONN_ID = "ferry_alerts_webhook"
SMTP_CONN_ID = "ferry_smtp"
FROM_EMAIL = "ferry@localhost"  # when the connection names no ``from_email``
MAX_EXCERPT = 400
_PAYLOAD = re.compile(r"(\{[^{}]{60,}\}|\[[^\[\]]{60,}\])", re.S)


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    """A short, redacted excerpt of an error message: payloads replaced by their size, then cut to ``limit``."""
    text = _PAYLOAD.sub(lambda m: f"<{len(m.group(0))} chars of data redacted>", text)
    return text if len(text) <= limit else text[:limit] + " …"


def post(text: str, *, fields: dict[str, Any] | None = None, conn_id: str = CONN_ID, timeout: int = 10) -> bool:
    """Log ``text`` and send it to the webhook (if configured); True if delivered."""
    log.error("FERRY ALERT: %s", text)
    if not _has_connection(conn_id):
        log.info("no %s connection: alert logged only", conn_id)
        return False
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields.items()]}
        )
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=timeout).send(text=text, blocks=blocks)
    except Exception as exc:  # noqa: BLE001 - never mask the task's own failure
        log.warning("alert webhook %s failed: %s", conn_id, exc)
        return False
    return True


def _has_connection(conn_id: str) -> bool:
    try:
        from airflow.sdk import BaseHook

        BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - an absent connection means "skip this channel"
        return False
    return True


def email(subject: str, text: str, *, fields: dict[str, Any] | None = None, conn_id: str = SMTP_CONN_ID) -> bool:
    """E-mail ``subject`` and ``text`` (plus ``fields`` as a table) to ``FERRY_ALERT_EMAIL`` through the
    ``ferry_smtp`` connection; True if the server accepted it. Never raises."""
    to = settings.alert_recipients()
    if not to or not _has_connection(conn_id):
        log.info("no %s connection or no FERRY_ALERT_EMAIL recipients: no alert e-mail", conn_id)
        return False
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in (fields or {}).items()
    )
    body = f"<p>{html.escape(text)}</p><table>{rows}</table>".replace("\n", "<br>")
    try:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(to=to, subject=subject, html_content=body, from_email=hook.from_email or FROM_EMAIL)
    except Exception as exc:  # noqa: BLE001 - never mask the task's own failure
        log.warning("alert e-mail via %s failed: %s", conn_id, excerpt(f"{type(exc).__name__}: {exc}", 200))
        return False
    return True


def failure_text(context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    exc = context.get("exception")
    err = excerpt(f"{type(exc).__name__}: {exc}") if exc is not None else "unknown error"
    fields = {
        "dag": dag_id,
        "task": task_id,
        "run": run_id,
        "try": getattr(ti, "try_number", "?"),
        "log": getattr(ti, "log_url", "") or "",
    }
    return f":rotating_light: Ferry task failed: {dag_id}.{task_id} ({run_id})\n```{err}```", fields


def failure_email(context: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Subject (DAG, task and run), body (the error's first line and the log URL) and fields of the e-mail."""
    text, fields = failure_text(context)
    exc = context.get("exception")
    first = excerpt(f"{type(exc).__name__}: {exc}".splitlines()[0]) if exc is not None else "unknown error"
    subject = f"Ferry task failed: {fields['dag']}.{fields['task']} ({fields['run']})"
    return subject, f"{first}\nLog: {fields['log'] or '(no log URL)'}", fields


def on_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: webhook, e-mail and the task log. Never raises."""
    try:
        text, fields = failure_text(context)
        post(text, fields=fields)
        subject, body, fields = failure_email(context)
        email(subject, body, fields=fields)
    except Exception:  # noqa: BLE001 - a failure callback never raises: the alert is logged instead
        log.exception("failure alert could not be sent")


def zero_sales(day: str, dag_id: str = "nightly_sales_sync", run_id: str = "") -> bool:
    """Alert that a nightly run loaded no sales for ``day`` (the run itself succeeds); True if the webhook got it."""
    fields = {"dag": dag_id, "day": day, "run": run_id}
    text = f"{dag_id} loaded 0 sales for {day} ({run_id}): check the source."
    email(f"Ferry: {dag_id} loaded 0 sales for {day}", text, fields=fields)
    return post(f":warning: {text}", fields=fields)
