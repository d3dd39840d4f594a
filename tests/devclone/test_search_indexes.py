"""Search / Vector Search indexes from a recorded real $listSearchIndexes output.

The wire server has no search support (it answers code 115): the "supported" path runs against a
small stand-in for an Atlas deployment that records commands; the "unsupported" path against the
real server, asserting the exact ``createSearchIndexes`` command and the hand-over report.
"""

from __future__ import annotations

import json
import os

import pytest

from ferry.devclone import clone, search_indexes, structure
from tests.devclone.conftest import load_fixture

VECTOR_EVENTS = {
    "name": "vector_index_loop_events",
    "type": "vectorSearch",
    "definition": {
        "fields": [
            {"type": "vector", "path": "embedding", "numDimensions": 1536, "similarity": "cosine"},
            {"type": "filter", "path": "event_type"},
        ]
    },
}


def _recorded() -> dict[str, list[dict]]:
    return load_fixture("alphasync_db.listSearchIndexes.json")["collections"]


class _Coll:
    def __init__(self, atlas, name):
        self.atlas, self.name = atlas, name

    def list_search_indexes(self, name=None):
        return [x for x in self.atlas.indexes.get(self.name, []) if name in (None, x["name"])]

    def aggregate(self, pipeline, **kw):
        self.atlas.commands.append({"aggregate": self.name, "pipeline": pipeline, **kw})
        return iter([])


class _AtlasStandIn:
    """Answers createSearchIndexes; indexes become queryable after ``ready_after`` polls."""

    def __init__(self, ready_after: int = 2, existing: dict | None = None):
        self.name = "alphasync_db_dev"
        self.indexes = existing or {}
        self.commands: list[dict] = []
        self.polls = 0
        self.ready_after = ready_after

    def command(self, cmd):
        self.commands.append(cmd)
        coll = cmd["createSearchIndexes"]
        for d in cmd["indexes"]:
            self.indexes.setdefault(coll, []).append({**d, "latestDefinition": d["definition"], "queryable": False})
        return {"ok": 1}

    def __getitem__(self, coll):
        self.polls += 1
        if self.polls > self.ready_after:
            for x in self.indexes.get(coll, []):
                x["queryable"] = True
        return _Coll(self, coll)


def test_recorded_output_normalises_to_definitions():
    events = [search_indexes.normalize(r) for r in _recorded()["events"]]
    assert events == [VECTOR_EVENTS]
    companies = {d["name"]: d for d in (search_indexes.normalize(r) for r in _recorded()["companies"])}
    assert companies["companies_search"]["type"] == "search"
    assert companies["companies_search"]["definition"]["mappings"]["fields"]["aliases"] == {"type": "autocomplete"}


def test_create_on_a_search_capable_target_sends_one_command_and_waits_until_queryable():
    atlas = _AtlasStandIn(ready_after=2)
    defs = [search_indexes.normalize(r) for r in _recorded()["companies"]]
    naps = []
    res = search_indexes.create(atlas, "companies", defs, timeout=60, poll=1, sleep=naps.append)
    assert res == {"status": "created", "error": None, "pending": []}
    assert atlas.commands == [
        {
            "createSearchIndexes": "companies",
            "indexes": [
                {
                    "name": "vector_index",
                    "type": "vectorSearch",
                    "definition": {
                        "fields": [
                            {"type": "vector", "path": "embedding", "numDimensions": 1536, "similarity": "cosine"}
                        ]
                    },
                },
                {
                    "name": "companies_search",
                    "type": "search",
                    "definition": {
                        "mappings": {
                            "dynamic": False,
                            "fields": {
                                "name": {"type": "string", "analyzer": "lucene.standard"},
                                "aliases": {"type": "autocomplete"},
                            },
                        }
                    },
                },
            ],
        }
    ]
    assert naps == [1, 1]  # polled until queryable


def test_create_gives_up_after_the_timeout():
    atlas = _AtlasStandIn(ready_after=10**6)
    res = search_indexes.create(atlas, "events", [VECTOR_EVENTS], timeout=0, poll=0, sleep=lambda s: None)
    assert res["status"] == "timeout" and res["pending"] == ["vector_index_loop_events"]


def test_vector_probe_sends_a_vector_search_of_the_right_dimension():
    atlas = _AtlasStandIn()
    assert search_indexes.vector_probe(_Coll(atlas, "events"), VECTOR_EVENTS) == "ok"
    stage = atlas.commands[0]["pipeline"][0]["$vectorSearch"]
    assert stage["index"] == "vector_index_loop_events" and stage["path"] == "embedding"
    assert len(stage["queryVector"]) == 1536 and stage["limit"] == 1


@pytest.mark.integration
def test_unsupported_target_gets_the_exact_command_then_a_manual_report(
    mongo_prod, mongo_db_name, command_recorder, stack, tmp_path
):
    src = mongo_prod[mongo_db_name]
    for name in ("events", "companies", "emails"):
        src.create_collection(name)
    recorded = _recorded()

    def reader(coll):  # the source's answers, as recorded on Atlas
        return [search_indexes.normalize(r) for r in recorded.get(coll.name, [])], None

    client, rec = command_recorder(stack.mongo_prod_uri)
    target = client[mongo_db_name + "_dev"]
    res = clone.clone_database(
        client[mongo_db_name],
        target,
        clone.CloneOptions(dry_run=False),
        report_url=tmp_path / "report",
        search_reader=reader,
    )
    assert res.failures == []  # not a failure: handed over to a person
    sent = [c for n, _, c in rec.commands if n == "createSearchIndexes"]
    assert [{k: c[k] for k in ("createSearchIndexes", "indexes")} for c in sent] == [
        search_indexes.create_command("companies", [search_indexes.normalize(r) for r in recorded["companies"]]),
        search_indexes.create_command("events", [VECTOR_EVENTS]),
    ]
    rows = {r["object"]: r for r in res.rows if r["kind"].startswith("search/")}
    assert {n: (r["action"], r["status"]) for n, r in rows.items()} == {
        "vector_index": ("create", "manual"),
        "companies_search": ("create", "manual"),
        "vector_index_loop_events": ("create", "manual"),
    }
    assert "(code 115)" in rows["vector_index"]["error"] or os.environ.get("MONGO_URI")  # real mongod: 31082
    md = (tmp_path / "report" / "SEARCH_INDEXES.md").read_text()
    assert (
        "atlas clusters search indexes create --clusterName <CLUSTER> --file "
        f"{mongo_db_name}_dev.events.vector_index_loop_events.json" in md
    )
    assert rows["vector_index"]["error"] in md and "Atlas UI" in md
    atlas_file = json.loads(
        (tmp_path / "report" / f"{mongo_db_name}_dev.events.vector_index_loop_events.json").read_text()
    )
    assert atlas_file == {
        "name": "vector_index_loop_events",
        "database": f"{mongo_db_name}_dev",
        "collectionName": "events",
        "type": "vectorSearch",
        **VECTOR_EVENTS["definition"],
    }
    # reading the source's search indexes on this server: code 115 → "none read", no error
    defs, why = search_indexes.read(mongo_prod[mongo_db_name].events)
    assert defs == [] and why
    assert structure.read_structure(target)["collections"].keys() == {"events", "companies", "emails"}
    # a rerun onto the same target: it says it cannot list search indexes, so none is sent again; the
    # definitions are handed over again in the report
    before = len(rec.commands)
    again = clone.clone_database(
        client[mongo_db_name],
        target,
        clone.CloneOptions(dry_run=False),
        report_url=tmp_path / "report2",
        search_reader=lambda c: reader(c) if c.database.name == mongo_db_name else search_indexes.read(c),
    )
    assert [n for n, _, _ in rec.commands[before:] if n == "createSearchIndexes"] == []
    assert {r["object"]: r["status"] for r in again.rows if r["kind"].startswith("search/")} == {
        "vector_index": "manual",
        "companies_search": "manual",
        "vector_index_loop_events": "manual",
    }
    assert again.failures == [] and (tmp_path / "report2" / "SEARCH_INDEXES.md").exists()


def test_apply_search_on_a_capable_target_creates_and_probes():
    atlas = _AtlasStandIn(ready_after=0)
    rows = clone.plan_clone(
        {"database": "alphasync_db", "collections": {"events": {"type": "collection", "options": {}, "indexes": {}}}},
        {
            "database": "alphasync_db_dev",
            "collections": {"events": {"type": "collection", "options": {}, "indexes": {}}},
        },
        source_search={"events": [VECTOR_EVENTS]},
        target_search={},
    )
    assert [(r["object"], r["action"]) for r in rows] == [("events", "exists"), ("vector_index_loop_events", "create")]
    failures, report, sent = clone.apply_search(
        atlas, rows, report_url=None, timeout=5, verify_vector_search=True, sleep=lambda s: None
    )
    assert failures == [] and report is None and sent == 1
    assert rows[1]["status"] == "created, $vectorSearch probe: ok"
    assert atlas.commands[0] == search_indexes.create_command("events", [VECTOR_EVENTS])
    assert "$vectorSearch" in atlas.commands[1]["pipeline"][0]
    # the same definition already on the target: nothing to do
    again = clone.plan_clone(
        {"database": "a", "collections": {"events": {"type": "collection", "options": {}, "indexes": {}}}},
        {"database": "b", "collections": {"events": {"type": "collection", "options": {}, "indexes": {}}}},
        source_search={"events": [VECTOR_EVENTS]},
        target_search={"events": [VECTOR_EVENTS]},
    )
    assert [r["action"] for r in again] == ["exists", "exists"]


def test_search_drift_rows():
    other = {**VECTOR_EVENTS, "definition": {"fields": [VECTOR_EVENTS["definition"]["fields"][0]]}}
    from ferry.devclone import drift

    rows = drift.search_diff(
        {"events": [VECTOR_EVENTS], "companies": [{"name": "s", "type": "search", "definition": {}}]},
        {"events": [other], "infos": [{"name": "x", "type": "search", "definition": {}}]},
    )
    assert [(r["collection"], r["item"], r["change"]) for r in rows] == [
        ("companies", "search index s", "missing"),
        ("events", "search index vector_index_loop_events", "different"),
        ("infos", "search index x", "extra"),
    ]


@pytest.mark.integration
def test_drift_check_notes_search_indexes_it_cannot_verify(mongo_prod, mongo_db_name):
    from ferry.devclone import drift

    src = mongo_prod[mongo_db_name]
    src.create_collection("events")
    clone.clone_database(src, mongo_prod[mongo_db_name + "_dev"], clone.CloneOptions(dry_run=False))

    def reader(coll):  # the source answers like Atlas, the clone's server has no search (code 115)
        if coll.database.name == mongo_db_name:
            return [VECTOR_EVENTS] if coll.name == "events" else [], None
        return search_indexes.read(coll)

    res = drift.check(src, mongo_prod[mongo_db_name + "_dev"], include_search=True, search_reader=reader)
    assert res.rows == [] and len(res.notes) == 1 and "1 search index(es) not verified" in res.notes[0]
