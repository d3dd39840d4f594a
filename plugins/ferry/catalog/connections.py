"""The ATProto side's connections: the PDS (``ferry_atproto``) and the atdata index (``ferry_atdata_index``),
through Airflow connections. Here, not in ``ferry.conns``, so shared modules never import the catalog family."""

from __future__ import annotations

from ferry.conns import ATDATA_INDEX, ATPROTO


def atproto(conn_id: str = ATPROTO):
    """An authenticated atdata ``Atmosphere`` for ``conn_id``: host = PDS URL, login = handle, password = app
    password (never logged). Logs in without the Bluesky profile look-up (see ``ferry.catalog.atmosphere``)."""
    from airflow.sdk import BaseHook

    from ferry.catalog.atmosphere import login

    c = BaseHook.get_connection(conn_id)
    host = c.host or ""
    if host and "://" not in host:
        host = f"{c.schema or 'https'}://{host}" + (f":{c.port}" if c.port else "")
    return login(host.rstrip("/"), c.login or "", c.password or ""), host


def atdata_index(conn_id: str = ATDATA_INDEX):
    """The atdata local ``Index`` of ``conn_id`` (extra ``provider``: ``redis`` (default: host, port, password,
    extra ``db``), ``sqlite`` (host = database file) or ``postgres`` (extra ``dsn``)); no atmosphere backend."""
    from airflow.sdk import BaseHook
    from atdata.local import Index

    from ferry.errors import FerryError

    c = BaseHook.get_connection(conn_id)
    extra = c.extra_dejson
    provider = extra.get("provider", "redis")
    if provider == "redis":
        from redis import Redis

        redis = Redis(
            host=c.host or "127.0.0.1", port=c.port or 6379, password=c.password or None, db=int(extra.get("db", 0))
        )
        return Index(redis=redis, atmosphere=None)
    if provider == "sqlite":
        return Index(provider="sqlite", path=c.host, atmosphere=None)
    if provider == "postgres":
        return Index(provider="postgres", dsn=extra.get("dsn"), atmosphere=None)
    raise FerryError(f"connection {conn_id!r}: extra provider={provider!r} is not redis, sqlite or postgres")
