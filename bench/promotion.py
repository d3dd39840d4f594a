"""Benchmark: Ferry's promotion execute vs a naive per-document find-then-insert, in the same run.

    PYTHONPATH=plugins:. .venv/bin/python bench/promotion.py --n 10000 [--repeat 3]

N local companies, half of which production already holds (same domain, another _id; production
has a unique index on ``domain``). Both contenders start from identical production databases on the
same server; both must end with exactly N companies. Prints one figure per line (medians over
``--repeat``), with round trips counted by a pymongo command listener (getMore included).
Starts its own DevStack (the two MongoDB wire servers: local and prod).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from pymongo import monitoring


class Counter(monitoring.CommandListener):
    def __init__(self):
        self.n = 0

    def started(self, event):
        self.n += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def seed(local_db, prod_dbs, n: int) -> None:
    now = datetime(2026, 1, 1)
    batch = 10_000
    for start in range(0, n, batch):
        local_db.companies.insert_many(
            [
                {"_id": f"L{i}", "domain": f"d{i:07d}.com", "name": f"Company {i}", "updated_at": now}
                for i in range(start, min(n, start + batch))
            ]
        )
    for db in prod_dbs:
        db.companies.create_index("domain", unique=True)
        for start in range(0, n, batch):
            docs = [
                {"_id": f"P{i}", "domain": f"d{i:07d}.com", "name": f"Prod {i}", "updated_at": now}
                for i in range(start, min(n, start + batch))
                if i % 2 == 0
            ]
            if docs:
                db.companies.insert_many(docs)


def naive(local_db, prod_db) -> None:
    """What the original scripts did: one find_one per document, one insert_one per new document."""
    for doc in local_db.companies.find().batch_size(1000):
        if prod_db.companies.find_one({"domain": doc["domain"]}) is None:
            prod_db.companies.insert_one(doc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="local documents (half already in production)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per contender; medians are printed")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import pymongo

    from ferry.promotion import config
    from ferry.promotion.execute import Attempt, Selection, execute
    from ferry.promotion.sink import ReportSink
    from ferry_dev.devstack import DevStack

    cfg = config.load()
    ferry_s, naive_s, ferry_rt, naive_rt = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp, DevStack.start(Path(tmp) / "stack") as stack:
        import ferry.validation  # noqa: F401 - warm up: GX import (~5 s) is not promotion work

        ferry.validation._context()
        lrec, prec = Counter(), Counter()
        local = pymongo.MongoClient(stack.mongo_local_uri, event_listeners=[lrec])
        prod = pymongo.MongoClient(stack.mongo_prod_uri, event_listeners=[prec])
        for r in range(args.repeat):
            src, fdb, ndb = f"bench_src_{r}", f"bench_ferry_{r}", f"bench_naive_{r}"
            t = time.perf_counter()
            seed(local[src], [prod[fdb], prod[ndb]], args.n)
            print(
                f"# seeded {args.n} local + {2 * ((args.n + 1) // 2)} production documents in {time.perf_counter() - t:.1f}s",
                flush=True,
            )

            lrec.n = prec.n = 0
            t = time.perf_counter()
            res = execute(
                cfg,
                local[src],
                prod[fdb],
                Selection(["companies"]),
                Attempt(f"bench-{r}", ReportSink(Path(tmp) / "reports"), triggered_by="bench"),
            )
            ferry_s.append(time.perf_counter() - t)
            ferry_rt.append(lrec.n + prec.n)
            assert res["status"] == "succeeded", res["failures"][:3]

            lrec.n = prec.n = 0
            t = time.perf_counter()
            naive(local[src], prod[ndb])
            naive_s.append(time.perf_counter() - t)
            naive_rt.append(lrec.n + prec.n)

            for db in (fdb, ndb):
                got = prod[db].companies.count_documents({})
                assert got == args.n, f"{db}: {got} companies, expected {args.n}"
            for name in (src,):
                local.drop_database(name)
            for name in (fdb, ndb):
                prod.drop_database(name)
        local.close()
        prod.close()

    f, nv = statistics.median(ferry_s), statistics.median(naive_s)
    print(f"documents_local {args.n} (50% already in production), repeats {args.repeat}")
    print(
        f"ferry_execute_seconds {f:.2f}  ({args.n / f:.0f} docs/s; plan + GX validation + backup + bulk writes + audit)"
    )
    print(f"naive_find_then_insert_seconds {nv:.2f}  ({args.n / nv:.0f} docs/s)")
    print(f"speedup {nv / f:.1f}x  (target >= 10x)")
    print(f"ferry_round_trips {int(statistics.median(ferry_rt))}")
    print(f"naive_round_trips {int(statistics.median(naive_rt))}")
    print(f"round_trip_ratio {statistics.median(naive_rt) / max(statistics.median(ferry_rt), 1):.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
