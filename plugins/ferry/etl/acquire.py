"""Reading the source: server-side cursors in batches (direct), or a pg_dump from S3 restored first.

Memory is bounded by the batch: root rows come from a named (server-side) cursor, ``batch_size`` at a
time; their embedded rows are fetched per batch with ``= ANY(keys)``.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row

from ferry import settings
from ferry.errors import FerryError
from ferry.etl import keys

log = logging.getLogger(__name__)


def _cols(part: dict, extra: list[str]) -> sql.Composable:
    cols = list(dict.fromkeys([*extra, *part["fields"].keys()]))
    return sql.SQL(", ").join(sql.Identifier(c) for c in cols)


def root_columns(coll: dict) -> list[str]:
    extra = keys.columns(coll)
    for rel in coll["relations"]:
        if rel["kind"] == "reference":
            extra += keys.names(rel["column"])
        elif rel["kind"] == "embed_one":
            extra += keys.names(rel["local_key"])
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
        keys.idents(keys.columns(coll)),
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


def children(conn, schema: str, coll: dict, rows: list[dict]) -> dict[str, Any]:
    from ferry.etl.transform import group

    out: dict[str, Any] = {}
    for rel in coll["relations"]:
        if rel["kind"] == "embed_many":
            fk, cols = foreign_key(rel), keys.columns(coll)
            pred, args = keys.among(fk, [keys.of_row(r, cols) for r in rows], schema, coll["table"], cols)
            order = [*fk, *([rel["order_by"]] if rel.get("order_by") else [])]
            # ctid last: rows that order_by leaves tied (or no order_by) come in one order on every read, so a
            # rebuilt document equals the stored one
            q = sql.SQL("SELECT {} FROM {}.{} WHERE {} ORDER BY {}, ctid").format(
                _cols(rel, fk),
                sql.Identifier(schema),
                sql.Identifier(rel["table"]),
                pred,
                keys.idents(order),
            )
            with conn.cursor(row_factory=dict_row) as cur:
                out[rel["as"]] = group(cur.execute(q, args).fetchall(), fk)
        elif rel["kind"] == "embed_one":
            out[rel["as"]] = _parents(conn, schema, rel, rows)
        elif rel.get("ref_table"):  # reference: which of the referenced keys exist (missing ones are reported)
            out[rel["as"]] = _existing(conn, schema, rel, rows)
    return out


def _embed_one_keys(rel: dict) -> tuple[list[str], list[str]]:
    """(the root's local key columns, the parent's key columns) of an embed_one."""
    return keys.names(rel["local_key"]), keys.names(rel["pk"])


def foreign_key(rel: dict) -> list[str]:
    """An embed_many's foreign key columns (several when the parent's key is composite)."""
    return keys.names(rel["foreign_key"])


def _parents(conn, schema: str, rel: dict, rows: list[dict]) -> dict:
    """The parent rows an embed_one copies, by key (a tuple per composite key; a key with a NULL part
    joins nothing)."""
    lk, pk = _embed_one_keys(rel)
    wanted = [k for k in {keys.of_row(r, lk) for r in rows} if not keys.has_null(k)]
    pred, args = keys.among(pk, wanted, schema, rel["table"])
    q = sql.SQL("SELECT {} FROM {}.{} WHERE {}").format(
        _cols(rel, pk), sql.Identifier(schema), sql.Identifier(rel["table"]), pred
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return {keys.of_row(r, pk): r for r in cur.execute(q, args).fetchall()}


def _existing(conn, schema: str, rel: dict, rows: list[dict]) -> set:
    """Which of the keys ``rows`` reference (``rel``) exist in the referenced table (a tuple per composite key;
    a key with a NULL part references nothing)."""
    mine, theirs = keys.names(rel["column"]), keys.names(rel["ref_key"])
    wanted = [k for k in {keys.of_row(r, mine) for r in rows} if not keys.has_null(k)]
    if not wanted:
        return set()
    pred, args = keys.among(theirs, wanted, schema, rel["ref_table"])
    q = sql.SQL("SELECT {} FROM {}.{} WHERE {}").format(
        keys.idents(theirs), sql.Identifier(schema), sql.Identifier(rel["ref_table"]), pred
    )
    return {r[0] if len(theirs) == 1 else tuple(r) for r in conn.execute(q, args).fetchall()}


def fetch_ids(conn, schema: str, coll: dict, ids: list) -> tuple[list[dict], dict[str, dict]]:
    """The rows (and children) of ``ids`` (source keys, ``keys.of_row``) only (validation samples)."""
    cols = keys.columns(coll)
    pred, args = keys.among(cols, ids, schema, coll["table"])
    q = sql.SQL("SELECT {} FROM {}.{} WHERE {} ORDER BY {}").format(
        _cols(coll, root_columns(coll)),
        sql.Identifier(schema),
        sql.Identifier(coll["table"]),
        pred,
        keys.idents(cols),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(q, args).fetchall()
    return rows, children(conn, schema, coll, rows)


def add_join_keys(eff: dict, snapshot: dict) -> dict:
    """embed_one relations join on the parent table's primary key (``mapping.embed_key``: its column, or
    columns); references are checked against the referenced collection's table and id column(s)."""
    roots = {c["name"]: c for c in eff["collections"]}
    for coll in eff["collections"]:
        for rel in coll["relations"]:
            if rel["kind"] == "reference" and rel["collection"] in roots:
                rel["ref_table"], rel["ref_key"] = roots[rel["collection"]]["table"], roots[rel["collection"]]["id"]
            if rel["kind"] == "embed_one":
                from ferry.etl.mapping import embed_key

                rel["pk"] = embed_key(snapshot["tables"][rel["table"]], rel, f"{coll['name']}.{rel['as']}")
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
        # the password in the environment, not in argv, where `ps` shows it to every user
        env = settings.child_env(PGCONNECT_TIMEOUT="10", **({"PGPASSWORD": password} if password else {}))
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


# --------------------------------------------------------------------------- change capture (incremental)

#: Keys, ids and hashes are looked up (PostgreSQL ``= ANY``, MongoDB ``$in``) this many at a time, whatever
#: the batch size: the bundled wire server's ``$in`` cost grows with the square of the list (100 ids
#: 0.08 s, 1,000 ids 4 s), so a bounded chunk keeps every lookup linear.
LOOKUP_CHUNK = 100
XMIN = "xmin"


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last one shorter), read lazily: ``LOOKUP_CHUNK`` lookups."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def key_hash(value) -> int:
    """32-bit hash of a key's text (``str``), the same as ``KEY_HASH_SQL`` computes in PostgreSQL."""
    import hashlib

    return int(hashlib.md5(str(value).encode()).hexdigest()[:8], 16)


def _key_hash_sql(expr: sql.Composable) -> sql.Composable:
    return sql.SQL("('x' || substr(md5(({})::text), 1, 8))::bit(32)::bigint").format(expr)


def fingerprint(conn, schema: str, table: str, column: str | list[str]) -> list[int]:
    """``[count, sum of key_hash]`` over ``column`` (or the columns of a composite key, hashed as
    ``keys.Key.__str__`` reads) of ``table`` (one aggregate, computed by the server)."""
    cols = keys.names(column)
    q = sql.SQL("SELECT count(*), coalesce(sum({h}), 0) FROM {s}.{t} WHERE {nn}").format(
        nn=keys.not_null_sql(cols),
        h=_key_hash_sql(keys.text_sql(cols)),
        s=sql.Identifier(schema),
        t=sql.Identifier(table),
    )
    n, total = conn.execute(q).fetchone()
    return [int(n), int(total)]


def source_identity(conn) -> str:
    """Which database ``xmin`` values belong to (a restored dump is another database: xmin starts over)."""
    row = conn.execute(
        "SELECT current_database() || '@' || coalesce(host(inet_server_addr()), 'local') || ':' || "
        "coalesce(inet_server_port()::text, '')"
    ).fetchone()
    return row[0]


def take_watermark(conn, schema: str, table: str, watermark: str):
    """The high-water mark to store for ``table`` now (before reading): for ``xmin`` the oldest transaction
    still running (every row written by a later or unfinished one is read next time), else ``max(column)``."""
    if watermark == XMIN:
        xid = conn.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())").fetchone()[0]
        return int(xid) % (1 << 32)
    q = sql.SQL("SELECT max({c})::text, pg_typeof(max({c}))::text FROM {s}.{t}").format(
        c=sql.Identifier(watermark), s=sql.Identifier(schema), t=sql.Identifier(table)
    )
    value, typ = conn.execute(q).fetchone()
    return None if value is None else [value, typ]  # as text: exact (BSON dates would keep milliseconds)


def _changed_sql(alias: str, watermark: str, value) -> tuple[sql.Composable, list]:
    if watermark == XMIN:
        return sql.SQL("age({}.xmin) <= age(%s::text::xid)").format(sql.Identifier(alias)), [str(value)]
    if value is None:
        return sql.SQL("TRUE"), []
    col = sql.Identifier(alias, watermark)
    text, typ = value
    # >=: a row written later with the same value is still read (the rows at the mark are read again)
    return sql.SQL("({c} >= %s::text::{t} OR {c} IS NULL)").format(c=col, t=sql.SQL(typ)), [text]


def changed_batches(
    conn, schema: str, coll: dict, marks: dict, batch_size: int
) -> Iterator[tuple[list[dict], dict[str, dict]]]:
    """Like ``batches``, but only root rows changed since ``marks`` (``{part: {"watermark", "value"}}``,
    parts named ``""`` for the root, else the relation's ``as``): the row itself, one of its embedded
    child rows, or its embedded parent row."""
    root = marks[""]
    pred, args = _changed_sql("t", root["watermark"], root["value"])
    preds = [pred]
    for rel in coll["relations"]:
        m = marks.get(rel.get("as")) if rel["kind"] != "reference" else None
        if not m:
            continue
        p, a = _changed_sql("c", m["watermark"], m["value"])
        # embed_many: the root's id among the changed children's foreign keys; embed_one: the root's local key
        # among the changed parents' keys
        mine, theirs = (keys.columns(coll), foreign_key(rel)) if rel["kind"] == "embed_many" else _embed_one_keys(rel)
        preds.append(
            sql.SQL("{} IN (SELECT {} FROM {}.{} c WHERE {})").format(
                keys.row_expr(mine, "t"),
                keys.idents(theirs, "c"),
                sql.Identifier(schema),
                sql.Identifier(rel["table"]),
                p,
            )
        )
        args += a
    cols = list(dict.fromkeys([*root_columns(coll), *coll["fields"].keys()]))
    q = sql.SQL("SELECT {} FROM {}.{} t WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier("t", c) for c in cols),
        sql.Identifier(schema),
        sql.Identifier(coll["table"]),
        sql.SQL(" OR ").join(preds),
        keys.idents(keys.columns(coll), "t"),
    )
    name = f"ferry_cc_{coll['name']}_{uuid.uuid4().hex[:6]}"
    with conn.cursor(name=name, row_factory=dict_row) as cur:
        cur.itersize = batch_size
        cur.execute(q, args)
        while True:
            rows = cur.fetchmany(batch_size)
            if not rows:
                break
            yield rows, children(conn, schema, coll, rows)


def sorted_keys(conn, schema: str, table: str, column: str | list[str], itersize: int = 10000) -> Iterator:
    """Every key of ``table``, in order (a server-side cursor; keys only; a tuple per composite key)."""
    cols = keys.names(column)
    q = sql.SQL("SELECT {c} FROM {s}.{t} ORDER BY {c}").format(
        c=keys.idents(cols), s=sql.Identifier(schema), t=sql.Identifier(table)
    )
    with conn.cursor(name=f"ferry_keys_{uuid.uuid4().hex[:6]}") as cur:
        cur.itersize = itersize
        cur.execute(q)
        for k in cur:
            yield k[0] if len(cols) == 1 else tuple(k)


def child_counts(conn, schema: str, rel: dict, itersize: int = 10000) -> Iterator[tuple]:
    """``(parent key, number of child rows)`` of an embed_many relation, in parent-key order (a tuple per
    composite key)."""
    fk = foreign_key(rel)
    q = sql.SQL("SELECT {c}, count(*) FROM {s}.{t} WHERE {nn} GROUP BY {c} ORDER BY {c}").format(
        c=keys.idents(fk), nn=keys.not_null_sql(fk), s=sql.Identifier(schema), t=sql.Identifier(rel["table"])
    )
    with conn.cursor(name=f"ferry_counts_{uuid.uuid4().hex[:6]}") as cur:
        cur.itersize = itersize
        cur.execute(q)
        for r in cur:
            yield (r[0], r[1]) if len(fk) == 1 else (tuple(r[:-1]), r[-1])


# --------------------------------------------------------------------------- key ranges (delete detection)

#: Integer key types whose ranges Ferry fingerprints: a delete is then looked for only in the ranges whose
#: fingerprint moved, by probing the few integers of the range the source no longer has.
INT_KEYS = ("smallint", "integer", "bigint")
#: Keys per range (at least), and at most this many ranges per table (the state stays small).
RANGE_KEYS = 2000
MAX_RANGES = 1000


def key_type(conn, schema: str, table: str, column: str) -> str:
    """The PostgreSQL type of ``column`` (``format_type``: ``bigint``, ``text``, ``numeric(10,2)`` ...)."""
    row = conn.execute(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass AND a.attname = %s",
        (schema, table, column),
    ).fetchone()
    return row[0] if row else ""


def range_bounds(conn, schema: str, table: str, column: str, rows: int) -> list[int]:
    """Every ``size``-th key of ``table`` in order (the first is the smallest): the lower bounds of ranges of
    about ``size`` keys, ``size = max(RANGE_KEYS, rows / MAX_RANGES)``. Integer keys only."""
    size = max(RANGE_KEYS, -(-rows // MAX_RANGES))
    q = sql.SQL(
        "SELECT k FROM (SELECT {c} AS k, row_number() OVER (ORDER BY {c}) - 1 AS rn FROM {s}.{t}"
        " WHERE {c} IS NOT NULL) q WHERE rn %% %s = 0 ORDER BY k"
    ).format(c=sql.Identifier(column), s=sql.Identifier(schema), t=sql.Identifier(table))
    return [int(k) for (k,) in conn.execute(q, (size,)).fetchall()]


def range_fingerprints(conn, schema: str, table: str, column: str, bounds: list[int]) -> list[list[int]]:
    """``[count, sum of key_hash]`` of the keys in each range (one aggregate): index 0 holds the keys below
    ``bounds[0]``, index ``i`` those in ``[bounds[i-1], bounds[i])``, the last those from ``bounds[-1]`` on
    (``width_bucket``'s numbering; ``range_of`` computes the same in Python)."""
    q = sql.SQL(
        "SELECT width_bucket({c}, %s::bigint[]), count(*), coalesce(sum({h}), 0) FROM {s}.{t}"
        " WHERE {c} IS NOT NULL GROUP BY 1"
    ).format(
        c=sql.Identifier(column),
        h=_key_hash_sql(sql.Identifier(column)),
        s=sql.Identifier(schema),
        t=sql.Identifier(table),
    )
    out = [[0, 0] for _ in range(len(bounds) + 1)]
    for i, n, total in conn.execute(q, (bounds,)).fetchall():
        out[i] = [int(n), int(total)]
    return out


def range_of(bounds: list[int], key: int) -> int:
    """The range index of ``key`` (as ``width_bucket`` numbers them)."""
    import bisect

    return bisect.bisect_right(bounds, key)


def keys_between(conn, schema: str, table: str, column: str, lo: int | None, hi: int | None) -> set[int]:
    """The keys of ``table`` in ``[lo, hi)`` (``None``: unbounded)."""
    where = [sql.SQL("{} IS NOT NULL").format(sql.Identifier(column))]
    args: list = []
    if lo is not None:
        where.append(sql.SQL("{} >= %s").format(sql.Identifier(column)))
        args.append(lo)
    if hi is not None:
        where.append(sql.SQL("{} < %s").format(sql.Identifier(column)))
        args.append(hi)
    q = sql.SQL("SELECT {c} FROM {s}.{t} WHERE {w}").format(
        c=sql.Identifier(column), s=sql.Identifier(schema), t=sql.Identifier(table), w=sql.SQL(" AND ").join(where)
    )
    return {int(k) for (k,) in conn.execute(q, args).fetchall()}


def key_span(conn, schema: str, table: str, column: str) -> list[int] | None:
    """``[smallest, largest]`` key of ``table`` (``None`` when empty)."""
    q = sql.SQL("SELECT min({c}), max({c}) FROM {s}.{t}").format(
        c=sql.Identifier(column), s=sql.Identifier(schema), t=sql.Identifier(table)
    )
    lo, hi = conn.execute(q).fetchone()
    return None if lo is None else [int(lo), int(hi)]
