"""Clients for Ferry's Airflow connection ids, only through the official providers' hooks.

Imported inside tasks only. Domain code never calls these: it takes clients as arguments. Because every
client comes from its provider hook, a connection's extras are honoured as the provider documents them
(PostgreSQL ``sslmode``/``options``/``sslrootcert``, MongoDB ``tls``/``replicaSet``, S3 ``endpoint_url``,
HTTP headers and ``verify``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

PG_PROD = "ferry_pg_prod"
MONGO_PROD = "ferry_mongo_prod"
MONGO_LOCAL = "ferry_mongo_local"
MONGO_DEV = "ferry_mongo_dev"
S3 = "ferry_s3"
DUCKDB = "ferry_duckdb"
SALES_API = "ferry_sales_api"
ALERTS = "ferry_alerts_webhook"
ATPROTO = "ferry_atproto"
ATDATA_INDEX = "ferry_atdata_index"


def mongo_client(conn_id: str):
    """``pymongo.MongoClient`` for ``conn_id`` (``MongoHook.get_conn``)."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    return MongoHook(mongo_conn_id=conn_id).get_conn()


@contextmanager
def pg_connect(conn_id: str, database: str | None = None, *, autocommit: bool = False) -> Iterator:
    """A psycopg 3 connection for ``conn_id`` (``PostgresHook.get_conn``: extras such as ``sslmode`` apply),
    optionally to another ``database`` of the same server."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id, database=database or None).get_conn()
    conn.autocommit = autocommit  # type: ignore[attr-defined]  # a psycopg 3 Connection
    with conn:
        yield conn


def pg_conninfo(conn) -> tuple[str, str | None]:
    """A libpq conninfo for command-line tools (``pg_restore``) reaching what ``conn`` reaches, without the
    password, and the password (hand it over in ``PGPASSWORD``, never in argv)."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**conn.info.get_parameters()), conn.info.password or None


def s3_client(conn_id: str = S3):
    """boto3 S3 client for ``conn_id`` (``S3Hook.get_conn``; honours ``endpoint_url`` in extras)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def http(conn_id: str):
    """``(requests.Session, base URL, connection)`` for ``conn_id`` (``HttpHook``: extras become headers)."""
    from airflow.providers.http.hooks.http import HttpHook

    hook = HttpHook(method="GET", http_conn_id=conn_id)
    session = hook.get_conn()
    return session, hook.base_url.rstrip("/"), hook.get_connection(conn_id)


def duckdb_path(conn_id: str = DUCKDB) -> str:
    """The DuckDB database file of ``conn_id`` (the connection's host, as ``DuckDBHook`` reads it)."""
    from airflow.sdk import BaseHook

    from ferry.errors import FerryError

    path = BaseHook.get_connection(conn_id).host
    if not path:
        raise FerryError(f"connection {conn_id!r} has no host: set it to the DuckDB file path")
    return path
