"""Fixtures for the atmosphere target: one real local PDS + PLC (``@atproto/dev-env``) and one private Redis
per session, started only when a test asks for them; a fresh PDS account and an empty atdata index per test."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture(scope="session")
def pds(stack):
    """The local PDS (installed into .ferry/pds on first use: minutes; then seconds)."""
    return stack.start_pds()


@pytest.fixture(scope="session")
def atdata_redis_url(stack):
    return stack.start_redis()


@pytest.fixture
def pds_account(pds):
    """A new account on the PDS (an empty repository): ``{"pds_url", "handle", "password", "did"}``."""
    from atproto import Client

    handle = f"t{uuid.uuid4().hex[:10]}.test"
    password = uuid.uuid4().hex
    res = Client(base_url=pds["pds_url"]).com.atproto.server.create_account(
        {"handle": handle, "email": f"{handle}@ferry.test", "password": password}
    )
    return {"pds_url": pds["pds_url"], "handle": handle, "password": password, "did": res.did}


@pytest.fixture
def atmo(pds_account):
    from ferry.catalog.atmosphere import login

    return login(pds_account["pds_url"], pds_account["handle"], pds_account["password"])


@pytest.fixture
def atdata_index(atdata_redis_url):
    """An empty atdata local Index on the session's Redis (atdata's keys are fixed: the database is flushed)."""
    from atdata.local import Index
    from redis import Redis

    redis = Redis.from_url(atdata_redis_url)
    redis.flushdb()
    yield Index(redis=redis, atmosphere=None)
    redis.flushdb()


@pytest.fixture
def atmosphere_conns(airflow_conns, pds_account, atdata_redis_url, monkeypatch):
    """``ferry_atproto`` (this test's account) and ``ferry_atdata_index`` on top of every Ferry connection."""
    from ferry_dev.devstack import atdata_index_conn_json

    conn = {"conn_type": "http", "host": pds_account["pds_url"], "login": pds_account["handle"]}
    monkeypatch.setenv("AIRFLOW_CONN_FERRY_ATPROTO", json.dumps({**conn, "password": pds_account["password"]}))
    monkeypatch.setenv("AIRFLOW_CONN_FERRY_ATDATA_INDEX", atdata_index_conn_json(atdata_redis_url))
    return pds_account
