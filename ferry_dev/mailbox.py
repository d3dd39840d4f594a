"""A real local SMTP server (aiosmtpd) that keeps what it receives: the demo's and the tests' mailbox."""

from __future__ import annotations

import json
import socket
from email import message_from_bytes, policy
from email.message import EmailMessage


class Mailbox:
    """``with Mailbox() as box``: an SMTP server on 127.0.0.1; ``box.messages`` holds (recipients, message)."""

    def __init__(self, port: int = 0):
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=port or free_port())

    @property
    def port(self) -> int:
        return self.controller.port

    def conn_json(self, from_email: str = "ferry@example.test") -> str:
        """The ``ferry_smtp`` connection (``AIRFLOW_CONN_FERRY_SMTP``) for this server: no TLS, no retries."""
        return smtp_conn_json(self.port, from_email)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html", "plain"))
    return part.get_content() if part is not None else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smtp_conn_json(port: int, from_email: str = "ferry@example.test") -> str:
    extra = {"from_email": from_email, "disable_tls": True, "disable_ssl": True, "timeout": 5, "retry_limit": 0}
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": extra})
