"""MongoIndexCloneOperator argument handling (templated params arrive as native values or strings)."""

from __future__ import annotations

import pytest

from ferry.operators.mongo_index_clone import MongoIndexCloneOperator
from ferry.operators.mongo_structure import as_list
from ferry.params import truthy as as_bool


@pytest.mark.parametrize("raw,want", [(True, True), ("False", False), ("true", True), ("0", False), ("", False)])
def test_as_bool(raw, want):
    assert as_bool(raw, "dry_run") is want


def test_as_bool_rejects_garbage():
    with pytest.raises(ValueError, match="dry_run='maybe' is not a boolean"):
        as_bool("maybe", "dry_run")


def test_as_list():
    assert as_list(["a", "b"], "x") == ["a", "b"]
    assert as_list('["alphasync_db", "STKFeed"]', "x") == ["alphasync_db", "STKFeed"]
    assert as_list("alphasync_db, STKFeed", "x") == ["alphasync_db", "STKFeed"]
    with pytest.raises(ValueError, match="source_databases=3 is not a list"):
        as_list(3, "source_databases")


def test_operator_defaults_are_safe():
    op = MongoIndexCloneOperator(task_id="t", source_databases=["alphasync_db"])
    opts = op.options()
    assert opts.dry_run is True and opts.drop_extra_indexes is False and opts.allow_nonempty_target is False
    assert opts.target_suffix == "_dev"
    assert (op.source_conn_id, op.target_conn_id) == ("ferry_mongo_prod", "ferry_mongo_dev")
    assert "plan_only" in op.template_fields and "source_databases" in op.template_fields


def test_dry_run_argument_is_templated_and_leaves_baseoperator_dry_run_alone():
    op = MongoIndexCloneOperator(task_id="t", source_databases=["alphasync_db"], dry_run="{{ params.dry_run }}")
    assert callable(op.dry_run)  # BaseOperator.dry_run(), not shadowed by the argument
    op.render_template_fields({"params": {"dry_run": False}})
    assert op.plan_only == "False" and op.options().dry_run is False
