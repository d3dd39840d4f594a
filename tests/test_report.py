import logging

from ferry import report


def test_table_unions_keys_and_renders_nested_values():
    text = report.table([{"a": 1, "b": {"x": 1}}, {"a": 2, "c": None}])
    lines = text.splitlines()
    assert [c.strip() for c in lines[0].split("|")[1:4]] == ["a", "b", "c"]
    assert '{"x": 1}' in lines[2]
    assert report.table([]) == "(none)"


def test_progress_logs_rate_and_eta(caplog):
    caplog.set_level(logging.INFO)
    p = report.Progress(logging.getLogger("t"), "orders", total=100, every=0)
    p.add(50)
    p.log(final=True)
    assert "orders progress: 50/100 rows" in caplog.text and "ETA" in caplog.text
    assert "orders done: 50/100 rows" in caplog.text
