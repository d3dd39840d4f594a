"""validate's full-load check reads each staging collection once (issue 26): the commands ``checks.measure``
sends are counted per collection with pymongo command monitoring (a ``CommandListener`` on a client made for
the test), and a corrupted staging database still fails the check that names the damage. Real PostgreSQL
and the wire server."""

from __future__ import annotations

import pytest

from ferry.etl import checks, load, pipeline
from ferry.etl.names import meta_db
from tests.etl.conftest import MAPPING, detect
from tests.etl.test_composite_keys import MAPPING as COMPOSITE  # orders keyed (region, order_no) with their lines

pytestmark = pytest.mark.integration

#: commands that read documents (a getMore goes on with a cursor already counted)
READS = ("aggregate", "find", "count", "distinct")


def _stage(conn, client, db: str, mapping: str = MAPPING) -> tuple[dict, str]:
    """A full load left in staging, as production_etl's ``load`` leaves it for ``validate``:
    ``(effective mapping, staging database)``."""
    planned = pipeline.plan(client[meta_db(db)], mapping, detect(conn, client, db), "auto_safe")
    eff = planned["effective_mapping"]
    res = load.load(conn, client, db, eff, load.Options(strategy="full", batch_size=25, publish_now=False))
    conn.commit()
    return eff, res["staging"]


def _point_lookup(flt: dict) -> bool:
    """A filter on ``_id`` by value or ``$in`` (the ``_id`` index answers it), not a pass over a collection. A
    composite ``_id`` is a sub-document: equal to one, without operators, it is a value too."""
    if "_id" not in flt:
        return False
    v = flt["_id"]
    return not isinstance(v, dict) or not any(k.startswith("$") for k in v) or set(v) <= {"$in", "$eq"}


def _reads(rec, db: str) -> dict[str, dict[str, list[str]]]:
    """Per collection of ``db``: ``{"passes": [command, ...], "lookups": [command, ...]}``, the reads that go
    through every document and the point lookups by ``_id``."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, database, cmd in rec.commands:
        if database != db or name not in READS:
            continue
        if name == "aggregate":
            first = (cmd.get("pipeline") or [{}])[0]
            flt = first.get("$match", {})
        else:
            flt = cmd.get({"find": "filter"}.get(name, "query")) or {}
        kind = "lookups" if _point_lookup(flt) else "passes"
        out.setdefault(cmd[name], {"passes": [], "lookups": []})[kind].append(name)
    return out


def test_a_full_check_reads_each_collection_once(demo_pg, mongo_local, mongo_db_name, command_recorder, stack):
    eff, staging = _stage(demo_pg.conn, mongo_local, mongo_db_name)
    client, rec = command_recorder(stack.mongo_local_uri)
    rows = checks.measure(demo_pg.conn, client, staging, eff, sample=20)
    assert all(r["expected"] == r["actual"] for r in rows), rows
    reads = _reads(rec, staging)
    assert {name: r["passes"] for name, r in reads.items()} == {"accounts": ["aggregate"], "campaigns": ["aggregate"]}
    # the lookups: null _id and the sample in each collection; campaigns' referenced accounts, 100 at a time
    assert reads["campaigns"]["lookups"] == ["aggregate", "find"]
    assert reads["accounts"]["lookups"] == ["aggregate", "find", "aggregate"]  # 20 referenced ids: one chunk
    assert [c[0] for c in rec.commands if c[0] == "listIndexes"] == ["listIndexes"] * 2  # unique _id, read once each
    assert [r["check"] for r in rows if r["collection"] == "campaigns"] == [
        "documents",
        "duplicate _id",
        "null _id",
        "dangling accountId -> accounts",
        "embedded lineItems",
        "embedded tags",
        "sample checksum (20 docs)",
    ]


def _ghost(db):
    db.accounts.insert_one({"_id": 10_000, "accountName": "ghost"})  # no accounts row has this key


def _null_id(db):
    db.accounts.insert_one({"_id": None, "accountName": "no key"})


def _flagged(db):
    db.accounts.update_one({"_id": 4}, {"$set": {"_ferry_deleted": True}})  # not live: short, and referenced


def _child_lost(db):
    db.campaigns.update_one({"_id": 7}, {"$pop": {"lineItems": 1}})


def _dangling(db):
    db.campaigns.update_one({"_id": 7}, {"$set": {"accountId": 5555}})


def _account_lost(db):
    db.accounts.delete_one({"_id": 2})  # campaigns still point at it


@pytest.mark.parametrize(
    ("damage", "differs"),
    [
        (_ghost, {("documents", "accounts"): (20, 21)}),
        (_null_id, {("documents", "accounts"): (20, 21), ("null _id", "accounts"): (0, 1)}),
        (
            _flagged,
            {("documents", "accounts"): (20, 19), ("dangling accountId -> accounts", "campaigns"): (0, 1)},
        ),
        (_child_lost, {("embedded lineItems", "campaigns"): (180, 179)}),
        (_dangling, {("dangling accountId -> accounts", "campaigns"): (0, 1)}),
        (
            _account_lost,
            {("documents", "accounts"): (20, 19), ("dangling accountId -> accounts", "campaigns"): (0, 1)},
        ),
    ],
    ids=["document-without-source-row", "null-id", "flagged-deleted", "embedded-child-lost", "dangling", "ref-gone"],
)
def test_corrupted_staging_still_fails_the_check_that_names_it(damage, differs, demo_pg, mongo_local, mongo_db_name):
    eff, staging = _stage(demo_pg.conn, mongo_local, mongo_db_name)
    damage(mongo_local[staging])
    with pytest.raises(checks.TargetDiffers) as exc:
        checks.run(demo_pg.conn, mongo_local, staging, eff, sample=0)  # no sample: only the damage differs
    rows = checks.measure(demo_pg.conn, mongo_local, staging, eff, sample=0)
    got = {(r["check"], r["collection"]): (r["expected"], r["actual"]) for r in rows if r["expected"] != r["actual"]}
    assert got == differs
    for check, collection in differs:
        assert check in str(exc.value) and collection in str(exc.value)


def test_without_a_unique_id_index_duplicates_are_counted_by_a_group(
    demo_pg, mongo_local, mongo_db_name, command_recorder, stack, monkeypatch
):
    eff, staging = _stage(demo_pg.conn, mongo_local, mongo_db_name)
    monkeypatch.setattr(checks, "_id_unique", lambda target: False)
    client, rec = command_recorder(stack.mongo_local_uri)
    rows = checks.measure(demo_pg.conn, client, staging, eff, sample=0)
    assert [r["actual"] for r in rows if r["check"] == "duplicate _id"] == [0, 0]
    groups = [
        c["pipeline"][0]["$group"]["_id"]
        for name, _db, c in rec.commands
        if name == "aggregate" and "$group" in c["pipeline"][0]
    ]
    assert groups.count("$_id") == 2  # the fallback: one more pass per collection


class _Indexes:
    def __init__(self, info: dict):
        self.info = info

    def index_information(self) -> dict:
        return self.info


@pytest.mark.parametrize(
    ("info", "unique"),
    [
        ({"_id_": {"v": 2, "key": [("_id", 1)]}}, True),  # mongod and the wire server: no `unique` on _id_
        ({"_id_": {"v": 2, "key": [("_id", 1)], "unique": True, "clustered": True}}, True),  # clustered
        ({"by_id": {"v": 2, "key": [("_id", 1)], "unique": True}}, True),
        ({}, False),  # no index listed (a collection that is not there)
        ({"_id_": {"v": 2, "key": [("_id", 1)], "unique": False}}, False),
        ({"by_id": {"v": 2, "key": [("_id", 1)]}}, False),  # not the _id index and not unique
        ({"by_id": {"key": [("_id", 1)], "unique": True, "partialFilterExpression": {"x": 1}}}, False),
        ({"id_x": {"key": [("_id", 1), ("x", 1)], "unique": True}}, False),  # unique pairs, not ids
    ],
)
def test_id_unique_reads_the_listed_indexes(info, unique):
    assert checks._id_unique(_Indexes(info)) is unique


def test_a_composite_key_collection_is_read_once_and_a_lost_line_is_caught(
    pg_conn, mongo_local, mongo_db_name, command_recorder, stack, tmp_path
):
    pg_conn.execute("""
        CREATE TABLE orders (region text, order_no int, PRIMARY KEY (region, order_no));
        CREATE TABLE order_lines (region text, order_no int, line_no int, PRIMARY KEY (region, order_no, line_no),
                                  FOREIGN KEY (region, order_no) REFERENCES orders);
        INSERT INTO orders SELECT r, n FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 10) n;
        INSERT INTO order_lines SELECT region, order_no, l FROM orders, generate_series(1, 2) l;
    """)
    pg_conn.commit()
    path = tmp_path / "orders.yaml"
    path.write_text(COMPOSITE)
    eff, staging = _stage(pg_conn, mongo_local, mongo_db_name, str(path))
    client, rec = command_recorder(stack.mongo_local_uri)
    rows = checks.measure(pg_conn, client, staging, eff, sample=5)
    assert all(r["expected"] == r["actual"] for r in rows), rows
    assert _reads(rec, staging)["orders"] == {"passes": ["aggregate"], "lookups": ["aggregate", "find"]}
    mongo_local[staging].orders.update_one({"_id": {"region": "us", "order_no": 3}}, {"$pop": {"lines": 1}})
    rows = checks.measure(pg_conn, mongo_local, staging, eff, sample=0)
    assert [(r["check"], r["expected"], r["actual"]) for r in rows if r["expected"] != r["actual"]] == [
        ("embedded lines", 40, 39)
    ]


def test_a_run_that_wrote_nothing_compares_without_the_suite_and_still_fails(
    demo_pg, mongo_local, mongo_db_name, monkeypatch
):
    """An incremental run that read no changed row (``Changed.quiet``): the same rows, compared without
    Great Expectations (never imported), and a difference still fails naming the check."""
    from ferry import validation

    monkeypatch.setattr(validation, "validate", lambda *a, **k: pytest.fail("the GX suite ran"))
    eff, staging = _stage(demo_pg.conn, mongo_local, mongo_db_name)
    quiet = checks.Changed(lambda name: [], quiet=True)
    assert checks.run(demo_pg.conn, mongo_local, staging, eff, sample=5, changed=quiet)
    _dangling(mongo_local[staging])
    # accounts lost a document: every campaign's reference is looked up, as after a delete
    quiet = checks.Changed(lambda name: [], deleted={"accounts"}, quiet=True)
    with pytest.raises(checks.TargetDiffers, match=r"dangling accountId -> accounts"):
        checks.run(demo_pg.conn, mongo_local, staging, eff, sample=0, changed=quiet)


@pytest.mark.parametrize(
    ("counts", "quiet"),
    [
        ({"read": 0, "written": 0, "deleted": 0}, True),
        ({"read": 3, "written": 0, "deleted": 0}, False),
        ({"read": 0, "written": 0, "deleted": 1}, False),
        ({"read": 0, "written": 0, "quarantined": 1}, False),
    ],
)
def test_only_an_incremental_run_that_read_nothing_skips_the_suite(counts, quiet):
    loaded = {"strategy": "incremental", "backup_version": "v1", "collections": {"a": counts, "b": {"read": 0}}}
    assert load.changed(None, loaded).quiet is quiet
    assert load.changed(None, {**loaded, "strategy": "full"}) is None  # full: every check, with the suite
