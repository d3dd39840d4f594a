"""docker-compose.yaml: accepted by the compose CLI (when present) and wired to Ferry's connection ids."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from ferry_dev.devstack import CONN_IDS, REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yaml"


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_cli_refuses_without_env_and_renders_with_the_generated_one(tmp_path):
    """The compose CLI itself (Docker's plugin, or Debian's docker-compose 1.29): without `.env` it refuses
    naming the fix; with the `.env` that `make up` writes it renders the stack with those secrets, and no
    `SIMPLE_AUTH_MANAGER_ALL_ADMINS` anywhere."""
    import sys

    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI on this machine (neither `docker compose` nor `docker-compose`)")
    env = tmp_path / ".env"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "POSTGRES_", "MINIO_"))}

    def config(*args: str) -> subprocess.CompletedProcess:
        argv = [*cli, "-f", str(COMPOSE), "--env-file", str(env), "config", *args]
        return subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, env=run_env)

    env.write_text("")
    refused = config("-q")
    assert refused.returncode != 0 and "run make up" in refused.stderr, refused.stderr
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import compose_env
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    env.unlink()
    compose_env.write(REPO_ROOT / ".env.example", env)
    rendered = config()
    assert rendered.returncode == 0, rendered.stderr
    values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line and line[0] != "#")
    for key in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY", "MINIO_ROOT_PASSWORD"):
        assert values[key] in rendered.stdout, key  # taken from .env ...
        assert values[key] not in COMPOSE.read_text(), key  # ... never from the committed file
    assert "ALL_ADMINS" not in rendered.stdout


def test_compose_runs_the_full_stack_with_ferry_connections():
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    for name in (
        "postgres",
        "mongo-prod",
        "mongo-local",
        "minio",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    ):
        assert name in services, name
    assert services["mongo-prod"]["image"].startswith("mongo:")  # a real mongod, not the test server
    env = services["airflow-scheduler"]["environment"]
    for conn_id in CONN_IDS:
        value = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert value["conn_type"] in {"postgres", "mongo", "aws", "duckdb"}
    assert "./dags:/opt/airflow/dags" in services["airflow-scheduler"]["volumes"]
    assert "./plugins:/opt/airflow/plugins" in services["airflow-scheduler"]["volumes"]
    assert env["FERRY_STORAGE_URL"].startswith("s3://")  # files one task leaves for another: object storage
    assert "airflow pools set ferry_duckdb 1" in " ".join(services["airflow-init"]["command"])


def test_compose_has_a_celery_profile_with_the_same_connections():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["redis"]["profiles"] == ["celery"] and services["airflow-worker"]["profiles"] == ["celery"]
    worker = services["airflow-worker"]
    assert worker["command"][:2] == ["celery", "worker"]
    assert worker["environment"] == services["airflow-scheduler"]["environment"]  # same ids, same storage
    env = worker["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${FERRY_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
