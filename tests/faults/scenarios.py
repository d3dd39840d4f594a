"""The write paths under fault injection: how each scenario is set up, what a user reruns, what is compared.

Each scenario sets up fresh state (deterministic: the same for every trial, only the fault point varies),
gives the child operation (``ferry_dev.faults.OPS``) its spec, and measures:

- ``outcome``: counts and a content hash of what the operation promises to produce (compared with a clean run);
- ``untouched``: byte-for-byte digests of data it promises not to change (compared before/after the trial);
- ``problems``: duplicates by natural key and count mismatches against the source.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import uuid
from pathlib import Path

from ferry_dev import faults

MAPPING = "include/etl/demo_mapping.yaml"
ETL_SIZE = {"accounts": 20, "campaigns_per": 3, "items_per": 2, "tags_per": 1}
ETL_NATURAL_KEYS = {"accounts": "id", "campaigns": "id", "line_items": "id", "campaign_tags": "id"}


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class Scenario:
    name = ""
    op = ""
    restart_role: str | None = "prod"  # the MongoDB server restarted by fault kind "restart"
    late_restart = False

    def __init__(self, stack, tmp: Path):
        self.stack, self.tmp = stack, tmp

    def setup(self) -> dict: ...
    def rerun_spec(self, spec: dict) -> dict:
        return spec

    def outcome(self, spec: dict) -> dict: ...
    def untouched(self, spec: dict) -> dict: ...
    def problems(self, spec: dict) -> list[str]:
        return []

    def cleanup(self, spec: dict) -> None: ...
    def restart(self):
        return self.stack.restart_mongo(self.restart_role)

    def settle(self) -> None:
        """Make the set-up durable before a fault: ``fsync`` (a checkpoint) on every MongoDB server. The set-up
        writes without ``j: true``; a server SIGKILLed a moment later could lose them (seen: dev_clone/restart
        #40 of seed 1557805763 found its source database empty), which is not a Ferry write."""
        for role in ("prod", "local"):
            with self.stack.mongo_client(role) as c:
                c.admin.command("fsync")


# --------------------------------------------------------------------------- ETL


class EtlFull(Scenario):
    name, op, restart_role = "etl_full", "etl", "local"
    strategy = "full"

    def _pg(self, db: str):
        return self.stack.pg.connect(db)

    def setup(self) -> dict:
        from ferry_dev import etl_demodata as demodata

        pg_db, mdb = uid("ferry_f"), uid("ferry_f")
        self.stack.pg.create_database(pg_db)
        with self._pg(pg_db) as conn:
            demodata.create_schema(conn)
            demodata.seed(conn, **ETL_SIZE)
        client = self.stack.mongo_client("local")
        client[mdb].notes.insert_many([{"_id": i, "text": f"not in the mapping {i}"} for i in range(5)])
        client.close()
        return {
            "pg_db": pg_db,
            "pg_uri": self.stack.pg.uri(pg_db),
            "mongo_uri": self.stack.mongo_local_uri,
            "db": mdb,
            "mapping": MAPPING,
            "strategy": self.strategy,
            "batch_size": 5,
        }

    def outcome(self, spec: dict) -> dict:
        with self.stack.mongo_client("local") as c:
            out = faults.mongo_digest(c[spec["db"]], skip_prefix=("_ferry", "system.", "notes"))
            from ferry.etl import load

            out["staging left"] = load.staging_db(spec["db"]) in c.list_database_names()
        return out

    def untouched(self, spec: dict) -> dict:
        import hashlib

        h = hashlib.sha256()
        with self._pg(spec["pg_db"]) as conn:
            for t in ("accounts", "campaigns", "line_items", "campaign_tags"):
                for row in conn.execute(f"SELECT t::text FROM {t} t ORDER BY id"):
                    h.update(row[0].encode())
        with self.stack.mongo_client("local") as c:
            notes = faults.mongo_bytes(c[spec["db"]], ["notes"])
        return {"source (PostgreSQL)": h.hexdigest(), "unmapped collection notes": notes}

    def problems(self, spec: dict) -> list[str]:
        out = []
        with self.stack.mongo_client("local") as c, self._pg(spec["pg_db"]) as conn:
            db = c[spec["db"]]
            for name in db.list_collection_names():
                if name.startswith(("_ferry", "system.", "notes")):
                    continue
                out += [f"{name}: duplicate {d['_id']}" for d in faults.duplicates(db[name], ["_id"])]
                out += faults.embedded_duplicates(db[name])
            n_src = conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]
            n_items = conn.execute("SELECT count(*) FROM line_items").fetchone()[0]
            n_tgt = db.campaigns.count_documents({})
            if n_tgt != n_src:
                out.append(f"campaigns: source {n_src}, target {n_tgt}")
            n_emb = sum(len(d.get("lineItems") or []) for d in db.campaigns.find({}, {"lineItems": 1}))
            if "lineItems" in str(db.campaigns.find_one() or {}) and n_emb != n_items:
                out.append(f"embedded lineItems: source {n_items}, target {n_emb}")
        return out

    def cleanup(self, spec: dict) -> None:
        self.stack.pg.drop_database(spec["pg_db"])
        with self.stack.mongo_client("local") as c:
            for name in c.list_database_names():
                if name.startswith(spec["db"]):
                    c.drop_database(name)


class EtlIncremental(EtlFull):
    """A full load, then 10% updates, 1% deletes, 5% inserts at the source; the faulted run is incremental."""

    name, strategy = "etl_incremental", "incremental"

    def setup(self) -> dict:
        spec = super().setup()
        faults.run_op("etl", {**spec, "strategy": "full", "run_id": "initial-full"})
        rnd = random.Random(11)  # the same changes in every trial
        with self._pg(spec["pg_db"]) as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM campaigns ORDER BY id")]
            n = len(ids)
            upd = rnd.sample(ids, max(1, n // 10))
            rest = [i for i in ids if i not in upd]
            dele = rnd.sample(rest, max(1, n // 100))
            conn.execute(
                "UPDATE campaigns SET name = name || ' (edited)', budget = budget + 1 WHERE id = ANY(%s)", [upd]
            )
            for t in ("line_items", "campaign_tags"):
                conn.execute(f"DELETE FROM {t} WHERE campaign_id = ANY(%s)", [dele])
            conn.execute("DELETE FROM campaigns WHERE id = ANY(%s)", [dele])
            top = max(ids)
            accounts = [r[0] for r in conn.execute("SELECT id FROM accounts ORDER BY id")]
            for k in range(max(1, n * 5 // 100)):
                conn.execute(
                    "INSERT INTO campaigns (id, account_id, name, status, budget, starts_on, channels, created_at) "
                    "VALUES (%s, %s, %s, 'active', 100.50, DATE '2026-03-01', ARRAY['web'], "
                    "TIMESTAMPTZ '2026-03-01 00:00:00+00')",
                    [top + 1 + k, accounts[k % len(accounts)], f"new campaign {k}"],
                )
        return spec


class EtlParallel(EtlFull):
    """A full load that also publishes to two parallel databases (``also_publish_to``); the fault may hit the
    load, the publish or either copy; every database must end equal to a clean run's."""

    name = "etl_parallel"

    def setup(self) -> dict:
        spec = super().setup()
        return {**spec, "also": [spec["db"] + "-a", spec["db"] + "-test"]}

    def outcome(self, spec: dict) -> dict:
        out = super().outcome(spec)
        with self.stack.mongo_client("local") as c:
            from ferry.etl import load

            for db in spec["also"]:
                copy = faults.mongo_digest(c[db], skip_prefix=("_ferry", "system.", "notes"))
                out.update({f"{db[len(spec['db']) :]} {k}": v for k, v in copy.items()})
                out[f"{db[len(spec['db']) :]} staging left"] = load.staging_db(db) in c.list_database_names()
        return out


# --------------------------------------------------------------------------- promotion


T0, T1, T2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 6, 1), dt.datetime(2026, 9, 1)


def seed_promotion(local, prod) -> None:
    """Local: 25 companies, 60 documents, 50 meta summaries. Production already holds 5 of the companies
    (other _ids), 12 of the documents (6 older, 6 newer than local) and 5 summaries, plus data outside the
    promotion's scope (collection ``reviews``)."""
    from bson import ObjectId

    lc = [ObjectId(f"{0xAA0000 + i:024x}") for i in range(25)]
    pc = [ObjectId(f"{0xBB0000 + i:024x}") for i in range(5)]
    local.companies.insert_many(
        [{"_id": lc[i], "domain": f"c{i}.com", "name": f"C{i}", "updated_at": T1} for i in range(25)]
    )
    prod.companies.insert_many(
        [{"_id": pc[i], "domain": f"c{i}.com", "name": f"C{i} prod", "updated_at": T0} for i in range(5)]
    )
    local.documents.insert_many(
        [
            {
                "_id": f"d{i}",
                "url": f"https://c{i % 25}.com/p{i}",
                "company_id": lc[i % 25],
                "title": f"t{i}",
                "updated_at": T1,
            }
            for i in range(60)
        ]
    )
    prod.documents.insert_many(
        [
            {
                "_id": f"pd{i}",
                "url": f"https://c{i % 25}.com/p{i}",
                "company_id": pc[i % 5] if i % 25 < 5 else ObjectId(f"{0xCC0000 + i:024x}"),
                "title": f"prod t{i}",
                "updated_at": T0 if i % 2 else T2,
            }
            for i in range(0, 60, 5)
        ]
    )
    local.meta_summaries.insert_many(
        [
            {"_id": f"m{i}", "company_id": lc[i % 25], "kind": f"k{i // 25}", "text": f"s{i}", "updated_at": T1}
            for i in range(50)
        ]
    )
    prod.meta_summaries.insert_many(
        [{"_id": f"pm{i}", "company_id": pc[i], "kind": "k0", "text": "prod", "updated_at": T0} for i in range(5)]
    )
    prod.reviews.insert_many([{"_id": i, "note": f"outside the promotion {i}"} for i in range(5)])


class Promote(Scenario):
    op = "promote"

    def __init__(self, stack, tmp, on_conflict: str):
        super().__init__(stack, tmp)
        self.on_conflict = on_conflict
        self.name = f"promotion_{on_conflict}"

    def setup(self) -> dict:
        db = uid("ferry_f")
        with self.stack.mongo_client("local") as lc, self.stack.mongo_client("prod") as pc:
            seed_promotion(lc[db], pc[db])
        return {
            "local_uri": self.stack.mongo_local_uri,
            "prod_uri": self.stack.mongo_prod_uri,
            "db": db,
            "on_conflict": self.on_conflict,
            "promotion_id": "p-first",
            "reports": str(self.tmp / "reports" / db),
        }

    def rerun_spec(self, spec: dict) -> dict:
        return {**spec, "promotion_id": "p-rerun"}  # a new DAG run: a new promotion id

    def outcome(self, spec: dict) -> dict:
        with self.stack.mongo_client("prod") as c:
            return faults.mongo_digest(c[spec["db"]], skip_prefix=("_ferry", "system."))

    def untouched(self, spec: dict) -> dict:
        with self.stack.mongo_client("local") as lc, self.stack.mongo_client("prod") as pc:
            return {
                "local (source) database": faults.mongo_bytes(lc[spec["db"]]),
                "prod.reviews": faults.mongo_bytes(pc[spec["db"]], ["reviews"]),
            }

    def problems(self, spec: dict) -> list[str]:
        from ferry.promotion import config

        out = []
        with self.stack.mongo_client("prod") as c:
            db = c[spec["db"]]
            for name, cs in config.load().collections.items():
                out += [f"{name}: duplicate key {d['_id']}" for d in faults.duplicates(db[name], list(cs.key))]
            left = db["_ferry_locks"].count_documents({"owner": {"$in": ["p-rerun", "rollback:p-first"]}})
            if left:
                out.append(f"{left} lock(s) left by a run that finished")
        return out

    def cleanup(self, spec: dict) -> None:
        for role in ("local", "prod"):
            with self.stack.mongo_client(role) as c:
                c.drop_database(spec["db"])


class Rollback(Promote):
    """A clean promotion (update_if_newer), then its rollback under faults: production as before the promotion."""

    op = "rollback"

    def __init__(self, stack, tmp):
        super().__init__(stack, tmp, "update_if_newer")
        self.name = "promotion_rollback"

    def setup(self) -> dict:
        spec = super().setup()
        with self.stack.mongo_client("prod") as c:
            spec["before"] = faults.mongo_digest(c[spec["db"]], skip_prefix=("_ferry", "system."))
        faults.run_op("promote", spec)
        return spec

    def rerun_spec(self, spec: dict) -> dict:
        return spec  # a rollback is rerun for the same promotion

    def problems(self, spec: dict) -> list[str]:
        out = super().problems(spec)
        now = self.outcome(spec)
        if now != spec["before"]:
            out.append(f"production differs from before the promotion: {now} != {spec['before']}")
        with self.stack.mongo_client("prod") as c:
            status = c[spec["db"]]["_ferry_promotions"].find_one({"_id": "p-first"})["status"]
        if status != "rolled_back":
            out.append(f"promotion status {status!r}, expected 'rolled_back'")
        return out


# --------------------------------------------------------------------------- sales (DuckDB file)


SALES_DAY = dt.date(2024, 1, 20)
SALES_OTHER = dt.date(2024, 1, 16)
REGIONS = ["North America", "Europe", "Asia", "South America", "Oceania"]


def sales_csv(path: Path, day: dt.date, n: int) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "date", "user_id", "product_name", "quantity", "unit_price", "total_amount", "region"])
        for i in range(1, n + 1):
            q, price = i % 4 + 1, round(5 + (i % 300) * 1.25, 2)
            w.writerow(
                [
                    f"ORD-{day:%Y%m%d}-{i:06d}",
                    day.isoformat(),
                    i % 17 + 1,
                    f"Product {i % 7}",
                    q,
                    f"{price:.2f}",
                    f"{q * price:.2f}",
                    REGIONS[i % 5],
                ]
            )
    return path


class SalesDay(Scenario):
    """One day's load into the DuckDB file; another day already loaded must stay byte-for-byte the same.
    Fault kind ``restart``: the writer is killed in the second half of the run (during the swap/commit)."""

    name, op, restart_role, late_restart = "sales_day", "sales", None, True

    def setup(self) -> dict:
        path = self.tmp / f"{uid('sales')}.duckdb"
        other = sales_csv(self.tmp / "other.csv", SALES_OTHER, 200)
        faults.run_op(
            "sales",
            {
                "duckdb": str(path),
                "csv": [str(other)],
                "day": SALES_OTHER.isoformat(),
                "run_id": "earlier",
                "gx": False,
            },
        )
        day_csv = self.tmp / "day.csv"
        if not day_csv.exists():
            sales_csv(day_csv, SALES_DAY, 20_000)
        return {"duckdb": str(path), "csv": [str(day_csv)], "day": SALES_DAY.isoformat(), "run_id": "r-first"}

    def restart(self):
        return 0.0  # not used: kind "restart" kills the writer late (see inject(late=True))

    def rerun_spec(self, spec: dict) -> dict:
        return {**spec, "run_id": "r-rerun"}

    def _q(self, spec, sql):
        import duckdb

        con = duckdb.connect(spec["duckdb"])
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def outcome(self, spec: dict) -> dict:
        import hashlib

        day = f"DATE '{SALES_DAY}'"
        rows = self._q(
            spec, f"SELECT * EXCLUDE (run_id, loaded_at) FROM sales WHERE sale_date = {day} ORDER BY order_id"
        )
        loads = self._q(spec, "SELECT * EXCLUDE (run_id, loaded_at) FROM sales_loads ORDER BY 1")
        rej = self._q(spec, "SELECT * EXCLUDE (run_id, rejected_at) FROM sales_rejects ORDER BY ALL")
        h = hashlib.sha256(repr((rows, loads, rej)).encode()).hexdigest()
        return {"rows": len(rows), "loads": len(loads), "rejects": len(rej), "hash": h}

    def untouched(self, spec: dict) -> dict:
        import hashlib

        rows = self._q(spec, f"SELECT * FROM sales WHERE sale_date = DATE '{SALES_OTHER}' ORDER BY order_id")
        return {"sales of another day": hashlib.sha256(repr(rows).encode()).hexdigest()}

    def problems(self, spec: dict) -> list[str]:
        dup = self._q(spec, "SELECT order_id, count(*) FROM sales GROUP BY 1 HAVING count(*) > 1 LIMIT 5")
        return [f"duplicate order_id {d}" for d in dup]

    def cleanup(self, spec: dict) -> None:
        Path(spec["duckdb"]).unlink(missing_ok=True)


# --------------------------------------------------------------------------- dev clone


class DevClone(Scenario):
    """Structure clone (collections, options, views, indexes) from a source database to ``<db>_dev``."""

    name, op = "dev_clone", "clone"

    def setup(self) -> dict:
        from tests.devclone.conftest import build_source

        db = uid("ferry_f")
        with self.stack.mongo_client("prod") as c:
            build_source(c[db])
            for i in range(8):  # more collections and indexes: more fault points
                c[db][f"extra{i}"].create_index([("a", 1), ("b", -1)], name=f"a_b_{i}")
                c[db][f"extra{i}"].create_index("c", name=f"c_{i}", unique=True, sparse=True)
        return {"mongo_uri": self.stack.mongo_prod_uri, "db": db}

    def outcome(self, spec: dict) -> dict:
        from ferry.devclone import structure

        with self.stack.mongo_client("prod") as c:
            tgt = structure.read_structure(c[spec["db"] + "_dev"])["collections"]
            docs = sum(
                c[spec["db"] + "_dev"][n].estimated_document_count() for n, v in tgt.items() if v.get("type") != "view"
            )
        return {"structure": structure.to_json(tgt), "documents": docs}

    def untouched(self, spec: dict) -> dict:
        from ferry.devclone import structure

        with self.stack.mongo_client("prod") as c:
            src = c[spec["db"]]
            names = [x["name"] for x in src.list_collections() if x.get("type") != "view"]
            return {
                "source data": faults.mongo_bytes(src, names),
                "source structure": structure.to_json(structure.read_structure(src)),
            }

    def problems(self, spec: dict) -> list[str]:
        from ferry.devclone import structure

        with self.stack.mongo_client("prod") as c:
            src = structure.read_structure(c[spec["db"]])["collections"]
            tgt = structure.read_structure(c[spec["db"] + "_dev"])["collections"]
            d = structure.diff({"collections": src}, {"collections": tgt})
        return [f"structure differs: {x}" for x in d]

    def cleanup(self, spec: dict) -> None:
        with self.stack.mongo_client("prod") as c:
            c.drop_database(spec["db"])
            c.drop_database(spec["db"] + "_dev")


def all_scenarios(stack, tmp: Path) -> dict[str, Scenario]:
    out: list[Scenario] = [
        EtlFull(stack, tmp),
        EtlIncremental(stack, tmp),
        EtlParallel(stack, tmp),
        Promote(stack, tmp, "skip"),
        Promote(stack, tmp, "update_if_newer"),
        Rollback(stack, tmp),
        SalesDay(stack, tmp),
        DevClone(stack, tmp),
    ]
    return {s.name: s for s in out}


NAMES = [
    "etl_full",
    "etl_incremental",
    "etl_parallel",
    "promotion_skip",
    "promotion_update_if_newer",
    "promotion_rollback",
    "sales_day",
    "dev_clone",
]
