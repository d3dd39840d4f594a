"""Per DAG file: import time over ``airflow.sdk`` alone, median of 5 fresh interpreters (target < 200 ms).

Run: ``make bench`` or ``PYTHONPATH=plugins:. .venv/bin/python bench/parse_time.py [--runs 5]``.
Prints one line per file: median parse ms, the baseline (``import airflow.sdk`` alone) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 200

PROBE = """
import sys, time
t0 = time.perf_counter(); import airflow.sdk; t1 = time.perf_counter()
if len(sys.argv) > 2:  # what a dag-processor has loaded anyway: it serializes every DAG it parses
    import airflow.serialization.encoders, airflow.timetables.interval; t1 = time.perf_counter()
if len(sys.argv) > 1:
    import runpy; runpy.run_path(sys.argv[1])
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1000:.1f} {(t2 - t1) * 1000:.1f}")
"""


def measure(path: Path | None, runs: int, processor: bool = False) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    base, extra = [], []
    for _ in range(runs):
        argv = [sys.executable, "-c", PROBE] + ([str(path)] if path else []) + (["processor"] if processor else [])
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout.split()
        base.append(float(out[-2]))
        extra.append(float(out[-1]))
    return statistics.median(base), statistics.median(extra)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sdk_ms, _ = measure(None, args.runs)
    print(f"baseline import airflow.sdk: {sdk_ms:.0f} ms (median of {args.runs})")
    worst = 0.0
    for path in sorted((ROOT / "dags").glob("*.py")):
        _, ms = measure(path, args.runs)
        _, in_processor = measure(path, args.runs, processor=True)
        worst = max(worst, ms)
        verdict = "ok" if ms < TARGET_MS else "OVER TARGET"
        print(
            f"{path.name}: {ms:.0f} ms over airflow.sdk (ratio to sdk import {ms / sdk_ms:.2f}; target < {TARGET_MS} ms) "
            f"{verdict}; {in_processor:.0f} ms over what a dag-processor has loaded (airflow serialization)"
        )
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
