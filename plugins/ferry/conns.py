"""Clients for Ferry's Airflow connection ids, through the official providers' hooks.

Imported only inside tasks. Domain code never calls these: it takes clients as arguments.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

PG_PROD = "ferry_pg_prod"
MONGO_PROD = "ferry_mongo_prod"
MONGO_LOCAL = "ferry_mongo_local"
MONGO_DEV = "ferry_mongo_dev"
S3 = "ferry_s3"
DUCKDB = "ferry_duckdb"


def mongo_client(conn_id: str):
    """``pymongo.MongoClient`` for ``conn_id`` (``MongoHook.get_conn``)."""
    from airflow.providers.mongo.hooks.mongo import MongoHook

    return MongoHook(mongo_conn_id=conn_id).get_conn()


def mongo_default_db(conn_id: str, fallback: str) -> str:
    """The connection's ``schema`` (default database name) or ``fallback``."""
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).schema or fallback


def pg_uri(conn_id: str, database: str | None = None) -> str:
    """A libpq URI for ``conn_id`` (host, port, login, password, schema = database), optionally for another database."""
    from urllib.parse import quote

    from airflow.sdk import BaseHook

    c = BaseHook.get_connection(conn_id)
    auth = quote(c.login or "", safe="")
    if c.password:
        auth += ":" + quote(c.password, safe="")
    db = database or c.schema or "postgres"
    return f"postgresql://{auth}{'@' if auth else ''}{c.host or 'localhost'}:{c.port or 5432}/{quote(db, safe='')}"


@contextmanager
def pg_connect(conn_id: str, database: str | None = None, **kw) -> Iterator:
    """A psycopg 3 connection for ``conn_id``."""
    import psycopg

    with psycopg.connect(pg_uri(conn_id, database), **kw) as conn:
        yield conn


def s3_client(conn_id: str = S3):
    """boto3 S3 client for ``conn_id`` (``S3Hook.get_conn``; honours ``endpoint_url`` in extras)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=conn_id).get_conn()


def ensure_bucket(s3, bucket: str) -> None:
    """Create ``bucket`` if it does not exist (a 404 on ``head_bucket``); other errors, e.g. 403, propagate."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)


def duckdb_path(conn_id: str = DUCKDB) -> str:
    """The DuckDB database file of ``conn_id`` (the connection's host, as ``DuckDBHook`` reads it)."""
    from airflow.sdk import BaseHook

    path = BaseHook.get_connection(conn_id).host
    if not path:
        raise ValueError(f"connection {conn_id!r} has no host: set it to the DuckDB file path")
    return path
