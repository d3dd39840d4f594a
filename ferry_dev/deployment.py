"""A real Airflow deployment on the dev stack: what the deployment tests run on, and ``make airflow``.

- Metadata DB: its own PostgreSQL database on the dev stack's server (``ferry_airflow_<id>``).
- ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``, one each.
- ``CeleryExecutor`` with Redis (``FERRY_REDIS_URL``, default ``redis://127.0.0.1:6379/11``; started
  with ``redis-server`` when none answers) as broker and the metadata DB as result backend; each
  deployment has its own queue, so two deployments can share one Redis.
- Celery workers (``a`` and ``b`` by default), each with its own working directory, ``HOME`` and
  ``TMPDIR``, and its name as Airflow hostname (``ferry-worker-a``): nothing may rely on one
  machine's disk. ``stop_worker`` / ``start_worker`` move work from one to the other.
- The simple auth manager with four users (``USERS``): ``admin``, ``viewer``, ``operator`` (may trigger) and
  ``approver`` (the only one of ``FERRY_APPROVERS``).
- The ``ferry_duckdb`` pool (one slot).

``Client`` is a small REST client: trigger runs as the trigger form does, wait for them, read task
states and XComs, and answer human-in-the-loop tasks.

``python -m ferry_dev.deployment`` starts the dev stack and the deployment, prints the UI URL and the
logins, and waits for Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry_dev.devstack import (
    LOOPBACK,
    REPO_ROOT,
    DevStack,
    SetupError,
    _Proc,
    _spawn,
    _wait,
    free_port,
)

log = logging.getLogger(__name__)

#: Simple auth manager users: name -> (role, password). ``operator`` may trigger (role ``user``) but is not an
#: approver; ``approver`` is the one ``FERRY_APPROVERS`` names; ``viewer`` may only look.
USERS = {
    "admin": ("admin", "ferry-admin"),
    "viewer": ("viewer", "ferry-viewer"),
    "operator": ("user", "ferry-operator"),
    "approver": ("user", "ferry-approver"),
}
APPROVERS = "approver"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
FINISHED = ("success", "failed")


def hostname() -> str:
    """``[core] hostname_callable``: a worker's name (``ferry-worker-a``), else the machine's FQDN."""
    return os.environ.get("FERRY_WORKER_NAME") or socket.getfqdn()


def _airflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]  # a copied venv's scripts keep an old shebang


def _redis_url() -> str:
    url = os.environ.get("FERRY_REDIS_URL", DEFAULT_REDIS)
    u = urllib.parse.urlparse(url)
    host, port = u.hostname or LOOPBACK, u.port or 6379
    if not _redis_ping(host, port):
        if not shutil.which("redis-server"):
            raise SetupError(
                f"no Redis answers at {host}:{port} and `redis-server` is not installed: "
                "`apt-get install redis-server`, or point FERRY_REDIS_URL at a Redis"
            )
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                host,
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        while not _redis_ping(host, port):
            if time.monotonic() > deadline:
                raise SetupError(f"redis-server started but does not answer at {host}:{port}")
            time.sleep(0.2)
    return url


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Deployment:
    root: Path
    stack: DevStack
    env: dict[str, str]
    port: int
    metadata_db: str
    queue: str
    procs: dict[str, _Proc] = field(default_factory=dict)
    _closed: bool = False

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # ---- lifecycle
    @classmethod
    def start(
        cls,
        stack: DevStack,
        root: Path,
        *,
        pg_db: str,
        workers: tuple[str, ...] = ("a", "b"),
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Deployment:
        """Migrate a fresh metadata DB, start the Airflow components and the workers; ready when the
        api-server answers and every DAG file is parsed."""
        assert stack.pg is not None
        root.mkdir(parents=True, exist_ok=True)
        home = root / "airflow"
        home.mkdir(exist_ok=True)
        ident = uuid.uuid4().hex[:8]
        metadata_db = f"ferry_airflow_{ident}"
        stack.pg.create_database(metadata_db, drop=True)
        port = port or free_port()
        pg_meta = stack.pg.uri(metadata_db).split("://", 1)[1]
        (home / "passwords.json").write_text(json.dumps({u: pw for u, (_r, pw) in USERS.items()}))
        from cryptography.fernet import Fernet

        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FERRY_", "AWS_"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "ferry_dev.deployment.hostname",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, (r, _pw) in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://{LOOPBACK}:{port}",
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg_meta}",
            "AIRFLOW__CELERY__BROKER_URL": _redis_url(),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg_meta}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"ferry-{ident}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),  # a shared log volume
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "ferry",
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(home / "openlineage.jsonl"), "append": True}
            ),
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "plugins"), str(REPO_ROOT)]),
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            # nightly_sales_sync catches up from here: today, so unpausing it queues no old days
            "FERRY_SALES_START_DATE": datetime.now(UTC).date().isoformat(),
            "FERRY_APPROVERS": APPROVERS,
            **stack.connection_env(pg_db=pg_db, duckdb_path=root / "sales.duckdb"),
            **(extra_env or {}),
        }
        if os.environ.get("FERRY_PG_BINDIR"):
            env["FERRY_PG_BINDIR"] = os.environ["FERRY_PG_BINDIR"]
        dep = cls(root=root, stack=stack, env=env, port=port, metadata_db=metadata_db, queue=f"ferry-{ident}")
        try:
            dep.cli("db", "migrate", timeout=600)
            dep.cli("pools", "set", "ferry_duckdb", "1", "One DuckDB writer at a time")
            for name, argv in [
                ("api-server", ["api-server", "--host", LOOPBACK, "--port", str(port)]),
                ("scheduler", ["scheduler"]),
                ("dag-processor", ["dag-processor"]),
                ("triggerer", ["triggerer"]),
            ]:
                dep._start(name, argv)
            for w in workers:
                dep.start_worker(w)
            _wait(dep.procs["api-server"], lambda: dep.client("admin").get("/api/v2/monitor/health"), "api-server", 120)
        except BaseException:
            dep.close()
            raise
        return dep

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        proc = _spawn(name, _airflow(*argv), self.root, env=env or self.env, cwd=cwd)
        self.procs[name] = proc

    def cli(self, *args: str, timeout: float = 180) -> str:
        out = subprocess.run(_airflow(*args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise SetupError(f"`airflow {' '.join(args)}` failed ({out.returncode}):\n{out.stderr[-3000:]}")
        return out.stdout

    def worker_env(self, name: str) -> tuple[dict[str, str], Path]:
        """A worker's environment: its own working directory, HOME and TMPDIR (its "machine's disk")."""
        base = self.root / f"worker-{name}"
        for sub in ("home", "tmp"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            "HOME": str(base / "home"),
            "TMPDIR": str(base / "tmp"),
            "FERRY_WORKER_NAME": f"ferry-worker-{name}",
        }
        return env, base

    def start_worker(self, name: str) -> None:
        if f"worker-{name}" in self.procs:
            return
        env, base = self.worker_env(name)
        self._start(
            f"worker-{name}",
            ["celery", "worker", "--concurrency", env["AIRFLOW__CELERY__WORKER_CONCURRENCY"], "--queues", self.queue,
             "--celery-hostname", f"ferry-worker-{name}@%h", "--skip-serve-logs", "--without-gossip"],
            env=env,
            cwd=base,
        )  # fmt: skip

    def stop_worker(self, name: str) -> None:
        proc = self.procs.pop(f"worker-{name}", None)
        if proc is not None:
            proc.stop(timeout=60)  # warm shutdown: running tasks finish first

    def client(self, user: str = "admin") -> Client:
        return Client(self.url, user, USERS[user][1])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(list(self.procs.values())):
            proc.stop(timeout=30)
        if self.stack.pg is not None and not os.environ.get("FERRY_KEEP_METADATA_DB"):
            try:
                self.stack.pg.drop_database(self.metadata_db)
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own failure
                log.warning("could not drop %s: %s", self.metadata_db, exc)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def logs(self, name: str, n: int = 40) -> str:
        return self.procs[name].tail(n) if name in self.procs else ""


class ApiError(AssertionError):
    pass


@dataclass
class Client:
    """Airflow's public REST API (``/api/v2``) as a user of the simple auth manager."""

    base: str
    user: str
    password: str
    _token: str | None = None

    def token(self) -> str:
        if self._token is None:
            body = json.dumps({"username": self.user, "password": self.password}).encode()
            req = urllib.request.Request(
                self.base + "/auth/token", body, {"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}
        req = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    # ---- DAGs and runs
    def wait_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Until the dag-processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None, *, logical_date: str | None = None) -> str:
        """What the trigger form sends: the conf (the params' values) and no logical date."""
        body = {"logical_date": logical_date, "conf": conf or {}}
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in FINISHED:
                return state
            if time.monotonic() > deadline:
                raise ApiError(
                    f"{dag_id} {run_id} still {state} after {timeout:.0f}s: {self.task_states(dag_id, run_id)}"
                )
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        rid = urllib.parse.quote(run_id, safe="")
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances?limit=1000")["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {
            ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        rid = urllib.parse.quote(run_id, safe="")
        path = f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(f"{path}?map_index={map_index}&deserialize=true&stringify=false")["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, map_index: int | None = None) -> str:
        """A task's last try's log as text (``map_index``: which mapped instance; default the first)."""
        rid = urllib.parse.quote(run_id, safe="")
        tis = [t for t in self.task_instances(dag_id, run_id) if t["task_id"] == task_id]
        ti = next(t for t in tis if map_index is None or t["map_index"] == map_index)
        path = f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/logs/{max(1, ti['try_number'])}"
        body = self.get(f"{path}?full_content=true&map_index={ti['map_index']}")
        lines = body.get("content") or []
        return "\n".join(
            " ".join(str(x.get(k, "")) for k in ("event", "error_detail") if x.get(k))
            if isinstance(x, dict)
            else str(x)
            for x in lines
        )

    def failure_logs(self, dag_id: str, run_id: str, lines: int = 15) -> dict[str, str]:
        """The last log lines of each failed task of a run (for assertion messages)."""
        return {
            task: "\n".join(self.task_log(dag_id, run_id, task.split("[")[0]).splitlines()[-lines:])
            for task, state in self.task_states(dag_id, run_id).items()
            if state in ("failed", "upstream_failed") and state != "upstream_failed"
        }

    # ---- human in the loop
    def _hitl_path(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
        rid = urllib.parse.quote(run_id, safe="")
        return f"/api/v2/dags/{dag_id}/dagRuns/{rid}/taskInstances/{task_id}/{map_index}/hitlDetails"

    def wait_hitl(self, dag_id: str, run_id: str, task_id: str, timeout: float = 300, map_index: int = -1) -> dict:
        """Until the task waits for a human: its human-in-the-loop detail (subject, body, options, params)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.task_states(dag_id, run_id)
            if states.get(task_id) in ("awaiting_input", "deferred"):
                try:
                    return self.get(self._hitl_path(dag_id, run_id, task_id, map_index))
                except ApiError:
                    pass
            if self.run(dag_id, run_id)["state"] in FINISHED:
                raise ApiError(f"{dag_id} {run_id} finished without asking a human: {states}")
            if time.monotonic() > deadline:
                raise ApiError(f"{task_id} never waited for a human in {timeout:.0f}s: {states}")
            time.sleep(2)

    def respond(self, dag_id: str, run_id: str, task_id: str, options: list[str], params: dict | None = None,
                map_index: int = -1) -> dict:  # fmt: skip
        body = {"chosen_options": options, "params_input": params or {}}
        return self.request("PATCH", self._hitl_path(dag_id, run_id, task_id, map_index), body)


def main() -> int:
    """``make airflow``: the dev stack plus a deployment, until Ctrl-C."""
    from ferry_dev.devstack import DEMO_PG_DB, _install_signal_handlers

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _install_signal_handlers()
    root = REPO_ROOT / ".ferry" / "airflow-deployment"
    shutil.rmtree(root, ignore_errors=True)
    print(f"ferry airflow: starting services and Airflow (logs in {root})", flush=True)
    try:
        stack = DevStack.start(root / "stack")
    except SetupError as exc:
        print(f"ferry airflow: {exc}", file=sys.stderr)
        return 2
    with stack:
        stack.pg.create_database(DEMO_PG_DB)  # type: ignore[union-attr]
        port = int(os.environ.get("FERRY_AIRFLOW_PORT", "0")) or None
        try:
            dep = Deployment.start(stack, root, pg_db=DEMO_PG_DB, port=port)
        except SetupError as exc:
            print(f"ferry airflow: {exc}", file=sys.stderr)
            return 2
        with dep:
            print(f"\nAirflow UI: {dep.url}", flush=True)
            for user, (role, pw) in USERS.items():
                print(f"  login: {user} / {pw} ({role})")
            print(f"  metadata DB: {dep.metadata_db} on {stack.pg.uri()}")  # type: ignore[union-attr]
            print(f"  executor: CeleryExecutor, workers {', '.join(n for n in dep.procs if n.startswith('worker'))}")
            print("Ctrl-C stops everything.", flush=True)
            try:
                while all(p.popen.poll() is None for p in dep.procs.values()):
                    time.sleep(2)
                dead = [n for n, p in dep.procs.items() if p.popen.poll() is not None]
                print(f"ferry airflow: {', '.join(dead)} exited; last lines:\n{dep.logs(dead[0])}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
