"""Lineage: what each task read and wrote, as provider asset URIs, reported to Airflow's hook lineage collector.

The OpenLineage provider turns what a task reported into the inputs and outputs of its run events (for a
task without OpenLineage methods of its own it reads the hook lineage collector), so every Ferry run's events
name real systems:

- ``postgres://host:port/database/schema/table`` (source tables),
- ``mongodb://host:port/database/collection`` (targets, promotion sources),
- ``s3://bucket/key`` (dumps, published data, backups),
- ``file:///path`` (local files; the DuckDB database file),
- ``x-duckdb://conn_id/schema/table`` (a table of the DuckDB database an Airflow connection locates; Airflow
  has no DuckDB provider, and ``x-`` is its documented prefix for a scheme no provider defines).

Outside a task (tests of the library, benchmarks) reporting is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ferry import conns

log = logging.getLogger(__name__)


def report(context: object, *, inputs: Iterable[str] = (), outputs: Iterable[str] = ()) -> None:
    """Report ``inputs`` / ``outputs`` (asset URIs) read and written through ``context`` (a client or hook)."""
    try:
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
        for uri in inputs:
            collector.add_input_asset(context=context, uri=uri)
        for uri in outputs:
            collector.add_output_asset(context=context, uri=uri)
    except Exception:  # noqa: BLE001 - lineage is best effort: it never fails a data move
        log.debug("lineage not reported", exc_info=True)


def emit(ctx, alias: str, uris: Iterable[str]) -> None:
    """Asset events for ``uris`` through the task's ``AssetAlias(alias)`` outlet: DAGs scheduled on the alias
    (or on one of the assets) run after this task changed them."""
    from airflow.sdk import Asset, AssetAlias

    events = ctx.get("outlet_events")
    if events is None:
        return
    for uri in uris:
        events[AssetAlias(alias)].add(Asset(uri))


def mongo_written(
    ctx, alias: str, source, source_db: str, target, target_db: str, collections: Iterable[str]
) -> list[str]:
    """``collections`` of ``source[source_db]`` were written to the same names in ``target[target_db]``:
    report both sides, emit the targets' asset events through ``alias`` (with a task context ``ctx``).
    Returns the target URIs."""
    names = list(collections)
    targets = [mongo(target, target_db, c) for c in names]
    report(target, inputs=[mongo(source, source_db, c) for c in names], outputs=targets)
    if ctx is not None:
        emit(ctx, alias, targets)
    return targets


def mongo(client, db: str, collection: str) -> str:
    host, port = client.address or ("localhost", 27017)
    return f"mongodb://{host}:{port}/{db}/{collection}"


def postgres(conn, schema: str, table: str) -> str:
    info = conn.info
    return f"postgres://{info.host or 'localhost'}:{info.port or 5432}/{info.dbname}/{schema}/{table}"


def s3(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key.lstrip('/')}"


def duckdb(table: str, schema: str = "main", conn_id: str = conns.DUCKDB) -> str:
    """A DuckDB table. The authority is the connection that locates the database file, not the file path: a
    DAG file's assets are fixed when it is parsed, where connections are not read.

    The scheme is ``x-duckdb``: no Airflow provider defines ``duckdb``, and Airflow skips URI normalisation for
    ``x-`` schemes. Any other scheme makes ``Asset()`` load every provider's URI handlers while the DAG file is
    parsed (the Amazon one imports boto3): 282 ms for dags/sales.py against a 200 ms target."""
    return f"x-duckdb://{conn_id}/{schema}/{table}"


def file(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().as_uri()


def url(location: str) -> str:
    """A storage URL (``s3://...`` or a local path) as an asset URI."""
    return location if location.startswith("s3://") else file(location)
