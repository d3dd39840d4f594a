"""One consistent source snapshot for every task of an ETL run (``pg_export_snapshot()``).

``production_etl`` loads each collection in its own task (dynamic task mapping), possibly on different
Celery workers. They must all read the source as of one moment, or a parent and its children could be
read before and after a write. A *holder* process opens a REPEATABLE READ transaction, exports its
snapshot and keeps the transaction open; each load task (and ``validate``) imports it with ``SET
TRANSACTION SNAPSHOT`` (``use``). The holder is detached from the task that starts it (its own session),
marks itself with ``application_name`` so it can be found (``pg_stat_activity``), and ends when ``stop``
terminates its backend (the run's ``release`` teardown, or the next run's recovery), when its deadline
passes, or when its process dies (the server then ends the transaction: ``idle_in_transaction_session_timeout``
covers a frozen one).

    python -m ferry.etl.snapshot APPLICATION_NAME MAX_SECONDS   # conninfo on stdin, password in PGPASSWORD
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

from psycopg import sql

from ferry import settings
from ferry.errors import FerryError

#: how often the holder shows it is alive; the server ends its transaction after IDLE of silence
BEAT, IDLE = 5, "60s"


class SnapshotGone(FerryError):
    """The run's exported snapshot can no longer be imported (its holder ended)."""


def application_name(run_id: str) -> str:
    """The holder's ``application_name`` for ``run_id`` (short and stable: PostgreSQL keeps 63 bytes)."""
    return "ferry-etl-snapshot " + hashlib.sha1(run_id.encode()).hexdigest()[:16]


def start(conninfo: str, password: str | None, run_id: str, admin, *, max_seconds: int = 8 * 3600) -> dict:
    """Start the holder of ``run_id`` (after ending one an earlier attempt left) on the database ``conninfo``
    names; return ``{"snapshot", "backend_pid", "application_name"}`` once the snapshot is exported.
    ``admin`` is any connection to the same server (used to end an earlier holder)."""
    app = application_name(run_id)
    stop(admin, run_id)
    env = settings.child_env(**({"PGPASSWORD": password} if password else {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferry.etl.snapshot", app, str(max_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # not ended with the task's process group
    )
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write(conninfo)
    proc.stdin.close()
    line = proc.stdout.readline()
    proc.stdout.close()
    if not line:
        err = proc.stderr.read().strip().splitlines()
        proc.wait()
        raise FerryError(f"the source snapshot holder did not start: {err[-1] if err else f'exit {proc.returncode}'}")
    proc.stderr.close()
    return {**json.loads(line), "application_name": app}


def stop(admin, run_id: str) -> int:
    """End the holder of ``run_id`` (``pg_terminate_backend``); returns how many backends were ended."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name = %s AND pid <> pg_backend_pid()",
        (application_name(run_id),),
    ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def use(conn, snapshot_id: str | None) -> None:
    """Start ``conn``'s transaction as REPEATABLE READ on the exported snapshot ``snapshot_id`` (none: a
    snapshot of its own). Raises ``SnapshotGone`` when the holder has ended."""
    import psycopg

    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    if not snapshot_id:
        return
    try:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id)))
    except psycopg.Error as exc:
        raise SnapshotGone(
            f"the run's source snapshot {snapshot_id} is gone ({exc.diag.message_primary or exc}): its holder "
            "ended (released, past its deadline, or its worker died). Clear the run's backup task and its "
            "downstream tasks to take a new snapshot and load every collection again."
        ) from exc


def _hold(app: str, max_seconds: float) -> None:
    import psycopg

    conninfo = sys.stdin.read()
    conn = psycopg.connect(conninfo, application_name=app, connect_timeout=30)
    try:
        conn.execute(sql.SQL("SET idle_in_transaction_session_timeout = {}").format(sql.Literal(IDLE)))
        conn.commit()
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute("SELECT pg_export_snapshot(), pg_backend_pid()").fetchone()
        assert row is not None
        snap, pid = row
        print(json.dumps({"snapshot": snap, "backend_pid": pid}), flush=True)
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):  # nobody reads these any more
            os.dup2(devnull, fd)
        deadline = time.monotonic() + max_seconds
        try:
            while time.monotonic() < deadline:
                time.sleep(BEAT)
                conn.execute("SELECT 1")
        except psycopg.Error:
            pass  # terminated by stop(): the snapshot is released
    finally:
        try:
            conn.close()
        except psycopg.Error:
            pass


if __name__ == "__main__":
    _hold(sys.argv[1], float(sys.argv[2]))
