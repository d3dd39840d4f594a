"""Every DAG's params as the trigger form treats them: the defaults alone are a valid trigger (no field the form
would mark required and leave empty), arrays of allowed values are multi-selects, days are dates, and every
documented "empty means X" can be sent from the form (null) and reaches the documented default."""

from __future__ import annotations

from datetime import UTC

import pytest

from ferry_dev.devstack import REPO_ROOT


@pytest.fixture(scope="module")
def dags():
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def _types(schema: dict) -> set[str]:
    t = schema.get("type")
    return set(t) if isinstance(t, list) else {t} if t else set()


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or value == {}


def test_defaults_leave_no_required_field_empty(dags):
    """The form marks a param required when its schema does not admit null; such a param must have a value."""
    problems = []
    for dag_id, dag in sorted(dags.items()):
        for name, param in dag.params.items():
            schema = param.schema
            if _empty(param.value) and "null" not in _types(schema):
                problems.append(f"{dag_id}.{name}: default {param.value!r} but schema {schema} does not admit null")
    assert problems == []


def test_defaults_validate_as_a_trigger_with_no_conf(dags):
    for _dag_id, dag in sorted(dags.items()):
        dag.params.validate()  # raises ParamValidationError naming the param


def test_optional_params_accept_null_as_the_form_sends_for_an_empty_field(dags):
    checked = 0
    for dag_id, dag in sorted(dags.items()):
        for name, param in dag.params.items():
            if "null" in _types(param.schema):
                assert dag.params.get_param(name).resolve(None) is None, f"{dag_id}.{name}"
                checked += 1
    assert checked >= 20


def test_arrays_of_allowed_values_are_multi_selects_and_days_are_dates(dags):
    for dag_id, dag in sorted(dags.items()):
        for name, param in dag.params.items():
            schema = param.schema
            if "array" in _types(schema) and "enum" in (schema.get("items") or {}):
                assert schema.get("uniqueItems") is True, f"{dag_id}.{name}: a multi-select needs uniqueItems"
                # the form's multi-select takes its options from the schema's own examples (or enum)
                assert schema.get("examples") == schema["items"]["enum"], f"{dag_id}.{name}: no multi-select"
            if name.endswith("_date"):
                assert schema.get("format") == "date", f"{dag_id}.{name} should be a date field"
    assert dags["prod_promotion"].params.get_param("filter").schema["type"] == ["null", "object"]


@pytest.mark.parametrize(
    "dag_id,name",
    [
        ("production_etl", "source_name"),
        ("production_etl", "s3_key"),
        ("production_etl", "backup_url"),
        ("production_etl_rollback", "version"),
        ("prod_promotion", "confirm"),
        ("prod_promotion", "filter"),
        ("prod_promotion", "report_url"),
        ("prod_promotion_rollback", "promotion_id"),
        ("nightly_sales_sync", "target_date"),
        ("nightly_sales_sync", "api_profile"),
        ("sales_manual_load", "target_date"),
        ("sales_manual_load", "rules_path"),
        ("sales_health_check", "end_date"),
        ("sales_backup", "backup_dir"),
        ("ferry_smoke", "run_key"),
        ("dataset_promotion", "datasets"),
    ],
)
def test_documented_empty_defaults_are_reachable(dags, dag_id, name):
    param = dags[dag_id].params.get_param(name)
    assert param.value is None and "null" in _types(param.schema), param.schema
    assert "Empty" in param.description or "empty" in param.description.lower() or "Required" in param.description


def test_empty_means_the_documented_default():
    """What the library does with an empty (null) param: the documented default."""
    from datetime import datetime

    from ferry import report, storage
    from ferry.etl import runs
    from ferry.etl.names import backup_location
    from ferry.promotion import filters
    from ferry.sales.runs import days_for_run

    assert runs.EtlRequest.of({"source_name": None}).lineage_name == "demo_mapping"
    assert backup_location(None) == storage.join(storage.root(), "etl-backups")
    assert filters.parse(None, ["companies"]) == {"companies": {}}
    start = datetime(2024, 1, 15, 2, tzinfo=UTC)
    assert days_for_run(target_date=None, days=1, data_interval_start=start, run_after=None) == ["2024-01-15"]
    assert report.location("promotion", "manual__x").endswith("/reports/promotion/manual__x")
