"""What the ETL benchmarks share (``bench/etl.py``, ``bench/etl_wide.py``): the whole DAG run and timed in a
child process, and the raw ``insert_many`` baseline. Not a benchmark of its own (``make bench`` skips it)."""

from __future__ import annotations

import json
import time


def dag_child(params: dict) -> None:
    """production_etl with ``dag.test()`` and ``params`` in this process (environment from the parent); prints
    one JSON line: ``{"seconds", "run", "tasks": {task[map index]: seconds}, "state", "states": {task: state}}``:
    ``seconds`` from the call (the metadata DB check and the DAG parse included), ``run`` the DAG run's own
    duration as Airflow records it (start to end date, what the UI shows)."""
    from ferry_dev import dagtest

    t = time.perf_counter()
    dr = dagtest.run_dag("production_etl", params)
    seconds = time.perf_counter() - t
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dr.dag_id, run_id=dr.run_id).all()
        tasks = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.duration or 0 for ti in tis}
        states = {ti.task_id: str(ti.state) for ti in tis}
    run = (dr.end_date - dr.start_date).total_seconds()
    print(json.dumps({"seconds": seconds, "run": run, "tasks": tasks, "state": str(dr.state), "states": states}))


def raw_insert_seconds(conn, client, eff: dict, batch: int, db: str) -> float:
    """The raw baseline: every collection's documents prebuilt from ``conn`` (not timed), then inserted into
    ``client[db]`` (dropped first) with ``insert_many``, 10,000 a call; returns the seconds the inserts took."""
    from ferry.etl import acquire, transform

    prebuilt: dict[str, list] = {}
    for coll in eff["collections"]:
        prebuilt[coll["name"]] = []
        for rows, children in acquire.batches(conn, "public", coll, batch):
            prebuilt[coll["name"]] += transform.build_batch(rows, coll, children, "decimal128")[0]
    conn.commit()
    client.drop_database(db)
    t = time.perf_counter()
    for name, docs in prebuilt.items():
        for i in range(0, len(docs), 10_000):
            client[db][name].insert_many(docs[i : i + 10_000], ordered=False)
    return time.perf_counter() - t


def incremental(pg, client, db: str, target: str, effective, batch: int, change: str | None, profile: bool = False):
    """One incremental load of ``target`` from ``db`` as production_etl runs it (``change`` SQL first, if any;
    then a pre-image version and the load, its change-capture state saved), with the mapping ``effective(conn)``
    gives: ``(seconds, load result, pyinstrument's text of it or "")``."""
    import tempfile

    from ferry.etl import backup, load
    from ferry.etl.names import meta_db

    with pg.connect(db) as conn:
        if change:
            conn.execute(change)
            conn.commit()
        eff = effective(conn)
        meta = client[meta_db(target)]
        prof = None
        if profile:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.005)
            prof.start()
        t = time.perf_counter()
        rec = backup.open_delta(client, target, meta, tempfile.mkdtemp(prefix="ferry-bench-delta-"))
        opts = load.Options(strategy="incremental", batch_size=batch, meta_db=meta, backup_version=rec["_id"])
        res = load.load(conn, client, target, eff, opts)
        load.save_state(meta, res)
        seconds = time.perf_counter() - t
        text = ""
        if prof is not None:
            prof.stop()
            text = prof.output_text(unicode=False, color=False, show_all=False, short_mode=True)
        return seconds, res, text
