"""Shared fixtures: one set of real local services per test session (see ferry_dev.devstack).

Airflow's environment is set here, at import, before anything imports Airflow.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

from ferry_dev.devstack import DevStack, airflow_env

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ferry-test-airflow-"))
os.environ.update({k: v for k, v in airflow_env(_AIRFLOW_HOME).items() if k != "PYTHONPATH"})
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("FERRY_SALES_START_DATE", "2024-01-01")  # the sales tests load January 2024


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Real PostgreSQL, two MongoDB wire servers (prod, local), moto S3; stopped at session end."""
    s = DevStack.start(tmp_path_factory.mktemp("stack"))
    try:
        yield s
    finally:
        s.close()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_database(stack):
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    name = unique("ferry_t")
    stack.pg.create_database(name)
    yield name
    stack.pg.drop_database(name)


@pytest.fixture
def pg_conn(stack, pg_database):
    with stack.pg.connect(pg_database) as conn:
        yield conn


# ---------------------------------------------------------------- MongoDB


@pytest.fixture(scope="session")
def mongo_prod(stack):
    """Client to the "prod" deployment (also where ``ferry_mongo_dev`` points)."""
    with stack.mongo_client("prod") as c:
        yield c


@pytest.fixture(scope="session")
def mongo_local(stack):
    """Client to the "local" deployment (a second server unless MONGO_URI points both at one)."""
    with stack.mongo_client("local") as c:
        yield c


@pytest.fixture
def mongo_db_name(mongo_prod, mongo_local):
    """A unique database name; dropped on both deployments afterwards (also ``<name>_dev``)."""
    name = unique("ferry_t")
    yield name
    for client in {id(mongo_prod): mongo_prod, id(mongo_local): mongo_local}.values():
        for db in client.list_database_names():
            if db.startswith(name):
                client.drop_database(db)


@pytest.fixture
def command_recorder():
    """Factory for ``(client, recorder)``: a MongoClient whose commands are recorded."""
    from tests.helpers import CommandRecorder

    clients = []

    def make(uri: str):
        import pymongo

        rec = CommandRecorder()
        client = pymongo.MongoClient(uri, event_listeners=[rec])
        clients.append(client)
        return client, rec

    yield make
    for c in clients:
        c.close()


# ---------------------------------------------------------------- S3 and DuckDB


@pytest.fixture(scope="session")
def s3(stack):
    return stack.s3_client()


@pytest.fixture
def s3_bucket(s3):
    name = unique("ferry-t").replace("_", "-")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def duckdb_path(tmp_path) -> Path:
    return tmp_path / "ferry.duckdb"


# ---------------------------------------------------------------- Airflow connections


@pytest.fixture
def airflow_conns(stack, pg_database, duckdb_path, monkeypatch, tmp_path):
    """``AIRFLOW_CONN_*`` for every Ferry connection id, pointing at this test's databases."""
    env = stack.connection_env(pg_db=pg_database, duckdb_path=duckdb_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FERRY_STORAGE_URL", str(tmp_path / "storage"))  # one machine: a folder serves
    return env
