"""Incremental at 1% changed on one wide table with embedded parents (issue 30's shape), against a full load
of the same table measured in the same run, on the same servers.

    PYTHONPATH=plugins:. .venv/bin/python bench/etl_wide.py --rows 300000 [--profile]

The source (generated in PostgreSQL, deterministic): ``trips`` with ``--rows`` rows and 22 columns
(numeric, timestamptz, nullable integers, text), two many-to-one parents embedded with ``embed_one``:
``stations`` (3,322 rows; 15% of the trips name a station that does not exist, ``on_missing: omit``) and
``vendors`` (16 rows), and a ``reference`` to the ``stations`` collection. The change: 1% of the trips
updated, 100 deleted, 100 inserted. Printed:

- the full load task (``ferry.etl.load.load``, full strategy, swap included) and raw ``insert_many`` of the
  same prebuilt documents;
- the 1%-changed incremental load task (pre-image version + load, as production_etl runs it) as a share of
  the full load task (target <= 8%), and a no-change one (target <= 5%);
- the whole DAG (``dag.test()``, full, then no-change and 1%-changed incremental, S3 export on) with its
  tasks; each incremental DAG run (start to end date, as Airflow records it) as a share of the full one
  (targets <= 5% and <= 10%); the process time (Python and Airflow start, metadata DB check, DAG parse)
  is printed beside it — ``--dag``;
- with ``--profile``, pyinstrument's top functions of the incremental load task.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dag_child, incremental, raw_insert_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

MAPPING = """\
version: 1
source: {schema: public}
defaults: {numeric: decimal128, on_source_delete: delete}
collections:
  - name: stations
    table: stations
    id: id
  - name: trips
    table: trips
    id: id
    relations:
      - {kind: reference, column: station_id, as: stationId, collection: stations, on_missing: omit}
      - kind: embed_one
        table: stations
        local_key: station_id
        as: station
        on_missing: omit
        fields: {name: name, zone: zone, lat: lat, lon: lon}
      - kind: embed_one
        table: vendors
        local_key: vendor_id
        as: vendor
        fields: {name: name, code: code}
"""

SCHEMA = """
DROP TABLE IF EXISTS trips, stations, vendors;
CREATE TABLE vendors (id int PRIMARY KEY, name text NOT NULL, code text NOT NULL);
CREATE TABLE stations (id int PRIMARY KEY, name text NOT NULL, zone text, lat double precision,
                       lon double precision);
CREATE TABLE trips (
    id bigint PRIMARY KEY, vendor_id int NOT NULL, station_id int,
    pickup_at timestamptz NOT NULL, dropoff_at timestamptz, booked_at timestamptz, paid_at timestamptz,
    passengers int, distance numeric(10, 2), fare numeric(10, 2), extra numeric(8, 2), tax numeric(8, 2),
    tip numeric(8, 2), tolls numeric(8, 2), total numeric(10, 2), rate_code int, payment_type int,
    flag int, zone_from int, zone_to int, note text, status text NOT NULL
);
INSERT INTO vendors SELECT g, 'Vendor ' || g, 'V' || g FROM generate_series(1, 16) g;
INSERT INTO stations SELECT g, 'Station ' || g, 'zone ' || (g % 40), 40 + g / 1000.0, -74 + g / 1000.0
  FROM generate_series(1, 3322) g;
INSERT INTO trips SELECT g, 1 + g % 16,
    CASE WHEN g % 20 < 3 THEN 5000 + g % 500 ELSE 1 + (g * 7) % 3322 END,
    timestamptz '2026-01-01' + g * interval '17 seconds', timestamptz '2026-01-01' + g * interval '17 seconds'
      + interval '11 minutes', CASE WHEN g % 4 = 0 THEN NULL ELSE timestamptz '2025-12-31' + g * interval '5 s' END,
    timestamptz '2026-01-01' + g * interval '17 seconds' + interval '12 minutes',
    CASE WHEN g % 9 = 0 THEN NULL ELSE 1 + g % 4 END, (g % 300) / 10.0, 3 + (g % 700) / 10.0, (g % 3) * 0.5,
    0.5, (g % 50) / 10.0, CASE WHEN g % 10 = 0 THEN 6.55 ELSE 0 END, 10 + (g % 900) / 10.0,
    CASE WHEN g % 13 = 0 THEN NULL ELSE 1 + g % 6 END, 1 + g % 5, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 END,
    1 + g % 263, 1 + (g * 3) % 263, CASE WHEN g % 50 = 0 THEN 'airport' END, 'done'
  FROM generate_series(1, %(rows)s) g;
ANALYZE trips; ANALYZE stations; ANALYZE vendors;
"""

CHANGE = """
UPDATE trips SET tip = tip + 1 WHERE id % 100 = 7;
DELETE FROM trips WHERE id IN (SELECT id FROM trips WHERE id % 100 = 42 ORDER BY id LIMIT 100);
INSERT INTO trips SELECT %(rows)s + g, 1, 10, now(), NULL, NULL, NULL, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1,
    NULL, 'new' FROM generate_series(1, 100) g;
"""


def _effective(conn) -> dict:
    from ferry.etl import acquire, mapping, schema

    snap = schema.snapshot(conn)
    conn.commit()
    return acquire.add_join_keys(mapping.resolve(mapping.parse(MAPPING, "bench-wide"), snap), snap)


def _seed(pg, db: str, rows: int) -> None:
    pg.create_database(db, drop=True)
    with pg.connect(db) as conn:
        conn.execute(SCHEMA.replace("%(rows)s", str(rows)))
        conn.commit()


def _counts(res: dict) -> dict:
    keys = ("read", "written", "deleted", "backed_up")
    return {name: {k: c[k] for k in keys} for name, c in res["collections"].items()}


def _dag(stack, pg, batch: int, rows: int) -> None:
    """Full, then 1%-changed incremental production_etl runs (each a fresh ``dag.test()`` subprocess)."""
    from ferry.report import table
    from ferry_dev.devstack import airflow_env

    folder = Path(tempfile.mkdtemp(prefix="ferry-bench-wide-mapping-"))
    (folder / "mapping.yaml").write_text(MAPPING)
    home = Path(tempfile.mkdtemp(prefix="ferry-bench-airflow-"))
    env = {**os.environ, **airflow_env(home / "airflow"), **stack.connection_env(pg_db="bench_wide_dag")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])
    env["FERRY_ALLOWED_DIRS"] = str(folder)
    env["FERRY_ALLOWED_BUCKETS"] = "ferry-bench-wide"
    stack.s3_client().create_bucket(Bucket="ferry-bench-wide")
    _seed(pg, "bench_wide_dag", rows)
    runs = {}
    for name, strategy, change in (
        ("full", "full", ""),
        ("no-change", "incremental", ""),
        ("1%-changed", "incremental", CHANGE.replace("%(rows)s", str(rows))),
    ):
        if change:
            with pg.connect("bench_wide_dag") as conn:
                conn.execute(change)
                conn.commit()
        cmd = [sys.executable, __file__, "--batch-size", str(batch), "--dag-child", str(folder / "mapping.yaml")]
        out = subprocess.run([*cmd, "bench_wide_dag", strategy], capture_output=True, text=True, env=env)
        lines = [x for x in out.stdout.splitlines() if x.startswith('{"seconds"')]
        if out.returncode or not lines:
            print(f"whole DAG ({name}): failed ({out.stderr.strip()[-1500:]})")
            return
        runs[name] = json.loads(lines[-1])
        if "success" not in runs[name]["state"]:
            print(f"whole DAG ({name}) ended {runs[name]['state']}: {runs[name]['states']}")
    full = runs["full"]["tasks"]
    rows_ = [
        {"task": n, **{f"{k} s": round(v["tasks"].get(n, 0), 1) for k, v in runs.items()}}
        for n in sorted(set().union(*(v["tasks"] for v in runs.values())), key=lambda n: -full.get(n, 0))
    ]
    rows_.append({"task": "DAG run (start to end)", **{f"{k} s": round(v["run"], 1) for k, v in runs.items()}})
    rows_.append({"task": "process (+ DB check, parse)", **{f"{k} s": round(v["seconds"], 1) for k, v in runs.items()}})
    print("whole DAG, seconds per task (dag.test):")
    print(table(rows_))
    f = runs["full"]["run"]
    for name, target in (("no-change", "5%"), ("1%-changed", "10%")):
        i = runs[name]["run"]
        print(
            f"whole DAG run: full {f:.1f}s, {name} incremental {i:.1f}s = {i / f:.1%} of the full run (target <= {target})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true", help="pyinstrument profile of the 1%%-changed load")
    ap.add_argument("--dag", action="store_true", help="also the whole DAG, full and 1%%-changed")
    ap.add_argument("--dag-child", nargs=3, metavar=("MAPPING", "TARGET", "STRATEGY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dag_child:
        mapping_path, target, strategy = args.dag_child
        params = {"mongo_db": target, "batch_size": args.batch_size, "push_to_s3": True, "bucket": "ferry-bench-wide"}
        dag_child({**params, "refresh_strategy": strategy, "mapping": mapping_path})
        return

    import logging

    from ferry.etl import load
    from ferry_dev.devstack import DevStack

    logging.basicConfig(level=logging.WARNING)
    with DevStack.start(Path(tempfile.mkdtemp(prefix="ferry-bench-wide-")), mongo_servers=1) as stack:
        pg, client = stack.pg, stack.mongo_client("prod")
        _seed(pg, "bench_wide", args.rows)
        print(f"source: trips {args.rows} rows (22 columns), stations 3322, vendors 16")
        with pg.connect("bench_wide") as conn:
            eff = _effective(conn)
            t = time.perf_counter()
            res = load.load(conn, client, "bench_wide", eff, load.Options(batch_size=args.batch_size))
            full_s = time.perf_counter() - t
            load.save_state(client["bench_wide__ferry"], res)  # as finish does
            docs_n = sum(c["documents"] for c in res["collections"].values())
            raw_s = raw_insert_seconds(conn, client, eff, args.batch_size, "bench_wide_raw")
        client.drop_database("bench_wide_raw")
        quiet_s, quiet, _ = incremental(pg, client, "bench_wide", "bench_wide", _effective, args.batch_size, None)
        change = CHANGE.replace("%(rows)s", str(args.rows))
        one_s, one, prof = incremental(
            pg, client, "bench_wide", "bench_wide", _effective, args.batch_size, change, args.profile
        )
        print(
            f"full load task: {full_s:.1f}s for {docs_n} documents; raw insert_many {raw_s:.1f}s = {raw_s / full_s:.0%}"
        )
        print(f"no-change incremental: {quiet_s:.1f}s = {quiet_s / full_s:.1%} of the full load task (target <= 5%)")
        print(
            f"1%-changed incremental (1% updated, 100 deleted, 100 inserted): {one_s:.1f}s = "
            f"{one_s / full_s:.1%} of the full load task (target <= 8%); {_counts(one)}"
        )
        if prof:
            print("profile of the 1%-changed incremental load task (pyinstrument):")
            print(prof)
        if args.dag:
            _dag(stack, pg, args.batch_size, args.rows)
        client.close()


if __name__ == "__main__":
    main()
