"""Demo step: a failing task alerts by e-mail (a real local SMTP server) and by webhook (the task log)."""

from __future__ import annotations

import os

ORDER = 90


def run(ctx) -> list[dict]:
    from ferry_dev.mailbox import Mailbox
    from ferry_dev.mailbox import body as mail_body

    saved = {k: os.environ.get(k) for k in ("AIRFLOW_CONN_FERRY_SMTP", "FERRY_ALERT_EMAIL")}
    with Mailbox() as box:
        os.environ["AIRFLOW_CONN_FERRY_SMTP"] = box.conn_json()
        os.environ["FERRY_ALERT_EMAIL"] = "oncall@example.test"
        try:  # import_users without its users CSV fails at once (bad input: no retries) and alerts
            ctx.run_dag("import_users", {"csv_path": None, "update_existing": False, "bcrypt_rounds": 10}, check=False)
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    if len(box.messages) != 1:
        raise AssertionError(f"expected one alert e-mail, the mailbox holds {len(box.messages)}")
    ((to, msg),) = box.messages
    first = mail_body(msg).split("<br>")[0].removeprefix("<p>")
    ctx.notes.append(f"alert e-mail in the local mailbox: to {', '.join(to)}, subject {msg['Subject']!r}")
    return [{"dag": "import_users", "result": f"failed as meant; 1 alert e-mail: {msg['Subject']} / {first[:80]}"}]
