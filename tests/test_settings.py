"""ferry.settings: every setting documented in the README, read when asked (not at import), defaults applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry import settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("setting", settings.SETTINGS, ids=lambda s: s.name)
def test_every_setting_is_in_the_readme_table(setting):
    assert f"| `{setting.name}` |" in README


def test_values_are_read_when_asked(monkeypatch):
    monkeypatch.delenv("FERRY_ALERT_EMAIL", raising=False)
    assert settings.alert_recipients() == []
    monkeypatch.setenv("FERRY_ALERT_EMAIL", "a@x.test, b@x.test,")
    assert settings.alert_recipients() == ["a@x.test", "b@x.test"]
    monkeypatch.setenv("FERRY_ETL_SCHEDULE", "")
    assert settings.etl_schedule() is None


def test_an_unknown_setting_is_refused():
    with pytest.raises(KeyError, match="not a Ferry setting"):
        settings.get("FERRY_NO_SUCH_THING")


def test_relative_files_are_from_the_bundle_root(monkeypatch):
    monkeypatch.setenv("FERRY_PROMOTION_CONFIG", "include/promotion.yaml")
    assert settings.file_setting("FERRY_PROMOTION_CONFIG") == settings.REPO / "include" / "promotion.yaml"
    assert settings.child_env(PGPASSWORD="x")["PYTHONPATH"].startswith(str(settings.PLUGINS))
