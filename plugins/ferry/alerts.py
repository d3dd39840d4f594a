"""Ferry's one failure callback (every DAG's ``on_failure_callback``) and other alerts.

Posts a Slack-compatible JSON payload (``{"text": ..., "blocks": [...]}``) to the webhook URL of the
``ferry_alerts_webhook`` connection and logs the same text. No connection → log only; a failing webhook
is logged and never fails the task or hides the original error. Light at import (parsed with every DAG).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

CONN_ID = "ferry_alerts_webhook"


def webhook_url(conn_id: str = CONN_ID) -> str | None:
    """The webhook URL: the connection's ``host`` if it is a full URL, else ``schema://host:port/path``."""
    try:
        from airflow.sdk import BaseHook

        c = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - absent connection means "log only"
        return None
    host = (c.host or "").strip()
    if not host:
        return None
    if "://" in host:
        return host
    scheme = c.schema or "https"
    port = f":{c.port}" if c.port else ""
    return f"{scheme}://{host}{port}"


def post(text: str, *, fields: dict[str, Any] | None = None, conn_id: str = CONN_ID, timeout: float = 10) -> bool:
    """Log ``text`` and POST it to the webhook (if configured); True if delivered."""
    log.error("FERRY ALERT: %s", text)
    url = webhook_url(conn_id)
    if not url:
        log.info("no %s connection: alert logged only", conn_id)
        return False
    payload = {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    if fields:
        payload["blocks"].append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields.items()]}
        )
    req = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ok = 200 <= resp.status < 300
    except Exception as exc:  # noqa: BLE001 - never mask the task's own failure
        log.warning("alert webhook %s failed: %s", conn_id, exc)
        return False
    if not ok:
        log.warning("alert webhook %s answered HTTP %s", conn_id, resp.status)
    return ok


def failure_text(context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    exc = context.get("exception")
    err = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    if len(err) > 1500:
        err = err[:1500] + " …"
    fields = {
        "dag": dag_id,
        "task": task_id,
        "run": run_id,
        "try": getattr(ti, "try_number", "?"),
        "log": getattr(ti, "log_url", "") or "",
    }
    return f":rotating_light: Ferry task failed: {dag_id}.{task_id} ({run_id})\n```{err}```", fields


def on_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: webhook + task log. Never raises."""
    try:
        text, fields = failure_text(context)
        post(text, fields=fields)
    except Exception:  # noqa: BLE001
        log.exception("failure alert could not be sent")


def zero_sales(day: str, dag_id: str = "nightly_sales_sync", run_id: str = "") -> bool:
    """Alert that a nightly run loaded no sales for ``day`` (the run itself succeeds)."""
    return post(f":warning: {dag_id} loaded 0 sales for {day} ({run_id}): check the source.",
                fields={"dag": dag_id, "day": day, "run": run_id})
