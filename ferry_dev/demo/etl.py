"""Demo step: production_etl_scaffold drafts a mapping for the demo ad-campaign schema, production_etl_preview
dry-runs the demo mapping (nothing written), production_etl loads it
(full load, then a safe schema change + incremental load), then production_etl_rollback lists the versioned
backups."""

from __future__ import annotations

ORDER = 10
DB = "bravo-1"


def run(ctx) -> list[dict]:
    from ferry import storage
    from ferry.etl import mapping
    from ferry.etl.load import merge
    from ferry.etl.names import meta_db
    from ferry_dev import dagtest
    from ferry_dev import etl_demodata as demodata

    with ctx.stack.pg.connect(ctx.pg_db) as conn:
        conn.execute("DROP TABLE IF EXISTS campaign_tags, line_items, campaigns, accounts CASCADE")
        demodata.create_schema(conn)
        counts = demodata.seed(conn, accounts=100, campaigns_per=3, items_per=4, tags_per=2)
    dr = ctx.run_dag("production_etl_scaffold", {"pg_schema": "public", "output_url": None})
    drafted = dagtest.xcom(dr, "scaffold")
    draft = mapping.parse(storage.read_text(drafted["url"]), drafted["url"])
    kinds = sorted(f"{r['kind']} {r.get('table') or r['column']}" for c in draft["collections"] for r in c["relations"])
    ctx.notes.append(f"production_etl_scaffold: the draft mapping of the demo source is at {drafted['url']}")
    with ctx.stack.mongo_client("local") as client:
        for name in (DB, meta_db(DB)):
            client.drop_database(name)
        before = sorted(client.list_database_names())
        dr = ctx.run_dag("production_etl_preview", {"mapping": "include/etl/demo_mapping.yaml"})
        tried = dagtest.xcom(dr, "preview")["collections"]
        assert sorted(client.list_database_names()) == before, "the dry run wrote a database"
    conf = {
        "mongo_db": DB,
        "bucket": ctx.bucket,
        "source": "direct",
        "refresh_strategy": "full",
        "schema_change_policy": "auto_safe",
        "batch_size": 100,
    }
    dr = ctx.run_dag("production_etl", conf)
    full = merge(dagtest.xcom(dr, "load"))["collections"]

    with ctx.stack.pg.connect(ctx.pg_db) as conn:  # a safe change: a new nullable column
        conn.execute(
            "ALTER TABLE campaigns ADD COLUMN performance_score numeric(5, 2);"
            "UPDATE campaigns SET performance_score = 4.5 WHERE id % 10 = 0"
        )
    dr = ctx.run_dag("production_etl", {**conf, "refresh_strategy": "incremental"})
    inc = merge(dagtest.xcom(dr, "load"))["collections"]
    detected = dagtest.xcom(dr, "detect_schema")
    planned = dagtest.xcom(dr, "plan")
    dr = ctx.run_dag("production_etl_rollback", {"mongo_db": DB, "version": None})
    versions = dagtest.xcom(dr, "list_versions")
    ctx.notes.append(
        f"production_etl: MongoDB database {DB!r} on the local server; backups: "
        + ", ".join(v["version"] for v in versions)
    )
    return [
        {
            "dag": "production_etl_scaffold",
            "result": f"drafted {', '.join(drafted['collections'])}: " + "; ".join(kinds),
        },
        {
            "dag": "production_etl_preview",
            "result": "dry run (nothing written): "
            + ", ".join(
                f"{c['collection']} {c['documents']} documents, largest {c['largest_bytes']:,} B" for c in tried
            ),
        },
        {
            "dag": "production_etl",
            "result": (
                f"full: PostgreSQL {counts['accounts']} accounts / {counts['campaigns']} campaigns / "
                f"{counts['line_items']} line items / {counts['campaign_tags']} tags -> "
                f"{full['accounts']['documents']} account + {full['campaigns']['documents']} campaign documents"
            ),
        },
        {
            "dag": "production_etl",
            "result": (
                f"schema change ({detected['summary']['safe']} safe, {detected['summary']['breaking']} breaking) "
                f"-> {planned['decision']['action']} "
                f"({'; '.join(a['action'] for a in planned['decision']['mapping_changes'])}); incremental wrote "
                f"{inc['campaigns']['written']} campaigns, {inc['accounts']['written']} accounts"
            ),
        },
        {
            "dag": "production_etl_rollback",
            "result": f"{len(versions)} backup versions listed: " + ", ".join(v["version"] for v in versions),
        },
    ]
