"""Structure clone: Ferry's clone vs sending the same ``create`` + ``createIndexes`` commands directly.

Run: ``PYTHONPATH=plugins:. .venv/bin/python bench/clone.py [--collections 50] [--indexes 8] [--runs 3]``.
Starts its own DevStack (MongoDB wire server; ``MONGO_URI`` points it at a real mongod instead).
Per run, both clone the same source into a fresh database, alternating which goes first. Ferry's
time includes reading both structures, the guards and the plan. Prints medians, the ratio
(target < 2x) and the write-command count (target = collections + index batches).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from pymongo import monitoring

TARGET_RATIO = 2.0


class WriteCounter(monitoring.CommandListener):
    WRITES = {"create", "createIndexes", "collMod", "dropIndexes", "createSearchIndexes"}

    def __init__(self):
        self.writes = 0
        self.total = 0

    def started(self, event):
        self.total += 1
        self.writes += event.command_name in self.WRITES

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def build_source(db, collections: int, indexes: int) -> None:
    for c in range(collections):
        name = f"coll_{c:03d}"
        db.create_collection(name)
        specs = []
        for i in range(indexes):
            spec = {"key": {f"f{i}": 1 if i % 2 else -1, f"g{i}": 1}, "name": f"ix_{i}"}
            if i == 1:
                spec["unique"] = True
            if i == 2:
                spec["partialFilterExpression"] = {f"f{i}": {"$exists": True}}
            if i == 3:
                spec = {"key": {f"ttl{i}": 1}, "name": f"ix_{i}", "expireAfterSeconds": 3600}
            if i == 4:
                spec["sparse"] = True
            specs.append(spec)
        db.command({"createIndexes": name, "indexes": specs})


def direct_commands(source) -> list[dict]:
    """What a hand-written script sends: one create and one createIndexes (v/ns dropped) per collection."""
    cmds = []
    for info in source.list_collections():
        cmds.append({"create": info["name"], **(info.get("options") or {})})
        idx = [
            {k: v for k, v in i.items() if k not in ("v", "ns")}
            for i in source[info["name"]].list_indexes()
            if i["name"] != "_id_"
        ]
        if idx:
            cmds.append({"createIndexes": info["name"], "indexes": idx})
    return cmds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", type=int, default=50)
    ap.add_argument("--indexes", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    import pymongo

    from ferry.devclone import clone, structure
    from ferry_dev.devstack import DevStack

    with DevStack.start(mongo_servers=1) as stack:
        counter = WriteCounter()
        client = pymongo.MongoClient(stack.mongo_prod_uri, event_listeners=[counter])
        source = client["bench_src"]
        client.drop_database(source.name)
        t0 = time.perf_counter()
        build_source(source, args.collections, args.indexes)
        print(
            f"setup: {args.collections} collections x {args.indexes} indexes in {time.perf_counter() - t0:.1f}s",
            flush=True,
        )
        cmds = direct_commands(source)
        ferry_t, direct_t, ferry_writes, direct_writes = [], [], [], []
        for run in range(args.runs):
            for which in ("ferry", "direct") if run % 2 == 0 else ("direct", "ferry"):
                target = client[f"bench_src_{which}{run}_dev"]
                client.drop_database(target.name)
                before = counter.writes
                t0 = time.perf_counter()
                if which == "ferry":
                    opts = clone.CloneOptions(dry_run=False, target_suffix=f"_{which}{run}_dev")
                    res = clone.clone_database(source, target, opts)
                    assert not res.failures, res.failures
                    ferry_t.append(time.perf_counter() - t0)
                    ferry_writes.append(counter.writes - before)
                else:
                    for cmd in cmds:
                        target.command(cmd)
                    direct_t.append(time.perf_counter() - t0)
                    direct_writes.append(counter.writes - before)
            diff = structure.diff(
                structure.read_structure(source), structure.read_structure(client[f"bench_src_ferry{run}_dev"])
            )
            assert diff == [], diff[:3]
            for which in ("ferry", "direct"):
                client.drop_database(f"bench_src_{which}{run}_dev")
            print(f"run {run + 1}: ferry {ferry_t[-1]:.2f}s, direct {direct_t[-1]:.2f}s", flush=True)
        client.drop_database(source.name)
        client.close()

    f_med, d_med = statistics.median(ferry_t), statistics.median(direct_t)
    expected = args.collections + args.collections  # one create + one createIndexes batch per collection
    ratio = f_med / d_med
    print(f"ferry clone median: {f_med:.2f}s")
    print(f"direct createIndexes median: {d_med:.2f}s")
    print(f"ratio ferry/direct: {ratio:.2f}x (target < {TARGET_RATIO:.0f}x) {'OK' if ratio < TARGET_RATIO else 'SLOW'}")
    print(
        f"ferry write commands: {ferry_writes[0]} (collections + index batches = {expected}) "
        f"{'OK' if ferry_writes[0] == expected else 'MISMATCH'}"
    )
    print(f"direct write commands: {direct_writes[0]}")
    return 0 if ratio < TARGET_RATIO and ferry_writes[0] == expected else 1


if __name__ == "__main__":
    sys.exit(main())
