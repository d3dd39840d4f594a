"""Hostile trigger input through whole DAG runs (issue 28 item 4): refused, and nothing written anywhere.

``tests/test_hostile_params.py`` proves each request refuses each hostile value. Here every DAG with params runs
for real (``dag.test(run_conf=...)``), once, with a conf that would write (``dry_run=false``, ``mode=execute``
with its confirmation, ``repair=true``, ``copy_data=true``, ...) plus one hostile value of each kind its params
take: a path leaving the bundle, a MongoDB system database, a bucket nobody allowed (as a bucket or in an S3
URL). The run must fail at its first task with the request's error naming every hostile param (read from the
run's OpenLineage ``FAIL`` events, and in the failure alert), and a digest of everything the test stack holds must
be equal before and after: every database and collection (options, indexes, count, content hash) on both MongoDB
servers, every S3 bucket's keys and ETags, every file under this module's folder (the DuckDB file
``ferry_duckdb`` points at, local storage and its reports, backups) and the stack's DuckDB file, the table row
counts of the PostgreSQL database ``ferry_pg_prod`` points at (plus: no scratch database for the run), and the
entries of ``/etc``. A refused run writes no audit record either (there is none to exclude from the digest).

Values the DAG's param schema refuses (a 10,000-character string in bounded text, a collection that is not in
the enum, a connection id off its pattern) never start a run: Airflow validates the conf first and names the
param. Checked per DAG, with the digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ferry_dev import dagtest
from tests.conftest import unique

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

UP = "../" * 40  # far enough to leave any checkout (and the temp dir, which the test stack allows)
TEXT = "x" * 10_000
FOREIGN = "someone-elses-bucket"  # exists on the test S3 (seeded below), not in FERRY_ALLOWED_BUCKETS
PROMO_DB = unique("ferry_hostile_promo")  # a promotion source (and target) seeded on both servers
CLONE_DB = unique("ferry_hostile_clone")  # a production database a drift repair would copy


@dataclass(frozen=True)
class Case:
    dag_id: str
    conf: dict
    hostile: tuple[str, ...]  # the params the refusal must name


CASES = [
    Case("ferry_smoke", {"mongo_db": "admin", "bucket": FOREIGN}, ("mongo_db", "bucket")),
    Case(
        "production_etl",
        {
            "mapping": UP + "etc/passwd",
            "source": "s3",
            "bucket": FOREIGN,
            "mongo_db": "local",
            "backup_url": "http://example.com/backups",
        },
        ("mapping", "bucket", "mongo_db", "backup_url"),
    ),
    Case(
        "production_etl_rollback",
        {"mongo_db": "config", "version": "2026-01-01-001", "backup_url": f"s3://{FOREIGN}/rollback"},
        ("mongo_db", "backup_url"),
    ),
    Case("production_etl_scaffold", {"output_url": f"s3://{FOREIGN}/drafts"}, ("output_url",)),
    Case("production_etl_preview", {"mapping": UP + "etc/passwd"}, ("mapping",)),
    Case(
        "prod_promotion",
        {"mode": "execute", "confirm": "admin", "source_db": PROMO_DB, "target_db": "admin", "report_url": "/etc"},
        ("target_db", "report_url"),
    ),
    Case("prod_promotion_rollback", {"promotion_id": "p-1", "target_db": "local", "confirm": "local"}, ("target_db",)),
    Case(
        "dataset_promotion",
        {"dry_run": False, "copy_data": True, "target_bucket": FOREIGN, "target_db": "admin"},
        ("target_bucket", "target_db"),
    ),
    # the dev-clone DAGs declare plain Params (no request): their operators check the database names
    # (ferry.request.check_database) before any connection opens
    Case("dev_db_structure_clone", {"source_databases": ["local"], "dry_run": False}, ("source_databases",)),
    Case(
        "dev_db_drift_check",
        {"source_databases": [CLONE_DB], "target_suffix": "_dev$x", "repair": True},
        ("target_suffix",),
    ),
    Case(
        "nightly_sales_sync",
        {"source": "csv", "csv_path": UP + "etc/passwd", "rules_path": "include/" + UP + "etc/passwd"},
        ("csv_path", "rules_path"),
    ),
    Case("sales_manual_load", {"source": "csv", "csv_path": "/etc/passwd", "target_date": "2024-01-05"}, ("csv_path",)),
    Case("import_users", {"csv_path": UP + "etc/passwd", "update_existing": True}, ("csv_path",)),
    Case("sales_health_check", {"rules_path": "/etc/passwd"}, ("rules_path",)),
    Case("sales_backup", {"backup_dir": "/etc", "bucket": FOREIGN}, ("backup_dir", "bucket")),
    Case(
        "sales_backup_retention",
        {"backup_dir": UP + "etc", "bucket": FOREIGN, "retention_days": 1, "dry_run": False},
        ("backup_dir", "bucket"),
    ),
]

#: (test, DAG) known to fail: none since the dev-clone operators check their database names (issue 28)
KNOWN: dict[tuple[str, str], str] = {}


def _params(test: str) -> list:
    return [
        pytest.param(c, id=c.dag_id, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[test, c.dag_id])])
        if (test, c.dag_id) in KNOWN
        else pytest.param(c, id=c.dag_id)
        for c in CASES
    ]


#: (DAG, param, value) that the DAG's param schema refuses: a 10,000-character string in a bounded text param of
#: each DAG that has one, a collection outside the enum, a connection id off its pattern.
SCHEMA_REFUSED = [
    ("ferry_smoke", "run_key", TEXT),
    ("production_etl", "source_name", TEXT),
    ("production_etl_rollback", "version", TEXT),
    ("production_etl_scaffold", "pg_schema", TEXT),
    ("production_etl_scaffold", "pg_conn_id", "../../etc/passwd"),
    ("prod_promotion", "collections", ["a$b"]),
    ("dataset_promotion", "description", TEXT),
    ("nightly_sales_sync", "api_profile", TEXT),
    ("sales_manual_load", "target_date", TEXT),
    ("import_users", "csv_path", TEXT),
    ("sales_health_check", "end_date", TEXT),
    ("sales_backup", "prefix", TEXT),
    ("sales_backup_retention", "prefix", TEXT),
    ("dev_db_structure_clone", "target_suffix", TEXT),
    ("dev_db_drift_check", "source_databases", [TEXT]),
    ("prod_promotion", "confirm", TEXT),
    ("prod_promotion_rollback", "promotion_id", TEXT),
]
#: String params whose schema has no maxLength (a 10,000-character value reaches the task; docs/security.md says
#: text over 4,096 characters is refused). None left (issue 28).
UNBOUNDED: list[str] = []


# ----------------------------------------------------------------------------- the stack, seeded, and its digest


@dataclass
class Env:
    stack: object
    root: Path
    pg_db: str
    mongo: dict  # role -> client, one per distinct server
    s3: object


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    """Every Ferry connection pointed at this module's databases and folder, with something worth protecting in
    each store: the demo ETL schema in PostgreSQL, a promotion source and target on both MongoDB servers, a
    production database with every structure SecantusDB supports, a foreign bucket with an object, the sales
    DuckDB file."""
    from ferry.sales import store
    from ferry_dev import etl_demodata
    from tests.devclone.conftest import build_source
    from tests.promotion.conftest import seed

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("hostile")
    pg_db = unique("ferry_hostile")
    stack.pg.create_database(pg_db)
    for k, v in stack.connection_env(pg_db=pg_db, duckdb_path=root / "ferry.duckdb").items():
        mp.setenv(k, v)
    mp.setenv("FERRY_STORAGE_URL", str(root / "storage"))
    with stack.pg.connect(pg_db) as conn:
        etl_demodata.create_schema(conn)
        etl_demodata.seed(conn, accounts=5, campaigns_per=2, items_per=2, tags_per=1)
    prod, local = stack.mongo_client("prod"), stack.mongo_client("local")
    seed(local[PROMO_DB], prod[PROMO_DB])
    build_source(prod[CLONE_DB])
    s3 = stack.s3_client()
    s3.create_bucket(Bucket=FOREIGN)
    s3.put_object(Bucket=FOREIGN, Key="data/theirs.csv", Body=b"id,secret\n1,theirs\n")
    con = store.connect(str(root / "ferry.duckdb"))
    store.ensure_schema(con)
    con.close()
    servers = {"prod": prod} if stack.mongo_prod_uri == stack.mongo_local_uri else {"prod": prod, "local": local}
    try:
        yield Env(stack=stack, root=root, pg_db=pg_db, mongo=servers, s3=s3)
    finally:
        mp.undo()
        for c in (prod, local):
            for name in (PROMO_DB, CLONE_DB):
                c.drop_database(name)
            c.close()
        for obj in s3.list_objects_v2(Bucket=FOREIGN).get("Contents", []):
            s3.delete_object(Bucket=FOREIGN, Key=obj["Key"])
        s3.delete_bucket(Bucket=FOREIGN)
        stack.pg.drop_database(pg_db)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _mongo_digest(client) -> dict:
    """Every database and collection: its listCollections entry, indexes, count and a content hash (BSON bytes in
    natural order). The oplog (capped at 100,000 entries): its count and newest entry, which any write changes."""
    from bson import json_util
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = CodecOptions(document_class=RawBSONDocument)
    out: dict = {}
    for name in sorted(client.list_database_names()):
        db = client.get_database(name, codec_options=raw)
        colls = {}
        for info in client[name].list_collections():
            entry = {"info": json_util.dumps(info, sort_keys=True)}
            if info.get("type") != "view":
                coll = db[info["name"]]
                entry["indexes"] = json_util.dumps(list(client[name][info["name"]].list_indexes()), sort_keys=True)
                if (name, info["name"]) == ("local", "oplog.rs"):
                    newest = coll.find_one(sort=[("$natural", -1)])
                    entry["count"] = coll.estimated_document_count()
                    entry["newest"] = _sha(newest.raw) if newest else None
                else:
                    docs = [d.raw for d in coll.find()]
                    entry["count"], entry["sha"] = len(docs), _sha(b"".join(docs))
            colls[info["name"]] = entry
        out[name] = colls
    return out


def _s3_digest(s3) -> dict:
    out = {}
    for bucket in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
        keys = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        out[bucket] = keys
    return out


def _files_digest(*roots: Path) -> dict:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if p.is_file():
                out[str(p)] = _sha(p.read_bytes())
    return out


def _pg_digest(env: Env) -> dict:
    with env.stack.pg.connect(env.pg_db) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        return {f"{s}.{t}": conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in tables}


def digest(env: Env) -> dict:
    """What the test stack holds (see the module docstring)."""
    return {
        "mongo": {role: _mongo_digest(c) for role, c in env.mongo.items()},
        "s3": _s3_digest(env.s3),
        "files": _files_digest(env.root, Path(str(env.stack.duckdb_path))),
        "postgres": _pg_digest(env),
        "etc": sorted(os.listdir("/etc")),
    }


def differences(before: dict, after: dict, path: str = "") -> list[str]:
    """Where two digests differ, as paths (``mongo.prod.<db>.<collection>.count: 3 -> 4``, ``s3.<bucket>: added``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for k in sorted(set(before) | set(after)):
            if k not in after:
                out.append(f"{path}{k}: removed")
            elif k not in before:
                out.append(f"{path}{k}: added")
            else:
                out += differences(before[k], after[k], f"{path}{k}.")
        return out
    return [] if before == after else [f"{path.rstrip('.')}: {str(before)[:80]} -> {str(after)[:80]}"]


def _drop_added(env: Env, before: dict, after: dict) -> None:
    """Remove the databases and buckets a run created (a known gap writes), so later tests see a clean stack."""
    for role, client in env.mongo.items():
        for name in set(after["mongo"][role]) - set(before["mongo"][role]):
            client.drop_database(name)
    for bucket in set(after["s3"]) - set(before["s3"]):
        for key in after["s3"][bucket]:
            env.s3.delete_object(Bucket=bucket, Key=key)
        env.s3.delete_bucket(Bucket=bucket)


# ----------------------------------------------------------------------------- the runs


@dataclass
class Outcome:
    state: str
    states: dict[str, str | None]
    run_id: str
    errors: dict[str, str]  # failed task -> its error message
    alerts: list[str]  # the failure alerts Ferry logged (what on-call reads)
    changed: list[str]  # where the stack's digest differs after the run


def failures(dag_id: str, run_id: str) -> dict[str, str]:
    """Each failed task's error message, from the run's OpenLineage ``FAIL`` events (the file transport the test
    environment configures; ``tests/test_lineage.py`` reads the same file)."""
    path = Path(json.loads(os.environ["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"])
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        ev = json.loads(line)
        facets = ev.get("run", {}).get("facets", {})
        if ev.get("eventType") == "FAIL" and facets.get("airflow", {}).get("dagRun", {}).get("run_id") == run_id:
            out[ev["job"]["name"].removeprefix(f"{dag_id}.")] = facets.get("errorMessage", {}).get("message", "")
    return out


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    return {}


def run_hostile(case: Case, env: Env, outcomes: dict, caplog) -> Outcome:
    """The case's run, once per module (both tests below read it)."""
    if case.dag_id not in outcomes:
        before = digest(env)
        caplog.clear()
        dr = dagtest.run_dag(case.dag_id, case.conf, check=False)
        after = digest(env)
        _drop_added(env, before, after)
        outcomes[case.dag_id] = Outcome(
            state=str(dr.state),
            states=dagtest.task_states(dr),
            run_id=dr.run_id,
            errors=failures(case.dag_id, dr.run_id),
            alerts=[r.getMessage() for r in caplog.records if r.name == "ferry.alerts" and "FERRY ALERT" in r.msg],
            changed=differences(before, after),
        )
    return outcomes[case.dag_id]


def test_the_digest_sees_one_write_in_any_store(env):
    import duckdb

    before = digest(env)
    for client in env.mongo.values():
        client[PROMO_DB].written.insert_one({"_id": 1})
    env.s3.put_object(Bucket=FOREIGN, Key="written", Body=b"1")
    with env.stack.pg.connect(env.pg_db) as conn:
        conn.execute("CREATE TABLE written (id int)")
        conn.commit()
    with duckdb.connect(str(env.root / "ferry.duckdb")) as con:
        con.execute("CREATE TABLE written (id INTEGER)")
    try:
        changed = differences(before, digest(env))
    finally:
        for client in env.mongo.values():
            client[PROMO_DB].drop_collection("written")
        env.s3.delete_object(Bucket=FOREIGN, Key="written")
        with env.stack.pg.connect(env.pg_db) as conn:
            conn.execute("DROP TABLE written")
            conn.commit()
    assert {c.split(".", 1)[0] for c in changed} == {"mongo", "s3", "postgres", "files"}, changed
    assert f"files.{env.root / 'ferry.duckdb'}" in {c.split(": ")[0] for c in changed}, changed
    assert all(f"mongo.{role}.{PROMO_DB}.written: added" in changed for role in env.mongo), changed


def test_every_dag_with_params_is_covered():
    bag = dagtest.dagbag()
    with_params = {d for d, dag in bag.dags.items() if dag.params}
    assert sorted(c.dag_id for c in CASES) == sorted(with_params)
    assert len(CASES) <= 16  # one run per DAG: the suite's time budget


@pytest.mark.parametrize("case", _params("named"))
def test_a_hostile_run_is_refused_at_its_first_task_naming_the_params(case, env, outcomes, caplog):
    out = run_hostile(case, env, outcomes, caplog)
    dag = dagtest.get_dag(case.dag_id, fresh=False)
    first = sorted(t.task_id for t in dag.tasks if not t.upstream_task_ids)
    assert out.state == "failed" and all(out.states[t] == "failed" for t in first), out.states
    assert "success" not in out.states.values(), out.states
    failed = {t for t, s in out.states.items() if s == "failed"}
    assert set(out.errors) == failed, (out.errors, out.states)
    for task in failed:  # the first task, and any all_done task after it (an outcome step), refused the request
        assert out.errors[task].split(": param ", 1)[0].endswith("Request"), (task, out.errors[task])
        for name in case.hostile:
            assert f"param {name}:" in out.errors[task], (task, out.errors[task])
    for task in first:  # the failure alert names the task and (at least) the first param: it is cut at 400 chars
        alert = next(a for a in out.alerts if f"Ferry task failed: {case.dag_id}.{task} " in a)
        assert f"param {case.hostile[0]}:" in alert, alert


@pytest.mark.parametrize("case", _params("nothing"))
def test_a_hostile_run_writes_nothing(case, env, outcomes, caplog):
    from ferry.etl.runs import scratch_name

    out = run_hostile(case, env, outcomes, caplog)
    assert out.changed == [], out.changed
    with env.stack.pg.connect() as conn:  # where a source=s3 ETL run would restore its dump
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert scratch_name(out.run_id) not in names


@pytest.mark.parametrize("dag_id,name,value", SCHEMA_REFUSED, ids=[f"{d}.{n}" for d, n, _ in SCHEMA_REFUSED])
def test_a_value_the_param_schema_refuses_never_starts_a_run(dag_id, name, value, env):
    from airflow.sdk.exceptions import ParamValidationError

    before = digest(env)
    with pytest.raises(ParamValidationError, match=f"param {name}:"):
        dagtest.run_dag(dag_id, {name: value}, check=False)
    assert differences(before, digest(env)) == []


def test_string_params_without_a_max_length_are_only_the_known_ones():
    unbounded = []
    for dag_id, dag in sorted(dagtest.dagbag().dags.items()):
        for name in dag.params:
            schema = dag.params.get_param(name).schema
            for where, s in ((name, schema), (f"{name}[]", schema.get("items") or {})):
                types = s.get("type") if isinstance(s.get("type"), list) else [s.get("type")]
                if "string" in types and "maxLength" not in s and "enum" not in s:
                    unbounded.append(f"{dag_id}.{where}")
    assert sorted(unbounded) == UNBOUNDED
