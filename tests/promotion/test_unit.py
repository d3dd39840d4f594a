"""Pure promotion logic: filter guard, config errors, decisions, reference remap, guards."""

from __future__ import annotations

from datetime import datetime

import pytest

from ferry.promotion import config, filters
from ferry.promotion.guards import PromotionRefused, check_guards, deployment, next_tasks
from ferry.promotion.plan import ParentRef, decide, natural_key, remap

ALL = ["companies", "documents", "meta_summaries"]


@pytest.mark.parametrize(
    "raw, where",
    [
        ({"$where": "this.a == 1"}, "filter.$where"),
        ({"a": {"$elemMatch": {"$function": {"body": "x"}}}}, "filter.a.$elemMatch.$function"),
        ({"$or": [{"a": 1}, {"$expr": {"$accumulator": {}}}]}, "filter.$or[1].$expr.$accumulator"),
        ('{"companies": {"$and": [{"$where": "1"}]}}', "filter.companies.$and[0].$where"),
    ],
)
def test_filter_refuses_javascript_operators_anywhere(raw, where):
    with pytest.raises(filters.FilterError, match="not allowed") as exc:
        filters.parse(raw, ALL)
    assert where in str(exc.value)


def test_filter_global_and_per_collection():
    assert filters.parse("", ALL) == {c: {} for c in ALL}
    assert filters.parse('{"domain": "a.com"}', ["companies"]) == {"companies": {"domain": "a.com"}}
    per = filters.parse({"companies": {"domain": "a.com"}}, ["documents"], known=ALL)
    assert per == {"documents": {}}
    with pytest.raises(filters.FilterError, match="not valid JSON"):
        filters.parse("{nope", ALL)
    with pytest.raises(filters.FilterError, match="JSON object"):
        filters.parse("[1]", ALL)


def test_config_file_loads_and_errors_name_the_field(tmp_path):
    cfg = config.load()
    assert list(cfg.collections) == ALL
    assert cfg.collections["meta_summaries"].key == ("company_id", "kind")
    assert cfg.collections["documents"].refs == {"company_id": "companies"}
    bad = tmp_path / "p.yaml"
    bad.write_text("collections:\n  documents:\n    key: [url]\n    refs: {company_id: companies}\n")
    with pytest.raises(config.ConfigError, match=r"p.yaml: collections.documents.refs.company_id: parent 'companies'"):
        config.load(bad)
    bad.write_text("collections:\n  companies:\n    key: []\n")
    with pytest.raises(config.ConfigError, match="collections.companies.key"):
        config.load(bad)
    bad.write_text("collections:\n  companies:\n    key: [domain]\n    types: {domain: string}\n")
    with pytest.raises(config.ConfigError, match=r"types.domain: unknown type\(s\) \['string'\]"):
        config.load(bad)
    with pytest.raises(config.ConfigError, match="unknown collection"):
        cfg.ordered(["users"])


def test_ordered_puts_parents_first():
    cfg = config.load()
    assert [s.name for s in cfg.ordered(["meta_summaries", "companies"])] == ["companies", "meta_summaries"]


SPEC = config.load().collections["companies"]
OLD, NEW = datetime(2026, 1, 1), datetime(2026, 2, 1)


def test_decide_each_action():
    doc = {"_id": "L", "domain": "a.com", "name": "A", "updated_at": NEW}
    assert decide(SPEC, doc, None, "skip").action == "insert"
    prod = {"_id": "P", "domain": "a.com", "name": "A0", "updated_at": OLD}
    a = decide(SPEC, doc, prod, "skip")
    assert (a.action, a.target_id) == ("skip", "P") and "duplicate by natural key" in a.reason
    a = decide(SPEC, doc, prod, "update_if_newer")
    assert a.action == "update" and a.doc["_id"] == "P" and a.before == prod
    assert decide(SPEC, {**doc, "updated_at": OLD}, prod, "update_if_newer").action == "skip"
    assert decide(SPEC, {**doc, "updated_at": None}, prod, "update_if_newer").action == "skip"
    assert decide(SPEC, doc, prod, "overwrite").action == "overwrite"
    assert decide(SPEC, {**doc, "_id": "X"}, {**doc, "_id": "P"}, "overwrite").reason == "identical"
    with pytest.raises(ValueError, match="on_conflict"):
        decide(SPEC, doc, prod, "merge")


def test_natural_key_and_remap():
    docs_spec = config.load().collections["documents"]
    assert natural_key(SPEC, {"domain": ""}) == "missing natural key field 'domain'"
    assert natural_key(SPEC, {"domain": "a"}) == ("a",)
    parents = {"companies": {"L1": ParentRef("P1"), "L2": ParentRef(None, "parent companies missing on both sides")}}
    out, why = remap(docs_spec, {"_id": 1, "url": "u", "company_id": "L1"}, parents)
    assert out["company_id"] == "P1" and why == ""
    _, why = remap(docs_spec, {"_id": 2, "url": "u", "company_id": "L2"}, parents)
    assert "missing on both sides" in why


def test_guards():
    a = deployment("localhost", 27017)
    assert a == deployment("127.0.0.1:27017", None)
    with pytest.raises(PromotionRefused, match="same deployment"):
        check_guards(mode="dry_run", confirm="", source=a, target=a, source_db="clausea", target_db="clausea")
    check_guards(mode="dry_run", confirm="", source=a, target=a, source_db="local", target_db="clausea")
    check_guards(mode="dry_run", confirm="", source=a, target=deployment("h2", 1), source_db="c", target_db="c")
    with pytest.raises(PromotionRefused, match="set confirm to exactly 'clausea'"):
        check_guards(
            mode="execute", confirm="prod", source=a, target=deployment("h2", 1), source_db="c", target_db="clausea"
        )


def test_one_confirmation_rule_for_every_production_write():
    from ferry.promotion.guards import require_confirmation

    require_confirmation("the rollback", "clausea", "clausea")
    for given in ("", "Clausea", "clausea ", "prod"):
        with pytest.raises(PromotionRefused) as err:
            require_confirmation("the rollback", given, "clausea")
        assert str(err.value) == (
            f"the rollback writes to production database 'clausea': set confirm to exactly 'clausea' "
            f"(got {given!r}); nothing was written"
        )


def test_branch_after_planning():
    assert next_tasks("summary", True) == [] and next_tasks("dry_run", False) == []
    assert next_tasks("execute", False) == ["execute"]
    assert next_tasks("execute", True) == ["approve"]


def test_approval_step_shows_the_summary_table():
    from ferry_dev.dagtest import dagbag

    dag = dagbag().dags["prod_promotion"]  # parsed only: no metadata database needed
    approve = dag.get_task("approve")
    assert approve.options == ["Approve", "Reject"]
    assert "xcom_pull(task_ids='plan')['table']" in approve.body
    assert dag.get_task("execute").trigger_rule == "none_failed_min_one_success"
