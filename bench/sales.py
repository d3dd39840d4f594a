"""Sales load benchmark: Ferry's load vs DuckDB's own CSV import vs a pandas-chunks + executemany baseline.

    PYTHONPATH=plugins:. .venv/bin/python bench/sales.py --rows 2000000 --repeat 3

Ferry's load = DuckDB's CSV reader with reject capture + line numbers + SQL business rules + the Great
Expectations gate + the one-transaction partition swap (each repeat replaces the same day, so the delete
of the previous load is included). Baselines are measured in the same run on the same file; medians and
ratios are printed (shared, noisy machines).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

DAY = date(2024, 1, 15)
REGIONS = ["North America", "Europe", "Asia", "South America", "Oceania"]


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


def ferry_load(csv: Path, db: Path) -> tuple[float, dict]:
    from ferry.sales import connect, ensure_schema, load

    t = time.perf_counter()
    con = connect(str(db))
    ensure_schema(con)
    stage = load.Stage(con)
    stage.add_csv(csv)
    res = load.replace_partition(con, stage, DAY, run_id="bench", source="csv", max_reject_ratio=0.01)
    con.close()
    return time.perf_counter() - t, res.as_dict()


def duckdb_ctas(csv: Path, db: Path) -> float:
    import duckdb

    t = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE OR REPLACE TABLE sales_raw AS SELECT * FROM read_csv('{csv}', header=true)")
    return time.perf_counter() - t


def pandas_executemany(csv: Path, db: Path, rows: int) -> float:
    """The original script's pattern: pandas chunks, then one INSERT per row (executemany)."""
    import duckdb
    import pandas as pd

    t = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute("""CREATE OR REPLACE TABLE sales_em (order_id VARCHAR PRIMARY KEY, sale_date DATE, user_id BIGINT,
            product_name VARCHAR, quantity BIGINT, unit_price DECIMAL(18,2), total_amount DECIMAL(18,2), region VARCHAR)""")
        for chunk in pd.read_csv(csv, chunksize=1000, nrows=rows):
            con.executemany(
                "INSERT INTO sales_em VALUES (?, ?, ?, ?, ?, ?, ?, ?)", chunk.itertuples(index=False, name=None)
            )
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--slice", type=int, default=20_000, help="rows for the executemany baseline")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--em-repeat", type=int, default=1, help="repeats of the (slow) executemany baseline")
    ap.add_argument("--bad-every", type=int, default=2000, help="every Nth row breaks a business rule (0: none)")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-bench-sales-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "sales.csv"
    t = time.perf_counter()
    generate(csv, args.rows, args.bad_every)
    print(f"generated {args.rows} rows ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")

    import ferry.validation  # noqa: F401 - import outside the timings
    from ferry.validation import _context

    _context()  # GX import (~5 s) is a one-off per worker process, not per load
    logging.getLogger("ferry.validation").setLevel(logging.WARNING)
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    ferry_t, first_t, duck_t, em_t = [], [], [], []
    result = {}
    for i in range(args.repeat):
        duck_t.append(duckdb_ctas(csv, work / "duck.duckdb"))
        fresh = work / f"first{i}.duckdb"
        first_t.append(ferry_load(csv, fresh)[0])  # first load of the day into an empty database
        fresh.unlink()
        s, result = ferry_load(csv, work / "ferry.duckdb")  # replaces the previous repeat's partition
        ferry_t.append(s)
        if i < args.em_repeat:
            em_t.append(pandas_executemany(csv, work / f"em{i}.duckdb", args.slice))
        print(
            f"repeat {i + 1}: ferry replace {s:.2f}s, ferry first load {first_t[-1]:.2f}s, duckdb CTAS {duck_t[-1]:.2f}s"
            + (f", executemany({args.slice}) {em_t[-1]:.2f}s" if i < args.em_repeat else ""),
            flush=True,
        )
    ferry_rate = args.rows / statistics.median(ferry_t)
    first_rate = args.rows / statistics.median(first_t)
    duck_rate = args.rows / statistics.median(duck_t)
    em_rate = args.slice / statistics.median(em_t)
    print(
        f"ferry load (reader rejects + rules + GX + partition swap): {ferry_rate:,.0f} rows/s "
        f"(loaded {result['rows']}, quarantined {result['reject_records']})"
    )
    print(f"duckdb CREATE TABLE AS SELECT * FROM read_csv: {duck_rate:,.0f} rows/s")
    print(f"pandas chunks + executemany ({args.slice} rows): {em_rate:,.0f} rows/s")
    print(f"ferry first load of the day (empty database): {first_rate:,.0f} rows/s")
    print(
        f"ferry / duckdb: {ferry_rate / duck_rate:.0%} replace, {first_rate / duck_rate:.0%} first load (target >= 60%)"
    )
    print(f"ferry / executemany: {ferry_rate / em_rate:,.0f}x (target >= 300x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
