"""Reading the source: server-side cursors in batches (direct), or a pg_dump from S3 restored first.

Memory is bounded by the batch: root rows come from a named (server-side) cursor, ``batch_size`` at a
time; their embedded rows are fetched per batch with ``= ANY(keys)``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from psycopg import sql
from psycopg.rows import dict_row

from ferry.errors import FerryError

log = logging.getLogger(__name__)


def _cols(part: dict, extra: list[str]) -> sql.Composable:
    cols = list(dict.fromkeys([*extra, *part["fields"].keys()]))
    return sql.SQL(", ").join(sql.Identifier(c) for c in cols)


def root_columns(coll: dict) -> list[str]:
    extra = [coll["id"]]
    for rel in coll["relations"]:
        extra.append(rel["column"] if rel["kind"] == "reference" else rel.get("local_key") or coll["id"])
    return extra


def count(conn, schema: str, table: str) -> int:
    q = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    return conn.execute(q).fetchone()[0]


def batches(conn, schema: str, coll: dict, batch_size: int) -> Iterator[tuple[list[dict], dict[str, dict]]]:
    """Yield (root rows, children) per batch; children[as] = {key: [rows]} (embed_many) or {key: row}."""
    q = sql.SQL("SELECT {} FROM {}.{} ORDER BY {}").format(
        _cols(coll, root_columns(coll)),
        sql.Identifier(schema),
        sql.Identifier(coll["table"]),
        sql.Identifier(coll["id"]),
    )
    name = f"ferry_{coll['name']}_{uuid.uuid4().hex[:6]}"
    with conn.cursor(name=name, row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(q)
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                break
            yield rows, children(conn, schema, coll, rows)


def children(conn, schema: str, coll: dict, rows: list[dict]) -> dict[str, dict]:
    from ferry.etl.transform import group

    out: dict[str, dict] = {}
    for rel in coll["relations"]:
        if rel["kind"] == "embed_many":
            keys = [r[coll["id"]] for r in rows]
            order = [rel["foreign_key"], rel.get("order_by") or rel["foreign_key"]]
            q = sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%s) ORDER BY {}").format(
                _cols(rel, [rel["foreign_key"]]),
                sql.Identifier(schema),
                sql.Identifier(rel["table"]),
                sql.Identifier(rel["foreign_key"]),
                sql.SQL(", ").join(sql.Identifier(c) for c in order),
            )
            with conn.cursor(row_factory=dict_row) as cur:
                out[rel["as"]] = group(cur.execute(q, (keys,)).fetchall(), rel["foreign_key"])
        elif rel["kind"] == "embed_one":
            keys = list({r[rel["local_key"]] for r in rows if r[rel["local_key"]] is not None})
            pk = rel["pk"]
            q = sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%s)").format(
                _cols(rel, [pk]), sql.Identifier(schema), sql.Identifier(rel["table"]), sql.Identifier(pk)
            )
            with conn.cursor(row_factory=dict_row) as cur:
                out[rel["as"]] = {r[pk]: r for r in cur.execute(q, (keys,)).fetchall()}
    return out


def fetch_ids(conn, schema: str, coll: dict, ids: list) -> tuple[list[dict], dict[str, dict]]:
    """The rows (and children) of ``ids`` only (validation samples)."""
    q = sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%s) ORDER BY {}").format(
        _cols(coll, root_columns(coll)),
        sql.Identifier(schema),
        sql.Identifier(coll["table"]),
        sql.Identifier(coll["id"]),
        sql.Identifier(coll["id"]),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(q, (ids,)).fetchall()
    return rows, children(conn, schema, coll, rows)


def add_join_keys(eff: dict, snapshot: dict) -> dict:
    """embed_one relations join on the parent table's primary key (single column)."""
    for coll in eff["collections"]:
        for rel in coll["relations"]:
            if rel["kind"] == "embed_one":
                pk = snapshot["tables"][rel["table"]]["primary_key"]
                if len(pk) != 1:
                    from ferry.etl.mapping import MappingError

                    raise MappingError(
                        f"mapping line {rel['line']}: {coll['name']}.{rel['as']}: table "
                        f"{rel['table']!r} needs a single-column primary key to embed (has {pk})"
                    )
                rel["pk"] = pk[0]
    return eff


# --------------------------------------------------------------------------- S3: pg_dump -> scratch database


class DumpNotFound(FerryError, FileNotFoundError):
    pass


def newest_dump(s3, bucket: str, prefix: str = "", key: str = "") -> str:
    """``key`` if given (must exist), else the newest object under ``prefix`` ending in .dump/.pgdump/.backup."""
    if key:
        from ferry import storage

        if not storage.exists(f"s3://{bucket}/{key}", s3=s3):
            raise DumpNotFound(f"s3://{bucket}/{key}: no such dump")
        return key
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [o for o in page.get("Contents", []) if o["Key"].endswith((".dump", ".pgdump", ".backup"))]
    if not found:
        raise DumpNotFound(f"no pg_dump file (*.dump, *.pgdump, *.backup) under s3://{bucket}/{prefix}")
    return max(found, key=lambda o: (o["LastModified"], o["Key"]))["Key"]


#: Connection parameters handed to command-line tools: those every libpq since PostgreSQL 12 knows (the
#: tools may be older than the libpq psycopg ships, which adds e.g. ``sslcertmode``).
TOOL_PARAMS = (
    "host",
    "hostaddr",
    "port",
    "user",
    "dbname",
    "options",
    "application_name",
    "connect_timeout",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "sslcrl",
    "sslcompression",
    "gssencmode",
    "krbsrvname",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "service",
    "passfile",
)


def conninfo(conn) -> tuple[str, str | None]:
    """A libpq conninfo reaching what the open psycopg ``conn`` reaches (host, port, user, database and
    options such as ``sslmode``), without the password, and the password (for ``PGPASSWORD``, never argv)."""
    from psycopg.conninfo import make_conninfo

    params = {k: v for k, v in conn.info.get_parameters().items() if k in TOOL_PARAMS}
    return make_conninfo(**params), conn.info.password or None


def create_scratch(admin, scratch_db: str) -> int:
    """(Re)create ``scratch_db`` on the server of ``admin`` (an autocommit connection); its major version."""
    major = int(admin.execute("SHOW server_version_num").fetchone()[0]) // 10000
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch_db)))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch_db)))
    return major


def drop_scratch(admin, scratch_db: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch_db)))


def restore_dump(s3, bucket: str, key: str, scratch, server_major: int) -> dict:
    """Download ``key`` and ``pg_restore`` it into the (empty) database ``scratch`` is connected to."""
    from ferry.pgtools import pg_tool

    scratch_db = scratch.info.dbname
    with tempfile.TemporaryDirectory(prefix="ferry-etl-dump-") as tmp:
        path = Path(tmp) / Path(key).name
        s3.download_file(bucket, key, str(path))
        size = path.stat().st_size
        exe = pg_tool("pg_restore", server_major)
        info, password = conninfo(scratch)
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        if password:
            env["PGPASSWORD"] = password  # not in argv, where `ps` shows it to every user
        res = subprocess.run(
            [exe, "--no-owner", "--no-acl", "--exit-on-error", "-d", info, str(path)],
            capture_output=True,
            text=True,
            env=env,
        )
        if res.returncode:
            raise FerryError(
                f"pg_restore of s3://{bucket}/{key} into {scratch_db} failed: {res.stderr.strip()[-2000:]}"
            )
    log.info("restored s3://%s/%s (%d bytes) into scratch database %s", bucket, key, size, scratch_db)
    return {"bucket": bucket, "key": key, "bytes": size, "database": scratch_db}
