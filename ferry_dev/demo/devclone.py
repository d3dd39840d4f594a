"""Demo step: clone the structure of a production-like ``alphasync_db`` into ``alphasync_db_dev``, then check drift.

The source mirrors the indexes listed in the dev-database plan (chunks, emails, events, ...).
Text indexes and Atlas Vector Search indexes are left out of the demo source because the local
wire server cannot hold them; the tests cover them from recorded real server outputs.
"""

from __future__ import annotations

ORDER = 30
SOURCE = "alphasync_db"

INDEXES = {
    "chunks": [
        {"key": {"has_events": 1}, "name": "idx_chunks_has_events"},
        {"key": {"has_events": 1, "was_processed_events": 1}, "name": "idx_chunks_has_events_was_processed"},
        {"key": {"document_id": 1, "document_collection": 1}, "name": "idx_chunks_document"},
        {"key": {"published_at": -1}, "name": "idx_chunks_published_at"},
    ],
    "emails": [
        {"key": {"message_id": 1}, "name": "idx_emails_message_id", "unique": True},
        {"key": {"received_at": -1}, "name": "idx_emails_received_at"},
    ],
    "events": [
        {"key": {"companies_ids": 1}, "name": "companies_ids_1"},
        {"key": {"chunk_ids": 1}, "name": "chunk_ids_1"},
        {"key": {"date": 1}, "name": "date_1"},
        {"key": {"event_type": 1}, "name": "event_type_1"},
        {"key": {"event_type": 1, "date": 1}, "name": "event_type_1_date_1"},
        {"key": {"companies_ids": 1, "date": 1}, "name": "idx_events_companies_date"},
    ],
    "companies": [{"key": {"name": 1}, "name": "companies_name_ci", "collation": {"locale": "en", "strength": 2}}],
    "sources": [{"key": {"url": 1}, "name": "sources_url_unique", "unique": True, "sparse": True}],
    "infos": [{"key": {"fetched_at": 1}, "name": "infos_ttl", "expireAfterSeconds": 7776000}],
}


def seed(db) -> None:
    """Create the demo source (idempotent: existing collections and identical indexes are kept)."""
    existing = set(db.list_collection_names())
    if "emails" not in existing:
        db.create_collection("emails", validator={"$jsonSchema": {"bsonType": "object", "required": ["message_id"]}})
    for coll, specs in INDEXES.items():
        db.command({"createIndexes": coll, "indexes": specs})
    for i in range(5):
        db.emails.replace_one({"_id": i}, {"_id": i, "message_id": f"m{i}", "received_at": i}, upsert=True)
        db.chunks.replace_one({"_id": i}, {"_id": i, "document_id": i, "has_events": i % 2 == 0}, upsert=True)


def run(ctx) -> list[dict]:
    from ferry_dev import dagtest

    with ctx.stack.mongo_client("prod") as client:
        seed(client[SOURCE])
    dr = ctx.run_dag(
        "dev_db_structure_clone", {"source_databases": [SOURCE], "dry_run": False, "include_search_indexes": True}
    )
    s = dagtest.xcom(dr, "clone_structure")[0]
    dr = ctx.run_dag("dev_db_drift_check", {"source_databases": [SOURCE]})
    d = dagtest.xcom(dr, "drift_check")[0]
    with ctx.stack.mongo_client("prod") as client:
        docs = sum(client[s["target"]][c].count_documents({}) for c in client[s["target"]].list_collection_names())
    ctx.notes.append(
        f"{SOURCE}_dev has the structure of {SOURCE} and no documents; apps switch with USE_DEV_MONGO_DB=true"
    )
    return [
        {
            "dag": "dev_db_structure_clone",
            "result": f"{s['source']} → {s['target']}: created {s['create']}, exists {s['exists']}, "
            f"write commands {s['write_commands']}, failures {s['failures']}, documents in clone {docs}",
        },
        {"dag": "dev_db_drift_check", "result": f"{d['target']}: {d['differences']} difference(s)"},
    ]
