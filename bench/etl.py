"""Benchmark production_etl's load path against baselines measured in the same run, on the same servers.

    PYTHONPATH=plugins:. .venv/bin/python bench/etl.py --rows 300000

Generates ``--rows`` source rows in 3 tables with FKs (accounts 10%, campaigns 30%, line items 60%; one
campaign in 10 has no account: a nullable relation), then prints one figure per line:

- ferry rows/s: ``ferry.etl.load.load`` (full strategy: read with server-side cursors, transform, load, swap);
- raw insert_many: the same prebuilt documents inserted with ``insert_many`` (10k per call); target ferry ≥ 85%;
- the whole DAG (``production_etl`` with ``dag.test()`` in a subprocess: detect, plan, backup, load,
  validate, publish, finish) against the same raw figure; target ≥ 70%;
- a no-change incremental run and a 1%-changed one (1% of the rows of every table updated), as a share of
  the full load's time; targets ≤ 5% and ≤ 10%;
- validate's checks (``ferry.etl.checks.measure`` on the full load, no Great Expectations) against one bare
  ``$group`` pass over each collection (the least a check reading what was loaded costs);
- row-at-a-time: one query per child table per row and ``insert_one`` per document (the original scripts'
  pattern), timed on a sample and compared as documents/s;
- peak RSS of a full load at rows/10 and rows (each in a fresh subprocess, ``VmHWM``); target flat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dag_child, incremental, raw_insert_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]


def _mapping() -> dict:
    from ferry.etl import mapping

    return mapping.load(ROOT / "include/etl/demo_mapping.yaml")


def _effective(conn) -> dict:
    from ferry.etl import acquire, mapping, schema

    snap = schema.snapshot(conn)
    conn.commit()
    return acquire.add_join_keys(mapping.resolve(_mapping(), snap), snap)


def _seed(pg, db: str, rows: int) -> dict:
    from ferry_dev import etl_demodata as demodata

    pg.create_database(db, drop=True)
    with pg.connect(db) as conn:
        demodata.create_schema(conn)
        counts = demodata.seed(conn, accounts=max(1, rows // 10), campaigns_per=3, items_per=2, tags_per=0)
        conn.execute("ALTER TABLE campaigns ALTER COLUMN account_id DROP NOT NULL")
        conn.execute("UPDATE campaigns SET account_id = NULL WHERE id % 10 = 0")  # nullable relations
    return counts


def child(pg_uri: str, mongo_uri: str, target: str, batch: int) -> None:
    """Full load in this process; print peak RSS (KiB) as JSON."""
    import psycopg
    import pymongo

    from ferry.etl import load

    with psycopg.connect(pg_uri) as conn, pymongo.MongoClient(mongo_uri) as client:
        eff = _effective(conn)
        load.load(conn, client, target, eff, load.Options(strategy="full", batch_size=batch))
        client.drop_database(target)
    print(json.dumps({"maxrss_kib": _peak_rss_kib()}))


def _validate_seconds(conn, client, db: str, eff: dict) -> tuple[float, float, bool]:
    """``validate``'s checks on ``db`` as a full load's staging gets them (``checks.measure``, sample 50, no Great
    Expectations import), and their baseline: one bare ``$group`` pass (a count) over each collection, the
    least a check that reads what was loaded can cost: ``(checks seconds, pass seconds, every check equal)``."""
    from ferry.etl import checks

    t = time.perf_counter()
    rows = checks.measure(conn, client, db, eff, sample=50)
    checks_s = time.perf_counter() - t
    conn.commit()
    t = time.perf_counter()
    for coll in eff["collections"]:
        list(client[db][coll["name"]].aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))
    return checks_s, time.perf_counter() - t, all(r["expected"] == r["actual"] for r in rows)


def _peak_rss_kib() -> int:
    """This process image's peak RSS. Not ``getrusage().ru_maxrss``: Linux carries the parent's high-water
    mark across ``execve``, so a child would report the benchmark parent's peak instead of its own."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--baseline-sample", type=int, default=1000, help="root rows timed row-at-a-time")
    ap.add_argument("--rss-only", action="store_true", help="only the peak-RSS comparison (rows/10 vs rows)")
    ap.add_argument("--child", nargs=3, metavar=("PG_URI", "MONGO_URI", "DB"), help=argparse.SUPPRESS)
    ap.add_argument("--dag-child", nargs=2, metavar=("PG_DB", "TARGET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.batch_size)
        return
    if args.dag_child:  # the source database (PG_DB) comes in the environment the parent sets
        target = args.dag_child[1]
        dag_child({"mongo_db": target, "batch_size": args.batch_size, "push_to_s3": False, "refresh_strategy": "full"})
        return

    import logging

    from psycopg.rows import dict_row

    from ferry.etl import acquire, load, transform
    from ferry_dev.devstack import DevStack

    logging.basicConfig(level=logging.WARNING)
    with DevStack.start(Path(tempfile.mkdtemp(prefix="ferry-bench-etl-")), mongo_servers=1) as stack:
        pg = stack.pg
        counts = _seed(pg, "bench_etl", args.rows)
        total_rows = sum(counts.values())
        print(f"source rows: {total_rows} ({counts})")
        client = stack.mongo_client("prod")
        if not args.rss_only:
            with pg.connect("bench_etl") as conn:
                eff = _effective(conn)
                # Ferry
                t = time.perf_counter()
                res = load.load(conn, client, "bench_ferry", eff, load.Options(batch_size=args.batch_size))
                ferry_s = time.perf_counter() - t
                docs_n = sum(c["documents"] for c in res["collections"].values())
                checks_s, pass_s, checks_ok = _validate_seconds(conn, client, "bench_ferry", eff)
                # prebuilt documents (not timed), then raw insert_many of them
                raw_s = raw_insert_seconds(conn, client, eff, args.batch_size, "bench_raw")
                # row at a time: one query per child table per root row, insert_one per document (sampled)
                client.drop_database("bench_rowwise")
                coll = next(c for c in eff["collections"] if c["name"] == "campaigns")
                sample = args.baseline_sample
                t = time.perf_counter()
                with conn.cursor(row_factory=dict_row) as cur:
                    rows = cur.execute(f"SELECT * FROM campaigns ORDER BY id LIMIT {sample}").fetchall()
                    for row in rows:
                        children = acquire.children(conn, "public", coll, [row])
                        doc = transform.build_batch([row], coll, children, "decimal128")[0][0]
                        client["bench_rowwise"]["campaigns"].insert_one(doc)
                row_s = time.perf_counter() - t
                conn.commit()
            # incremental: no change, then 1% of every table's rows changed
            from ferry.etl import load as ld
            from ferry.etl.names import meta_db as mdb

            with pg.connect("bench_etl") as conn:
                eff = _effective(conn)
                ld.save_state(client[mdb("bench_ferry")], {"state": res["state"]})  # as finish does
            quiet_s, quiet, _ = incremental(pg, client, "bench_etl", "bench_ferry", _effective, args.batch_size, None)
            one = (
                "UPDATE accounts SET balance = coalesce(balance, 0) + 1 WHERE id % 100 = 7;"
                "UPDATE campaigns SET budget = coalesce(budget, 0) + 1 WHERE id % 100 = 7;"
                "UPDATE line_items SET quantity = quantity + 1 WHERE id % 100 = 7"
            )
            changed_s, changed, _ = incremental(
                pg, client, "bench_etl", "bench_ferry", _effective, args.batch_size, one
            )
            # the whole DAG, in a subprocess with its own Airflow home
            from ferry_dev.devstack import airflow_env

            home = Path(tempfile.mkdtemp(prefix="ferry-bench-airflow-"))
            env = {**os.environ, **airflow_env(home / "airflow"), **stack.connection_env(pg_db="bench_etl_dag")}
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
            _seed(pg, "bench_etl_dag", args.rows)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--batch-size",
                    str(args.batch_size),
                    "--dag-child",
                    "bench_etl_dag",
                    "bench_dag",
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode:
                print(f"whole DAG: failed ({out.stderr.strip()[-800:]})")
                dag_s = None
            else:
                last = json.loads([x for x in out.stdout.splitlines() if x.startswith('{"seconds"')][-1])
                dag_s = last["seconds"]
                from ferry.report import table

                tasks = sorted(({"task": k, "s": round(s, 1)} for k, s in last["tasks"].items()), key=lambda r: -r["s"])
                print("whole DAG, seconds per task (the rest is dag.test's own start and scheduling):")
                print(table(tasks))
            for db in ("bench_ferry", "bench_raw", "bench_rowwise", "bench_dag"):
                client.drop_database(db)
            ferry_docs_s = docs_n / ferry_s
            print(
                f"ferry: {total_rows / ferry_s:.0f} source rows/s, {ferry_docs_s:.0f} documents/s ({docs_n} documents, {ferry_s:.1f}s)"
            )
            print(
                f"raw insert_many of prebuilt documents: {docs_n / raw_s:.0f} documents/s ({raw_s:.1f}s); "
                f"ferry/raw = {raw_s / ferry_s:.0%} (target >= 85%)"
            )
            if dag_s:
                print(f"whole DAG (dag.test, full): {dag_s:.1f}s; raw/DAG = {raw_s / dag_s:.0%} (target >= 70%)")
            qc = {k: (v["read"], v["written"], v["backed_up"]) for k, v in quiet["collections"].items()}
            cc = {k: (v["read"], v["written"], v["backed_up"]) for k, v in changed["collections"].items()}
            print(
                f"no-change incremental: {quiet_s:.1f}s = {quiet_s / ferry_s:.1%} of the full load "
                f"(target <= 5%); (read, written, backed up) {qc}"
            )
            print(
                f"1%-changed incremental: {changed_s:.1f}s = {changed_s / ferry_s:.1%} of the full load "
                f"(target <= 10%); (read, written, backed up) {cc}"
            )
            print(
                f"validate checks (checks.measure on the full load, no GX): {checks_s:.1f}s "
                f"({'all equal' if checks_ok else 'DIFFER'}); one bare $group pass per collection (same run): "
                f"{pass_s:.1f}s; checks/pass = {checks_s / pass_s:.1f}x"
            )
            print(
                f"row-at-a-time: {sample / row_s:.0f} documents/s ({sample} campaign documents, {row_s:.1f}s); "
                f"ferry/row-at-a-time = {ferry_docs_s / (sample / row_s):.1f}x (target >= 20x)"
            )
        # peak RSS at rows/10 and rows, each in a fresh process
        rss = {}
        for n, db in ((max(10, args.rows // 10), "bench_etl_small"), (args.rows, "bench_etl")):
            if db != "bench_etl":
                _seed(pg, db, n)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--batch-size",
                    str(args.batch_size),
                    "--child",
                    pg.uri(db),
                    stack.mongo_prod_uri,
                    "bench_rss",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rss[n] = json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kib"]
        (small, s_kib), (big, b_kib) = sorted(rss.items())
        print(
            f"peak RSS: {s_kib / 1024:.0f} MiB at {small} rows, {b_kib / 1024:.0f} MiB at {big} rows; "
            f"growth {b_kib / s_kib - 1:+.0%} for 10x the input (target: flat)"
        )
        client.close()


if __name__ == "__main__":
    main()
