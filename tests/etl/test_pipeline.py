"""Against real PostgreSQL and the MongoDB wire server: detection on a real ALTERed schema, policies,
idempotency, crash recovery, rollback (domain functions; the DAG wiring is in test_dags.py)."""

from __future__ import annotations

import pytest

from ferry import hashing
from ferry.etl import backup, load, pipeline
from ferry.etl.names import meta_db
from tests.etl.conftest import MAPPING, InjectedFailure, detect, run_etl

INCREMENTAL = load.Options(strategy="incremental")

pytestmark = pytest.mark.integration


def _target_writes(recorder, db):
    return [(name, d) for name, d, _cmd in recorder.writes() if d == db]


def test_real_alter_table_changes_are_detected_and_classified(demo_pg, mongo_local, mongo_db_name):
    conn = demo_pg.conn
    assert detect(conn, mongo_local, mongo_db_name)["base_version"] is None  # baseline, accepted
    conn.execute("""
        ALTER TABLE accounts ADD COLUMN tier text;
        ALTER TABLE accounts ADD COLUMN score integer NOT NULL DEFAULT 0;
        ALTER TABLE campaigns ADD COLUMN priority integer;
        UPDATE campaigns SET priority = 1;
        ALTER TABLE campaigns ALTER COLUMN priority SET NOT NULL;
        ALTER TABLE line_items ALTER COLUMN quantity TYPE bigint;
        UPDATE line_items SET description = '' WHERE description IS NULL;
        ALTER TABLE line_items ALTER COLUMN description SET NOT NULL;
        ALTER TABLE accounts ALTER COLUMN name DROP NOT NULL;
        ALTER TABLE accounts RENAME COLUMN region TO area;
        ALTER TABLE accounts DROP COLUMN settings;
        ALTER TABLE campaign_tags DROP CONSTRAINT campaign_tags_campaign_id_fkey;
        CREATE TABLE budgets (id bigint PRIMARY KEY, amount numeric);
        CREATE INDEX accounts_email_lower ON accounts (lower(email));
        DROP INDEX campaigns_account_idx;
        ALTER TABLE line_items ADD COLUMN sku text NOT NULL DEFAULT 'x';
        ALTER TABLE line_items ADD COLUMN vendor_ref bigint NOT NULL DEFAULT 0;
        ALTER TABLE line_items ALTER COLUMN vendor_ref DROP DEFAULT;
    """)
    conn.commit()
    got = {
        (c["kind"], c["table"], c["column"]): c["class"] for c in detect(conn, mongo_local, mongo_db_name)["changes"]
    }
    expected = {
        ("column_added", "accounts", "tier"): "safe",
        ("column_added", "accounts", "score"): "safe",
        ("column_added_required", "campaigns", "priority"): "breaking",  # added then made NOT NULL: required
        ("type_changed", "line_items", "quantity"): "breaking",
        ("nullable_to_not_null", "line_items", "description"): "breaking",
        ("not_null_to_nullable", "accounts", "name"): "safe",
        ("column_renamed_likely", "accounts", "area"): "breaking",
        ("column_dropped", "accounts", "settings"): "breaking",
        ("foreign_key_dropped", "campaign_tags", None): "breaking",
        ("table_added", "budgets", None): "safe",
        ("index_added", "accounts", None): "safe",
        ("index_dropped", "campaigns", None): "safe",
        ("column_added", "line_items", "sku"): "safe",
        ("column_added_required", "line_items", "vendor_ref"): "breaking",
    }
    assert got == expected


@pytest.mark.parametrize("policy", ["auto_safe", "abort", "ask"])
def test_breaking_change_stops_before_any_write(
    policy, demo_pg, mongo_local, mongo_db_name, command_recorder, stack, tmp_path
):
    conn = demo_pg.conn
    run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    before = hashing.db_digest(mongo_local[mongo_db_name])
    conn.execute("ALTER TABLE accounts DROP COLUMN balance")
    conn.commit()
    client, rec = command_recorder(stack.mongo_local_uri)
    with pytest.raises(pipeline.Aborted, match="stopped before any write") as exc:
        run_etl(conn, client, mongo_db_name, tmp_path, policy=policy)  # ask: no answer recorded -> abort
    assert "column_dropped" in str(exc.value)
    assert _target_writes(rec, mongo_db_name) == []
    assert hashing.db_digest(mongo_local[mongo_db_name]) == before
    snap = mongo_local[meta_db(mongo_db_name)]["_ferry_schema_snapshots"].find_one(sort=[("version", -1)])
    assert snap["status"] == "rejected" and snap["decision"]["action"] == "abort"


def test_ask_answers_apply_all_and_skip(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn = demo_pg.conn
    run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    conn.execute(
        "ALTER TABLE accounts ADD COLUMN tier text; UPDATE accounts SET tier = 'gold';"
        "ALTER TABLE accounts RENAME COLUMN region TO area"
    )  # safe + likely rename (breaking)
    conn.commit()
    # the mapping reads `region`: skipping schema updates cannot load, and says why before writing
    with pytest.raises(Exception, match="fields column 'region' not in the source"):
        run_etl(conn, mongo_local, mongo_db_name, tmp_path, policy="ask", chosen=["Skip schema updates"])
    out = run_etl(
        conn, mongo_local, mongo_db_name, tmp_path, policy="ask", chosen=["Apply all"], strategy="incremental"
    )
    assert out["planned"]["decision"]["action"] == "apply_all"
    doc = mongo_local[mongo_db_name].accounts.find_one({"_id": 1})
    assert doc["tier"] == "gold" and doc["region"] == "amer"  # region now read from `area`
    snap = mongo_local[meta_db(mongo_db_name)]["_ferry_schema_snapshots"].find_one(
        {"_id": out["detected"]["snapshot_id"]}
    )
    assert snap["status"] == "accepted" and snap["decision"]["by"] == "reviewer"
    assert snap["effective_mapping"]["collections"][0]["fields"]["area"]["name"] == "region"
    # the next run starts from the accepted effective mapping: no changes, nothing to write
    again = run_etl(conn, mongo_local, mongo_db_name, tmp_path, strategy="incremental")
    assert again["detected"]["changes"] == []
    assert sum(c["written"] for c in again["load"]["collections"].values()) == 0


def test_safe_change_extends_mapping_under_auto_safe(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn = demo_pg.conn
    run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    conn.execute(
        "ALTER TABLE campaigns ADD COLUMN performance_score numeric(5,2); UPDATE campaigns SET performance_score = 1.25"
    )
    conn.commit()
    out = run_etl(conn, mongo_local, mongo_db_name, tmp_path, strategy="incremental")
    assert out["planned"]["decision"]["action"] == "apply_safe"
    assert out["planned"]["decision"]["mapping_changes"] == [
        {"mapping": "campaigns", "action": "add field performance_score"}
    ]
    assert str(mongo_local[mongo_db_name].campaigns.find_one({"_id": 5})["performance_score"]) == "1.25"
    assert out["load"]["collections"]["campaigns"]["written"] == demo_pg.counts["campaigns"]
    assert out["load"]["collections"]["accounts"]["written"] == 0


def test_incremental_rerun_writes_nothing_and_applies_source_changes(
    demo_pg, mongo_local, mongo_db_name, command_recorder, stack, tmp_path
):
    conn = demo_pg.conn
    run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    client, rec = command_recorder(stack.mongo_local_uri)
    out = run_etl(conn, client, mongo_db_name, tmp_path, strategy="incremental")
    assert {n for n, _ in _target_writes(rec, mongo_db_name)} == set(), _target_writes(rec, mongo_db_name)
    # change capture: nothing changed, so nothing is read, written or backed up
    assert all(c["written"] == c["read"] == c["backed_up"] == 0 for c in out["load"]["collections"].values())
    assert out["backup"]["kind"] == "delta" and out["backup"]["parts"] == []
    conn.execute(
        "UPDATE line_items SET quantity = quantity + 1 WHERE campaign_id = 3;"
        "DELETE FROM line_items WHERE campaign_id = 4; DELETE FROM campaign_tags WHERE campaign_id = 4;"
        "DELETE FROM campaigns WHERE id = 4;"
        "INSERT INTO accounts (id, name, created_at) VALUES (999, 'New', now())"
    )
    conn.commit()
    out = run_etl(conn, mongo_local, mongo_db_name, tmp_path, strategy="incremental")
    assert out["load"]["collections"]["campaigns"]["written"] == 1
    assert out["load"]["collections"]["campaigns"]["deleted"] == 1
    assert out["load"]["collections"]["accounts"]["written"] == 1
    assert mongo_local[mongo_db_name].campaigns.find_one({"_id": 4}) is None
    assert mongo_local[mongo_db_name].accounts.find_one({"_id": 999})["accountName"] == "New"


@pytest.mark.parametrize("strategy", ["full", "incremental"])
def test_crash_midway_then_rerun_equals_a_clean_run(strategy, demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn = demo_pg.conn
    db = mongo_db_name
    run_etl(conn, mongo_local, db, tmp_path, batch_size=7)
    conn.execute(
        "UPDATE accounts SET balance = balance + 1; DELETE FROM campaign_tags WHERE campaign_id < 10;"
        "INSERT INTO accounts (id, name, created_at) VALUES (500, 'Late', now())"
    )
    conn.commit()
    before = hashing.db_digest(mongo_local[db])
    with pytest.raises(InjectedFailure):
        run_etl(conn, mongo_local, db, tmp_path, strategy=strategy, batch_size=7, fail_after_batches=4)
    conn.rollback()
    if strategy == "full":  # readers still see the previous complete data
        assert hashing.db_digest(mongo_local[db]) == before
    run_etl(conn, mongo_local, db, tmp_path, strategy=strategy, batch_size=7)
    clean = f"{db}_clean"
    run_etl(conn, mongo_local, clean, tmp_path, batch_size=1000)
    assert hashing.db_digest(mongo_local[db]) == hashing.db_digest(mongo_local[clean])
    assert mongo_local[db].accounts.count_documents({}) == demo_pg.counts["accounts"] + 1


def test_rollback_restores_exact_previous_content(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn = demo_pg.conn
    db, meta = mongo_db_name, mongo_local[meta_db(mongo_db_name)]
    first = run_etl(conn, mongo_local, db, tmp_path)
    assert first["backup"]["documents"] == 0  # backup of the empty target before the first write
    mongo_local[db].campaigns.create_index("status", name="by_status")
    state1 = hashing.db_digest(mongo_local[db])
    conn.execute("UPDATE accounts SET name = 'Renamed'; DELETE FROM campaign_tags;")
    conn.commit()
    second = run_etl(conn, mongo_local, db, tmp_path)
    assert hashing.db_digest(mongo_local[db]) != state1
    assert "by_status" in mongo_local[db].campaigns.index_information()  # full swap keeps indexes
    with pytest.raises(
        backup.UnknownVersion, match=f"valid versions: {second['backup']['_id']}, {first['backup']['_id']}"
    ):
        backup.restore(mongo_local, meta, "1999-01-01-001")
    res = backup.restore(mongo_local, meta, second["backup"]["_id"])
    assert res["collections"] == {"accounts": 20, "campaigns": 60}
    assert hashing.db_digest(mongo_local[db]) == state1
    assert "by_status" in mongo_local[db].campaigns.index_information()
    backup.restore(mongo_local, meta, first["backup"]["_id"])  # back to before the first load: empty
    assert mongo_local[db].list_collection_names() == []
    assert [v["version"] for v in backup.list_versions(meta)] == [second["backup"]["_id"], first["backup"]["_id"]]


def test_bad_values_are_quarantined_not_dropped(demo_pg, mongo_local, mongo_db_name, tmp_path):
    conn = demo_pg.conn
    conn.execute(
        "ALTER TABLE accounts ALTER COLUMN balance TYPE numeric; UPDATE accounts SET balance = 'NaN' WHERE id = 3"
    )
    conn.commit()
    from ferry.etl.checks import TargetDiffers

    # the row is quarantined and the count check allows for it, but campaigns now point at a missing
    # account: validation fails and names the dangling reference
    with pytest.raises(TargetDiffers) as exc:
        run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    assert "dangling accountId -> accounts" in str(exc.value) and "| documents" not in str(exc.value)
    # write-audit-publish: the target stays as it was (empty), staging is kept for inspection
    assert mongo_local[mongo_db_name].list_collection_names() == []
    assert mongo_local[load.staging_db(mongo_db_name)].accounts.count_documents({}) == demo_pg.counts["accounts"] - 1
    q = list(mongo_local[meta_db(mongo_db_name)]["_ferry_etl_quarantine"].find())
    assert [(r["table"], r["key"]) for r in q] == [("accounts", "3")] and "NaN" in q[0]["error"]


def test_dated_copy_strategy_loads_a_dated_database_and_keeps_the_previous(
    demo_pg, mongo_local, mongo_db_name, tmp_path
):
    conn = demo_pg.conn
    run_etl(conn, mongo_local, mongo_db_name, tmp_path)
    before = hashing.db_digest(mongo_local[mongo_db_name])
    conn.execute("UPDATE accounts SET name = 'v2'")
    conn.commit()
    planned = pipeline.plan(
        mongo_local[meta_db(mongo_db_name)], MAPPING, detect(conn, mongo_local, mongo_db_name), "auto_safe"
    )
    target = load.dated_db(mongo_db_name, "2026-11-22")
    assert target == f"{mongo_db_name}-20261122"
    opts = load.Options(strategy="dated_copy", batch_size=25)
    res = load.load(conn, mongo_local, target, planned["effective_mapping"], opts)
    assert res["collections"]["accounts"]["written"] == 20
    assert mongo_local[target].accounts.find_one({"_id": 1})["accountName"] == "v2"
    assert hashing.db_digest(mongo_local[mongo_db_name]) == before


def test_incremental_flags_source_deletes_when_configured(demo_pg, mongo_local, mongo_db_name):
    import copy

    from ferry.etl import checks

    conn = demo_pg.conn
    planned = pipeline.plan(
        mongo_local[meta_db(mongo_db_name)], MAPPING, detect(conn, mongo_local, mongo_db_name), "auto_safe"
    )
    eff = copy.deepcopy(planned["effective_mapping"])
    eff["defaults"]["on_source_delete"] = "flag"
    eff["collections"] = eff["collections"][:1]  # accounts only
    load.load(conn, mongo_local, mongo_db_name, eff, INCREMENTAL)
    conn.execute("UPDATE campaigns SET account_id = 1 WHERE account_id = 5; DELETE FROM accounts WHERE id = 5")
    conn.commit()
    res = load.load(conn, mongo_local, mongo_db_name, eff, INCREMENTAL)
    assert res["collections"]["accounts"]["flagged"] == 1 and res["collections"]["accounts"]["deleted"] == 0
    assert mongo_local[mongo_db_name].accounts.find_one({"_id": 5})["_ferry_deleted"] is True
    assert checks.measure(conn, mongo_local, mongo_db_name, eff, sample=5)[0] == {
        "check": "documents",
        "collection": "accounts",
        "expected": 19,
        "actual": 19,
    }  # flagged docs are not live
    again = load.load(conn, mongo_local, mongo_db_name, eff, INCREMENTAL)
    assert again["collections"]["accounts"]["flagged"] == 0 and again["collections"]["accounts"]["written"] == 0
    conn.execute("INSERT INTO accounts (id, name, created_at) VALUES (5, 'Back', now())")
    conn.commit()
    back = load.load(conn, mongo_local, mongo_db_name, eff, INCREMENTAL)
    assert back["collections"]["accounts"]["written"] == 1
    assert "_ferry_deleted" not in mongo_local[mongo_db_name].accounts.find_one({"_id": 5})
