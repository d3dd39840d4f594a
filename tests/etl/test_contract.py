"""Consumer contracts checked by the real tools: every document loaded from the demo source parses with the
generated Zod schemas (on Node) and validates against the generated JSON Schema (``jsonschema``); ``tsc
--noEmit --strict`` passes on the TypeScript and Zod files; the OpenAPI document passes
``openapi-spec-validator``; after a breaking change the old Zod schema rejects a new document and the new one
accepts it, and the impact table says so."""

from __future__ import annotations

import json

import pytest

from tests.etl.conftest import run_etl

pytestmark = pytest.mark.integration


def _ejson(doc: dict) -> dict:
    from bson import json_util

    return json.loads(json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS))


def _contract(result: dict, version: str):
    from ferry.etl import contract

    eff, snap = result["planned"]["effective_mapping"], result["planned"]["snapshot"]
    return contract.shapes(eff, snap), contract.render(eff, snap, "demo", version)


def _documents(client, db: str, model) -> list[tuple[str, dict]]:
    return [(model[name].name, _ejson(d)) for name in model for d in client[db][name].find().sort("_id", 1)]


@pytest.fixture
def workspace():
    from ferry_dev.node_tools import Workspace

    made = []

    def make(files: dict[str, str]):
        ws = Workspace.create(files)
        made.append(ws)
        return ws

    yield make
    for ws in made:
        ws.close()


def test_every_loaded_document_fits_every_artifact(demo_pg, mongo_local, mongo_db_name, tmp_path, workspace):
    import jsonschema
    from openapi_spec_validator import validate

    res = run_etl(demo_pg.conn, mongo_local, mongo_db_name, tmp_path)
    model, files = _contract(res, "1")
    docs = _documents(mongo_local, mongo_db_name, model)
    assert len(docs) == sum(mongo_local[mongo_db_name][c].count_documents({}) for c in model) > 60

    validate(json.loads(files["openapi.json"]))
    for name in model:
        schema = json.loads(files[f"jsonschema/{name}.schema.json"])
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for d in mongo_local[mongo_db_name][name].find():
            errors = [e.message for e in validator.iter_errors(_ejson(d))]
            assert errors == [], (name, d["_id"], errors)

    ws = workspace({"types.d.ts": files["types.d.ts"], "zod.ts": files["zod.ts"]})
    checked = ws.tsc("types.d.ts", "zod.ts")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    parsed = ws.zod_parse("zod.ts", docs)
    assert [r for r in parsed if not r["ok"]] == [] and len(parsed) == len(docs)

    campaign = next(d for t, d in docs if t == "Campaigns")
    wrong = {**campaign, "name": 42}
    missing = {k: v for k, v in campaign.items() if k != "lineItems"}
    bad = ws.zod_parse("zod.ts", [("Campaigns", wrong), ("Campaigns", missing)])
    assert not bad[0]["ok"] and bad[0]["issues"][0]["path"] == "name"
    assert not bad[1]["ok"] and bad[1]["issues"][0]["path"] == "lineItems"


def test_a_breaking_change_old_zod_rejects_new_documents(demo_pg, mongo_local, mongo_db_name, tmp_path, workspace):
    from ferry.etl import contract

    first = run_etl(demo_pg.conn, mongo_local, mongo_db_name, tmp_path / "1")
    old_model, old_files = _contract(first, "1")
    demo_pg.conn.execute("ALTER TABLE accounts ALTER COLUMN balance TYPE text")  # numeric -> text: breaking
    demo_pg.conn.execute("ALTER TABLE accounts ADD COLUMN notes text")  # nullable: additive
    demo_pg.conn.commit()
    second = run_etl(demo_pg.conn, mongo_local, mongo_db_name, tmp_path / "2", policy="apply_all", run_id="t2")
    new_model, new_files = _contract(second, "2")

    rows = {(i.collection, i.path): i for i in contract.impact(old_model, new_model)}
    assert rows[("accounts", "balance")].breaking and rows[("accounts", "balance")].change == "type changed"
    assert not rows[("accounts", "notes")].breaking and rows[("accounts", "notes")].change == "field added"
    assert contract.impact(new_model, new_model) == []

    account = next(d for t, d in _documents(mongo_local, mongo_db_name, new_model) if t == "Accounts")
    assert isinstance(account["balance"], str | None)
    account = {**account, "balance": "12.50"}  # a document the new contract describes
    old = workspace({"zod.ts": old_files["zod.ts"]}).zod_parse("zod.ts", [("Accounts", account)])
    new = workspace({"zod.ts": new_files["zod.ts"]}).zod_parse("zod.ts", [("Accounts", account)])
    assert not old[0]["ok"] and old[0]["issues"][0]["path"] == "balance"
    assert new[0]["ok"]

    _check_the_store(first["planned"], second["planned"], str(tmp_path / "storage"))


def _check_the_store(first: dict, second: dict, root: str):
    """Versions by URL: staged (idempotent) without moving ``latest``, pointed, compared, pointed back."""
    from ferry import storage
    from ferry.etl import contract_store as cs

    one = cs.stage("shop", first["effective_mapping"], first["snapshot"], schema_version=1, root=root)
    assert cs.latest("shop", root=root) is None  # staging never moves the pointer
    assert cs.stage("shop", first["effective_mapping"], first["snapshot"], schema_version=1, root=root) == one
    cs.point("shop", one.version, root=root)
    two = cs.stage("shop", second["effective_mapping"], second["snapshot"], schema_version=2, root=root)
    assert two.version != one.version and two.version.startswith("s2-")
    assert cs.latest("shop", root=root)["version"] == one.version
    impacts, rows = cs.compare(cs.manifest("shop", one.version, root=root), two)
    by_file = {r["artifact"]: r for r in rows}
    assert by_file["jsonschema/accounts.schema.json"] == {
        "artifact": "jsonschema/accounts.schema.json",
        "changed": "yes",
        "consumers": "BREAKING",
    }
    assert by_file["jsonschema/campaigns.schema.json"]["changed"] == "no"
    assert by_file["zod.ts"]["consumers"] == "BREAKING"
    assert cs.point("shop", two.version, root=root)["version"] == two.version
    assert cs.versions("shop", root=root) == [one.version, two.version]
    cs.point("shop", one.version, root=root)  # a rollback puts the old contract back
    pointed = cs.latest("shop", root=root)
    assert storage.read_text(storage.join(pointed["url"], "zod.ts"), s3=None) == contract_files(first, one.version)


def contract_files(planned: dict, version: str) -> str:
    from ferry.etl import contract

    return contract.render(planned["effective_mapping"], planned["snapshot"], "Ferry shop", version)["zod.ts"]


def test_the_model_round_trips_through_json():
    from ferry.etl import contract

    shape = contract.Shape(
        "Things",
        (
            contract.Field("_id", ("int", "long")),
            contract.Field("tags", ("array",), True, items=("string",)),
            contract.Field(
                "part",
                ("object",),
                True,
                False,
                shape=contract.Shape("ThingsPart", (contract.Field("x", ("double",)),)),
            ),
        ),
    )
    model = {"things": shape}
    assert contract.from_json(json.loads(json.dumps(contract.to_json(model)))) == model


def test_type_names_are_identifiers():
    from ferry.etl.contract import type_name

    assert type_name("line_items") == "LineItems"
    assert type_name("campaigns", "lineItems") == "CampaignsLineItems"
    assert type_name("2024-sales") == "T2024Sales"
