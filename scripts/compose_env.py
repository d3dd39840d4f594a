"""Write docker compose's `.env` from `.env.example` on first start, generating every empty secret.

An existing `.env` is kept as it is (its missing keys are added, generated). Standard library only: it runs
before anything is installed. The values are never printed.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# written by scripts/compose_env.py from .env.example; never commit\n"


def _generate(key: str) -> str:
    if key == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def _pairs(text: str) -> list[tuple[str, str]]:
    lines = (line.strip() for line in text.splitlines())
    return [tuple(line.split("=", 1)) for line in lines if line and not line.startswith("#") and "=" in line]


def write(example: Path = ROOT / ".env.example", env: Path = ROOT / ".env") -> list[str]:
    """The keys generated (``.env`` created, or completed with what it lacks)."""
    have = dict(_pairs(env.read_text())) if env.exists() else {}
    added, lines = [], []
    for key, value in _pairs(example.read_text()):
        if key in have:
            continue
        value = value or _generate(key)
        added.append(key)
        lines.append(f"{key}={value}")
    if lines:
        body = env.read_text() if env.exists() else HEADER
        env.write_text(body.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
        env.chmod(0o600)
    return added


if __name__ == "__main__":
    keys = write()
    print(f"compose .env: {'generated ' + ', '.join(keys) if keys else 'kept as it is'} ({ROOT / '.env'})")
    sys.exit(0)
