"""Fixtures and helpers for the production ETL tests (domain level: no Airflow needed)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

MAPPING = "include/etl/demo_mapping.yaml"


@pytest.fixture
def demo_pg(pg_conn):
    """``pg_conn`` with the demo schema and a small data set (20 accounts, 60 campaigns, ...)."""
    from ferry_dev import etl_demodata as demodata

    demodata.create_schema(pg_conn)
    counts = demodata.seed(pg_conn, accounts=20, campaigns_per=3, items_per=3, tags_per=2)
    return SimpleNamespace(conn=pg_conn, counts=counts)


class InjectedFailure(RuntimeError):
    """A crash between two batches (``fail_after``)."""


def fail_after(batches: int | None):
    """A ``load.Options.after_batch`` hook that raises ``InjectedFailure`` once ``batches`` were written."""
    if batches is None:
        return None

    def hook(done: int) -> None:
        if done >= batches:
            raise InjectedFailure(f"injected failure after {done} batch(es)")

    return hook


def detect(conn, client, db: str, source: str = "demo", run_id: str = "t") -> dict:
    """What SchemaChangeDetectOperator does, without Airflow."""
    from ferry.etl import schema
    from ferry.etl.names import meta_db

    snap = schema.snapshot(conn)
    conn.commit()
    meta = client[meta_db(db)]
    base = schema.last_accepted(meta, source)
    changes = schema.diff(base["snapshot"], snap) if base else []
    doc = schema.store(meta, source, snap, changes, base["version"] if base else None, run_id)
    return {
        "snapshot_id": doc["_id"],
        "version": doc["version"],
        "base_version": doc["base_version"],
        "changes": changes,
        "summary": schema.summary(changes),
    }


def run_etl(
    conn,
    client,
    db: str,
    tmp_path,
    *,
    policy: str = "auto_safe",
    strategy: str = "full",
    batch_size: int = 25,
    chosen=None,
    fail_after_batches=None,
    run_id: str = "t",
    mapping: str = MAPPING,
    responder: str | None = None,
    params_input: dict | None = None,
) -> dict:
    """detect -> plan -> backup -> load (staging) -> validate -> publish, as production_etl does (domain
    functions only): a full load is checked in staging before it is published."""
    from ferry.etl import backup, checks, load, pipeline
    from ferry.etl.names import meta_db

    detected = detect(conn, client, db, run_id=run_id)
    meta = client[meta_db(db)]
    planned = pipeline.plan(meta, mapping, detected, policy, pipeline.Answer(chosen, responder, params_input))
    make = backup.open_delta if strategy == "incremental" else backup.create
    rec = make(client, db, meta, str(tmp_path / "backups"), run_id=run_id)
    opts = load.Options(
        strategy=strategy,
        batch_size=batch_size,
        publish_now=False,
        meta_db=meta,
        run_id=run_id,
        backup_version=rec["_id"],
        after_batch=fail_after(fail_after_batches),
    )
    res = load.load(conn, client, db, planned["effective_mapping"], opts)
    conn.commit()
    quarantined = {k: v["quarantined"] for k, v in res["collections"].items()}
    res["backup_version"] = rec["_id"]
    changed = load.changed(meta, res)  # an incremental run checks what it wrote (as production_etl does)
    rows = checks.run(
        conn,
        client,
        res["staging"] or db,
        planned["effective_mapping"],
        quarantined=quarantined,
        sample=20,
        changed=changed,
    )
    conn.commit()
    if res["staging"]:
        load.publish(client, res["staging"], db, list(res["collections"]))
    load.save_state(meta, res)
    return {"detected": detected, "planned": planned, "backup": rec, "load": res, "checks": rows}
