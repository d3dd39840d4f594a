"""Fault injection for Ferry's write paths (dev tooling behind ``tests/faults`` and ``make test-faults``).

A trial runs one operation in a child process (forked from a fork server that imported everything first;
``python -m ferry_dev.faults child <op> <spec-json>`` runs one by hand), injects
one fault at a random moment, then reruns the operation to completion as a user would, and the test
compares the outcome with a clean run. Fault kinds:

- ``kill``: SIGKILL of the process running the operation;
- ``restart``: SIGKILL of the MongoDB server, started again on the same storage path and port
  (``DevStack.restart_mongo``) while the operation runs; for the sales load, whose target is a DuckDB file,
  ``restart`` kills the process writing the file after its swap has begun (the second half of the run),
  and another process opens the file (replaying its WAL) before the rerun.

The delay before the fault is drawn (seeded: ``FERRY_FAULT_SEED``) uniformly from ``[0, duration]``,
where ``duration`` is the clean run's measured duration, counted from the child's READY point (after
imports and connections, so the faults land in the operation, not in Python's start-up).

Content hashes leave out only run-specific fields; each one is listed in ``EXCLUDED_FIELDS`` with its reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
READY = "FERRY-FAULT-READY"
DONE = "FERRY-FAULT-DONE"
KINDS = ("kill", "restart")

#: Fields a clean run and a faulted-then-rerun run legitimately differ in, per family, with the reason.
#: Nothing else is left out of the content hashes.
EXCLUDED_FIELDS: dict[str, dict[str, str]] = {
    "etl": {
        # ETL documents carry no run-specific field: the whole target documents are hashed.
    },
    "etl_bookkeeping": {
        "_ferry_*": "bookkeeping collections (schema snapshots, runs, quarantine) record each run: their "
        "run ids and timestamps differ by construction; the target collections are compared whole",
    },
    "promotion": {
        "_ferry_promotions": "audit records: one per promotion run, keyed by the run's promotion id",
        "_ferry_promotion_backups": "intent records and pre-images, keyed by the promotion id of the run",
        "_ferry_locks": "the lease lock document (empty after a run; a killed holder's lease can remain)",
    },
    "sales": {
        "sales.run_id": "the Airflow run that loaded the row: the rerun is another run",
        "sales.loaded_at": "now() at load time",
        "sales_loads.run_id": "as above, for the day's load record",
        "sales_loads.loaded_at": "as above",
        "sales_rejects.run_id": "as above, for quarantined rows",
        "sales_rejects.rejected_at": "now() at load time",
    },
    "devclone": {
        # structure (collections, options, validators, indexes) is compared whole, in server order
    },
}


def fault_seed() -> int:
    """``FERRY_FAULT_SEED`` if set (replay), else a new random seed."""
    raw = os.environ.get("FERRY_FAULT_SEED")
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


def trials_per_kind(default: int = 2) -> int:
    return int(os.environ.get("FERRY_FAULT_N") or default)


# --------------------------------------------------------------------------- child process


def _ready() -> None:
    print(READY, flush=True)


def _mongo(uri: str):
    import pymongo

    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000)


def op_etl(spec: dict) -> dict:
    """detect -> plan -> load (staging for full) -> checks -> publish, the domain steps of production_etl."""
    import psycopg

    from ferry.etl import checks, load, pipeline, schema
    from ferry.etl.names import meta_db

    conn = psycopg.connect(spec["pg_uri"])
    client = _mongo(spec["mongo_uri"])
    db = spec["db"]
    client[db].list_collection_names()
    _ready()
    run_id = spec.get("run_id", "fault")
    meta = client[meta_db(db)]
    snap = schema.snapshot(conn)
    conn.commit()
    base = schema.last_accepted(meta, spec.get("source", "demo"))
    changes = schema.diff(base["snapshot"], snap) if base else []
    doc = schema.store(meta, spec.get("source", "demo"), snap, changes, base["version"] if base else None, run_id)
    detected = {"snapshot_id": doc["_id"], "version": doc["version"], "base_version": doc["base_version"]}
    detected.update(changes=changes, summary=schema.summary(changes))
    planned = pipeline.plan(meta, str(REPO / spec["mapping"]), detected, "auto_safe")
    eff = planned["effective_mapping"]
    opts = load.Options(
        strategy=spec["strategy"], batch_size=spec["batch_size"], publish_now=False, meta_db=meta, run_id=run_id
    )
    res = load.load(conn, client, db, eff, opts)
    conn.commit()
    quarantined = {k: v["quarantined"] for k, v in res["collections"].items()}
    checks.run(conn, client, res["staging"] or db, eff, quarantined=quarantined, sample=20)
    conn.commit()
    if res["staging"]:
        load.publish(client, res["staging"], db, list(res["collections"]))
    conn.close()
    if spec.get("also"):
        _publish_parallel(client, db, spec["also"], sorted(res["collections"]))
    return {"collections": {k: v["documents"] for k, v in res["collections"].items()}}


def _publish_parallel(client, db: str, also: list[str], names: list[str]) -> None:
    """production_etl's ``publish_parallel`` without Airflow (no lock or backup: one writer here)."""
    from contextlib import nullcontext

    from ferry.etl import parallel

    rows = parallel.publish_all(client, db, also, names, parallel.Steps(lambda _db: nullcontext(), lambda _db: ""))
    failed = [r for r in rows if r["result"].startswith("FAILED")]
    if failed:
        raise RuntimeError(f"also_publish_to failed: {failed}")


def _promotion_cfg(spec: dict):
    import dataclasses

    from ferry.promotion import config

    return dataclasses.replace(config.load(), batch_size=spec.get("batch_size", 10))


def op_promote(spec: dict) -> dict:
    from ferry.promotion import execute as ex
    from ferry.promotion.sink import ReportSink

    cfg = _promotion_cfg(spec)
    local, prod = _mongo(spec["local_uri"])[spec["db"]], _mongo(spec["prod_uri"])[spec["db"]]
    prod.list_collection_names()
    _ready()
    cols = list(cfg.collections)
    res = ex.execute(
        cfg,
        local,
        prod,
        ex.Selection(cols, {c: {} for c in cols}, spec["on_conflict"]),
        ex.Attempt(spec["promotion_id"], ReportSink(Path(spec["reports"])), params={}, triggered_by="faults"),
    )
    return {"outcome": res["outcome"]}


def op_rollback(spec: dict) -> dict:
    from ferry.promotion import rollback as rb

    cfg = _promotion_cfg(spec)
    prod = _mongo(spec["prod_uri"])[spec["db"]]
    prod.list_collection_names()
    _ready()
    return {"rows": rb.rollback(cfg, prod, spec["promotion_id"])}


def op_sales(spec: dict) -> dict:
    import datetime as dt

    import duckdb

    from ferry.sales import load
    from ferry.sales.store import ensure_schema

    con = duckdb.connect(spec["duckdb"])
    ensure_schema(con)
    _ready()
    stage = load.Stage(con)
    for path in spec["csv"]:
        stage.add_csv(path)
    res = load.replace_partition(
        con,
        stage,
        dt.date.fromisoformat(spec["day"]),
        run_id=spec["run_id"],
        source="csv",
        max_reject_ratio=spec.get("max_reject_ratio", 0.05),
        gx=spec.get("gx", True),
    )
    con.close()
    return res.as_dict()


def op_clone(spec: dict) -> dict:
    from ferry.devclone import clone

    client = _mongo(spec["mongo_uri"])
    src, tgt = client[spec["db"]], client[spec["db"] + "_dev"]
    src.list_collection_names()
    _ready()
    res = clone.clone_database(
        src, tgt, clone.CloneOptions(dry_run=False, include_search_indexes=False), emptiness_checked=True
    )
    if res.failures:
        raise RuntimeError(f"clone failures: {res.failures}")
    return res.summary()


OPS = {"etl": op_etl, "promote": op_promote, "rollback": op_rollback, "sales": op_sales, "clone": op_clone}


def run_op(op: str, spec: dict) -> Any:
    """Run an operation in this process (set-ups and the user's reruns); no READY signal."""
    global _ready
    saved, _ready = _ready, lambda: None  # type: ignore[assignment]
    try:
        return OPS[op](spec)
    finally:
        _ready = saved  # type: ignore[assignment]


def child_main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    op, spec = argv[0], json.loads(argv[1])
    out = OPS[op](spec)
    print(DONE + " " + json.dumps(out, default=str), flush=True)
    return 0


# --------------------------------------------------------------------------- the parent side


@dataclass
class Trial:
    scenario: str
    kind: str
    index: int
    seed: int
    delay: float = 0.0
    child_rc: int | None = None
    fault_landed: bool = True  # False when the operation finished before the fault
    notes: list[str] = field(default_factory=list)

    def replay(self) -> str:
        return (
            f"{self.scenario}/{self.kind}#{self.index} (replay: FERRY_FAULT_SEED={self.seed} "
            f"pytest tests/faults -k '{self.scenario} and {self.kind}')"
        )


#: Imported once by the fork server, before any child is forked: a child starts in milliseconds, so the
#: measured duration and the fault points are those of the operation, not of Python's imports.
PRELOAD = [
    "ferry_dev.faults",
    "pymongo",
    "psycopg",
    "duckdb",
    "pandas",
    "great_expectations",
    "ferry.validation",
    "ferry.etl.checks",
    "ferry.etl.load",
    "ferry.etl.pipeline",
    "ferry.promotion.execute",
    "ferry.promotion.rollback",
    "ferry.sales.load",
    "ferry.devclone.clone",
]
_CTX: Any = None


def _context():
    global _CTX
    if _CTX is None:
        import multiprocessing as mp

        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


def _child_entry(op: str, spec: dict, ready, log_path: str) -> None:  # pragma: no cover - in the child
    import logging

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
    global _ready
    _ready = ready.set  # type: ignore[assignment]
    OPS[op](spec)
    print(DONE, flush=True)


class Child:
    """One operation running in a process forked from the preloaded fork server."""

    def __init__(self, op: str, spec: dict, log_path: Path):
        ctx = _context()
        self.ready = ctx.Event()
        self.proc = ctx.Process(target=_child_entry, args=(op, spec, self.ready, str(log_path)), daemon=True)
        self.proc.start()

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.05):
            if not self.proc.is_alive():
                raise RuntimeError(f"child exited (rc {self.proc.exitcode}) before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError("child not ready in time")

    def wait(self, timeout: float) -> bool:
        """True if the child ended within ``timeout`` seconds."""
        self.proc.join(timeout)
        return not self.proc.is_alive()

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)  # type: ignore[arg-type]
            self.proc.join(10)

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode


def measure(op: str, spec: dict, log_path: Path) -> float:
    """Seconds a clean run of ``op`` takes in a child, from its READY point to its exit."""
    child = Child(op, spec, log_path)
    child.wait_ready()
    t0 = time.monotonic()
    if not child.wait(600) or child.returncode:
        child.kill()
        raise RuntimeError(f"clean run of {op} failed (rc {child.returncode}); see {log_path}")
    return time.monotonic() - t0


def inject(
    trial: Trial,
    op: str,
    spec: dict,
    duration: float,
    log_path: Path,
    *,
    restart=None,
    late: bool = False,
) -> Trial:
    """Run ``op`` in a child and inject ``trial.kind`` after a seeded random delay in ``[0, duration]``
    (``late``: in ``[duration / 2, duration]``). ``restart``: callable restarting the server (kind restart)."""
    rnd = random.Random(f"{trial.seed}:{trial.scenario}:{trial.kind}:{trial.index}")
    lo = duration / 2 if late else 0.0
    trial.delay = round(rnd.uniform(lo, duration), 3)
    child = Child(op, spec, log_path)
    try:
        child.wait_ready()
        if child.wait(trial.delay):
            trial.fault_landed = False
            trial.notes.append("finished before the fault")
        elif trial.kind == "kill" or restart is None:
            child.kill()
        else:
            took = restart()
            trial.notes.append(f"server down/up {took:.1f}s")
        if not child.wait(120):
            trial.notes.append("child hung after the fault: killed")
    finally:
        child.kill()
    trial.child_rc = child.returncode
    return trial


# --------------------------------------------------------------------------- comparisons


def _strip(doc: dict, excluded: set[str]) -> dict:
    return {k: v for k, v in doc.items() if k not in excluded}


def mongo_digest(db, *, skip_prefix: tuple[str, ...] = ("_ferry", "system."), exclude: set[str] = frozenset()) -> dict:
    """Per collection: ``{"count", "hash"}`` of its documents in ``_id`` order (BSON bytes: field order and
    types count), run-specific ``exclude`` fields left out; collections named ``skip_prefix*`` left out."""
    import bson

    out = {}
    for name in sorted(db.list_collection_names()):
        if name.startswith(skip_prefix):
            continue
        h, n = hashlib.sha256(), 0
        for d in db[name].find().sort("_id", 1):
            h.update(bson.encode(_strip(d, set(exclude))))
            n += 1
        out[name] = {"count": n, "hash": h.hexdigest()}
    return out


def mongo_bytes(db, collections: list[str] | None = None) -> str:
    """Byte-for-byte digest of whole collections (every field), for data promised untouched."""
    import bson

    h = hashlib.sha256()
    for name in sorted(collections or db.list_collection_names()):
        h.update(name.encode())
        for d in db[name].find().sort("_id", 1):
            h.update(bson.encode(d))
    return h.hexdigest()


def duplicates(coll, key: list[str]) -> list[dict]:
    """Natural-key values held by more than one document of ``coll``."""
    group = {"_id": {k: f"${k}" for k in key}, "n": {"$sum": 1}}
    return list(coll.aggregate([{"$group": group}, {"$match": {"n": {"$gt": 1}}}]))


def embedded_duplicates(coll, fields: tuple[str, ...] = ("id", "_id")) -> list[str]:
    """Documents whose embedded arrays hold one child twice (same ``id``)."""
    bad = []
    for d in coll.find():
        for k, v in d.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                for f in fields:
                    ids = [x[f] for x in v if f in x]
                    if len(ids) != len(set(map(str, ids))):
                        bad.append(f"{coll.name} {d['_id']}.{k}")
    return bad


# --------------------------------------------------------------------------- results table


def results_path() -> Path:
    return Path(os.environ.get("FERRY_FAULT_RESULTS") or REPO / ".ferry" / "faults" / "results.jsonl")


def record(trial: Trial, passed: bool, error: str = "", seconds: float = 0.0) -> None:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {
        "scenario": trial.scenario,
        "kind": trial.kind,
        "index": trial.index,
        "seed": trial.seed,
        "delay": trial.delay,
        "fault_landed": trial.fault_landed,
        "child_rc": trial.child_rc,
        "passed": passed,
        "error": error[:500],
        "seconds": round(seconds, 2),
        "notes": trial.notes,
    }
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def table(path: Path | None = None) -> str:
    rows = [json.loads(line) for line in open(path or results_path()) if line.strip()]
    agg: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        a = agg.setdefault((r["scenario"], r["kind"]), {"runs": 0, "passed": 0, "failed": 0, "landed": 0, "s": 0.0})
        a["runs"] += 1
        a["passed" if r["passed"] else "failed"] += 1
        a["landed"] += bool(r["fault_landed"])
        a["s"] += r["seconds"]
    lines = [
        "| scenario | fault | runs | passed | failed | fault landed mid-run | s/trial |",
        "|---|---|---|---|---|---|---|",
    ]
    for (sc, kind), a in sorted(agg.items()):
        lines.append(
            f"| {sc} | {kind} | {a['runs']:.0f} | {a['passed']:.0f} | {a['failed']:.0f} | {a['landed']:.0f} "
            f"| {a['s'] / a['runs']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "child":
        return child_main(argv[1:])
    if argv and argv[0] == "table":
        print(table(Path(argv[1]) if len(argv) > 1 else None))
        return 0
    print("usage: python -m ferry_dev.faults child <op> <spec-json> | table [results.jsonl]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
