"""docker-compose.yaml has no open door: named users (no ALL_ADMINS), no secret in the file, every secret from
a `.env` that `make up` generates (scripts/compose_env.py) and compose refuses to start without."""

from __future__ import annotations

import re
import stat
import sys

import yaml
from cryptography.fernet import Fernet

from ferry_dev.devstack import REPO_ROOT

COMPOSE = (REPO_ROOT / "docker-compose.yaml").read_text()
EXAMPLE = REPO_ROOT / ".env.example"


def test_compose_names_its_users_and_holds_no_secret():
    env = yaml.safe_load(COMPOSE)["x-airflow-common"]["environment"]
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS" not in env and "ALL_ADMINS" not in COMPOSE
    users = dict(u.split(":") for u in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert users == {"admin": "admin", "operator": "user", "approver": "user", "viewer": "viewer"}
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?.+\}", env[key]), key  # required, from .env
    for literal in ("minioadmin", "airflow:airflow@", '"password": "airflow"', "change-me"):
        assert literal not in COMPOSE
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE))
    example = {line.split("=")[0] for line in EXAMPLE.read_text().splitlines() if "=" in line and line[0] != "#"}
    assert required and required <= example
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_make_up_generates_the_env_once(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import compose_env
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    env = tmp_path / ".env"
    added = compose_env.write(EXAMPLE, env)
    assert "AIRFLOW_FERNET_KEY" in added and "POSTGRES_PASSWORD" in added
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
    assert all(values[k] for k in values) and values["FERRY_APPROVERS"] == "approver"
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # a valid key
    assert len(values["AIRFLOW_JWT_SECRET"]) >= 32 and values["AIRFLOW_JWT_SECRET"] != values["POSTGRES_PASSWORD"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert (
        compose_env.write(EXAMPLE, env) == []
        and dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line) == values
    )  # kept on the next start
