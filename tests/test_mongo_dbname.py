import pytest

from ferry.mongo import db_name


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, "app"),
        ("", "app"),
        ("false", "app"),
        ("0", "app"),
        ("true", "app_dev"),
        ("1", "app_dev"),
        ("YES", "app_dev"),
    ],
)
def test_db_name_honours_use_dev_mongo_db(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("USE_DEV_MONGO_DB", raising=False)
    else:
        monkeypatch.setenv("USE_DEV_MONGO_DB", value)
    assert db_name("app") == expected


def test_db_name_rejects_non_boolean(monkeypatch):
    monkeypatch.setenv("USE_DEV_MONGO_DB", "dev")
    with pytest.raises(ValueError, match="USE_DEV_MONGO_DB='dev' is not a boolean"):
        db_name("app")
