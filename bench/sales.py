"""Sales load benchmark as an Airflow task runs it: every measurement is a fresh Python process (interpreter
start and imports included), one day of N rows (default 1M), medians of --repeat runs, loaders interleaved.

    PYTHONPATH=plugins:. .venv/bin/python bench/sales.py --rows 1000000 --repeat 3

Loaders (same CSV, same run):
  ferry         ``ferry.sales.runs.load_one_day`` as the ``load_day`` task calls it: DuckDB's reader with reject
                capture + line numbers, the SQL rules of include/sales/rules.yaml, the one-transaction partition
                swap, audit record, rejects report; GX as on most days (``gx=weekly``: not today)
  ferry_gx      the same on a Great Expectations day (``gx=always``: import + 50k-row sample)
  duckdb_ctas   ``CREATE TABLE AS SELECT * FROM read_csv(...)`` (no validation: the ceiling)
  dlt_merge     dlt[duckdb], pandas chunks of 100k rows, ``write_disposition="merge"`` on order_id
  dlt_append    the same with ``write_disposition="append"``

dlt runs in its own venv (``.ferry/bench-dlt``, created on first use with ``pip install "dlt[duckdb,parquet]" pandas``: dlt needs pyarrow for DataFrames).
Peak RSS is each child's ``ru_maxrss`` (``os.wait4``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = "2024-01-15"
REGIONS = ["North America", "Europe", "Asia", "South America", "Oceania"]
DLT_VENV = REPO / ".ferry" / "bench-dlt"


def generate(path: Path, rows: int, bad_every: int) -> None:
    import duckdb

    regions = "[" + ", ".join(f"'{r}'" for r in REGIONS) + "]"
    with duckdb.connect() as con:
        con.execute(f"""
        COPY (
            SELECT 'ORD-' || lpad(i::VARCHAR, 10, '0') AS order_id, DATE '{DAY}' AS date,
                   (i % 5000) + 1 AS user_id,
                   CASE WHEN i % 7 = 0 THEN 'Cable, USB-C' ELSE 'Product ' || (i % 97) END AS product_name,
                   (i % 5) + 1 AS quantity, round(((i % 1000) + 1) * 0.37, 2)::DECIMAL(18,2) AS unit_price,
                   CASE WHEN {bad_every} > 0 AND i % {bad_every} = 0 THEN 0.01::DECIMAL(18,2)
                        ELSE ((i % 5) + 1) * round(((i % 1000) + 1) * 0.37, 2)::DECIMAL(18,2) END AS total_amount,
                   {regions}[(i % 5) + 1] AS region
            FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')""")


FERRY = """
import json, sys
from ferry import audit
from ferry.sales import runs
from ferry.sales.request import SalesLoadRequest
req = SalesLoadRequest.of({{"source": "csv", "csv_path": {csv!r}, "max_reject_ratio": 0.01, "gx": {gx!r}}})
out = runs.load_one_day({day!r}, req, run=audit.Run("nightly_sales_sync", "bench"), duckdb_file={db!r},
                        api_conn_id="ferry_sales_api")
print(json.dumps(out))
"""
CTAS = """
import duckdb
with duckdb.connect({db!r}) as con:
    con.execute("CREATE TABLE sales_raw AS SELECT * FROM read_csv('{csv}', header=true)")
"""
DLT = """
import dlt, pandas as pd
@dlt.resource(name="sales", write_disposition={disposition!r}, primary_key="order_id")
def sales():
    for chunk in pd.read_csv({csv!r}, chunksize=100_000):
        yield chunk
p = dlt.pipeline(pipeline_name="bench_sales", destination=dlt.destinations.duckdb({db!r}),
                 dataset_name="bench", pipelines_dir={pipes!r})
p.run(sales())
"""


def ensure_dlt() -> Path:
    py = DLT_VENV / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import dlt, pandas, duckdb, pyarrow"]).returncode:
        print(f"creating {DLT_VENV} with dlt[duckdb] + pandas (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DLT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "dlt[duckdb,parquet]", "pandas"], check=True)
    return py


def run_measured(python: str, code: str, env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS MB, stdout) of ``python -c code`` in a fresh process (RSS from ``os.wait4``)."""
    import threading

    t = time.perf_counter()
    proc = subprocess.Popen([python, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs: dict[str, str] = {}

    def drain(name, stream):
        outs[name] = stream.read()

    threads = [threading.Thread(target=drain, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for th in threads:
        th.start()
    _, status, ru = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t
    for th in threads:
        th.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{outs.get('err', '')[-3000:]}")
    return secs, ru.ru_maxrss / 1024, outs.get("out", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bad-every", type=int, default=2000, help="every Nth row breaks a business rule (0: none)")
    ap.add_argument("--loaders", default="ferry,ferry_gx,duckdb_ctas,dlt_merge,dlt_append")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    loaders = args.loaders.split(",")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-bench-sales-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "sales.csv"
    t = time.perf_counter()
    generate(csv, args.rows, args.bad_every)
    print(f"generated {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")
    dlt_py = str(ensure_dlt()) if any(x.startswith("dlt") for x in loaders) else ""
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        "FERRY_ARTIFACTS_DIR": str(work / "artifacts"),
        "FERRY_STORAGE_URL": str(work / "storage"),
        "AIRFLOW_CONN_FERRY_DUCKDB": '{"conn_type": "duckdb", "host": "' + str(work / "ferry.duckdb") + '"}',
    }
    times: dict[str, list[float]] = {x: [] for x in loaders}
    rss: dict[str, list[float]] = {x: [] for x in loaders}
    result = ""
    for i in range(args.repeat):
        for name in loaders:
            db = work / f"{name}.duckdb"
            for p in (db, work / f"{name}.duckdb.wal"):
                p.unlink(missing_ok=True)
            shutil.rmtree(work / "pipes", ignore_errors=True)
            if name.startswith("ferry"):
                gx = "always" if name == "ferry_gx" else "weekly"
                code, py = FERRY.format(day=DAY, csv=str(csv), gx=gx, db=str(db)), sys.executable
            elif name == "duckdb_ctas":
                code, py = CTAS.format(db=str(db), csv=str(csv)), sys.executable
            else:
                disposition = "merge" if name == "dlt_merge" else "append"
                code = DLT.format(disposition=disposition, csv=str(csv), db=str(db), pipes=str(work / "pipes"))
                py = dlt_py
            secs, mb, out = run_measured(py, code, env)
            times[name].append(secs)
            rss[name].append(mb)
            if name == "ferry":
                result = out.strip().splitlines()[-1] if out.strip() else ""
            print(f"repeat {i + 1}: {name:<12} {secs:6.2f}s  peak RSS {mb:5.0f} MB", flush=True)
    rate = {x: args.rows / statistics.median(times[x]) for x in loaders}
    peak = {x: statistics.median(rss[x]) for x in loaders}
    print(f"\nferry result: {result}")
    print(f"\n| loader ({args.rows:,} rows, fresh process, median of {args.repeat}) | s | rows/s | peak RSS MB |")
    print("|---|---|---|---|")
    for x in loaders:
        print(f"| {x} | {statistics.median(times[x]):.2f} | {rate[x]:,.0f} | {peak[x]:.0f} |")
    if "duckdb_ctas" in rate:
        base = rate["duckdb_ctas"]
        for x in ("ferry", "ferry_gx"):
            if x in rate:
                print(f"{x} / duckdb CTAS: {rate[x] / base:.0%} (target >= 60%)")
        if "ferry" in rate:
            print(f"ferry peak RSS - duckdb CTAS: {peak['ferry'] - peak['duckdb_ctas']:+.0f} MB (target <= +200 MB)")
    if "dlt_merge" in rate and "ferry" in rate:
        print(f"ferry / dlt merge: {rate['ferry'] / rate['dlt_merge']:.1f}x (target >= 2x)")
    if "dlt_append" in rate and "ferry" in rate:
        print(f"ferry / dlt append: {rate['ferry'] / rate['dlt_append']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
