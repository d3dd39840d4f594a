"""Connections reach their systems only through the providers' hooks, so a user's extras are honoured."""

from __future__ import annotations

import json

import pytest

from ferry import conns
from ferry.etl import acquire

pytestmark = pytest.mark.integration


def test_postgres_connection_extras_reach_psycopg(stack, pg_database, monkeypatch):
    """sslmode and options from ferry_pg_prod's extras are what the session runs with; the password never
    appears in the conninfo handed to command-line tools (pg_restore)."""
    with stack.pg.connect(pg_database, autocommit=True) as c:
        c.execute("CREATE SCHEMA ferry_extras")
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_PG_PROD",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": stack.pg.host,
                "port": stack.pg.port,
                "login": stack.pg.user,
                "password": "s3cr@t pw",
                "schema": pg_database,
                "extra": {
                    "sslmode": "disable",
                    "options": "-c search_path=ferry_extras,public -c statement_timeout=12345",
                },
            }
        ),
    )
    with conns.pg_connect(conns.PG_PROD) as conn:
        assert conn.execute("SHOW search_path").fetchone()[0] == "ferry_extras,public"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "12345ms"
        params = conn.info.get_parameters()
        assert params["sslmode"] == "disable" and params["dbname"] == pg_database
        info, password = acquire.conninfo(conn)
    assert password == "s3cr@t pw" and "s3cr" not in info
    assert "sslmode=disable" in info and "search_path=ferry_extras" in info and f"dbname={pg_database}" in info


def test_postgres_connection_to_another_database_of_the_same_server(stack, pg_database, airflow_conns):
    with conns.pg_connect(conns.PG_PROD, "postgres") as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == "postgres"
    with conns.pg_connect(conns.PG_PROD) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_database
