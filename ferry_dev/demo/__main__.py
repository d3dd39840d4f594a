"""Entry point of ``make demo`` (see ferry_dev.demo)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
import traceback

from ferry_dev.devstack import DEMO_BUCKET, DEMO_PG_DB, REPO_ROOT, DevStack, SetupError, airflow_env


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(SystemExit(143)))
    root = REPO_ROOT / ".ferry" / "demo"
    shutil.rmtree(root, ignore_errors=True)  # every demo starts from a clean slate
    log_file = root / "demo.log"
    root.mkdir(parents=True)
    print(f"ferry demo: starting local services (state and logs in {root})", flush=True)
    try:
        stack = DevStack.start(root / "stack")
    except SetupError as exc:
        print(f"ferry demo: {exc}", file=sys.stderr)
        return 2
    with stack:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        os.environ.setdefault("FERRY_SALES_START_DATE", "2024-01-01")  # the demo sales CSVs are January 2024
        os.environ.update(airflow_env(root / "airflow"))
        os.environ.update(stack.connection_env(pg_db=DEMO_PG_DB))
        stack.pg.create_database(DEMO_PG_DB, drop=True)
        for client in (stack.mongo_client("prod"), stack.mongo_client("local")):
            with client:
                for name in client.list_database_names():
                    if name not in ("admin", "local", "config"):
                        client.drop_database(name)

        from ferry import report
        from ferry_dev import demo

        ctx = demo.DemoContext(stack, root, DEMO_PG_DB, DEMO_BUCKET, stack.duckdb_path)
        rows, failed = [], []
        print(f"ferry demo: running DAGs (Airflow output in {log_file})", flush=True)
        for mod in demo.discover():
            name = mod.__name__.rsplit(".", 1)[-1]
            started = time.monotonic()
            try:
                with _redirect(log_file):
                    step_rows = mod.run(ctx)
                for r in step_rows:
                    rows.append({**r, "seconds": f"{time.monotonic() - started:.1f}"})
                print(f"  ok    {name} ({time.monotonic() - started:.1f}s)", flush=True)
            except Exception as exc:  # noqa: BLE001 - report every step, fail at the end
                failed.append(name)
                with open(log_file, "a") as fh:
                    traceback.print_exc(file=fh)
                print(f"  FAIL  {name}: {exc}", flush=True)
        print("\nFerry demo summary\n" + report.table(rows, ["dag", "result", "seconds"]))
        for note in ctx.notes:
            print(f"- {note}")
        if failed:
            print(f"\nferry demo: {len(failed)} step(s) failed: {', '.join(failed)} (see {log_file})", file=sys.stderr)
            return 1
    return 0


class _redirect:
    """Send this process's stdout/stderr (Airflow's task logs) to the demo log while a step runs."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush(), sys.stderr.flush()
        self.fh = open(self.path, "a")
        self.saved = os.dup(1), os.dup(2)
        os.dup2(self.fh.fileno(), 1)
        os.dup2(self.fh.fileno(), 2)

    def __exit__(self, *exc):
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0]), os.close(self.saved[1])
        self.fh.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nferry demo: interrupted; local services stopped.", file=sys.stderr)
        sys.exit(130)
