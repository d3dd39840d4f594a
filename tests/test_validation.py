import pandas as pd
import pytest

from ferry.validation import ValidationFailed, validate


def test_validate_reports_every_expectation_and_failing_rows():
    df = pd.DataFrame({"id": [1, 2, 2, None], "qty": [1, 0, 3, 4]})
    res = validate(
        df,
        [
            ("ExpectColumnValuesToNotBeNull", {"column": "id"}),
            ("ExpectColumnValuesToBeUnique", {"column": "id"}),
            ("ExpectColumnValuesToBeBetween", {"column": "qty", "min_value": 1}),
        ],
        name="t",
    )
    assert not res.success
    assert [r["success"] for r in res.rows] == [False, False, False]
    assert res.failed_indexes["expect_column_values_to_not_be_null:id"] == [3]
    assert sorted(res.failed_indexes["expect_column_values_to_be_unique:id"]) == [1, 2]
    assert res.failed_indexes["expect_column_values_to_be_between:qty"] == [1]
    with pytest.raises(ValidationFailed, match="failed 3 expectation"):
        res.raise_for_failure()


def test_validate_passes_clean_data():
    res = validate(pd.DataFrame({"id": [1, 2]}), [("ExpectColumnValuesToNotBeNull", {"column": "id"})], name="ok")
    assert res.success and res.rows[0]["unexpected"] == 0
    res.raise_for_failure()
