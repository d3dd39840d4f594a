"""API profiles (include/sales/api_profiles.yaml) against the local test API: both shipped profiles, every paging
style, the auth header, redacted errors, and records without an order id through the load."""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta

import duckdb
import pytest
import requests

from ferry.sales import api, load
from ferry.sales.store import ensure_schema
from tests.sales.conftest import API_KEY, SalesApi, make_records

DAY = date(2024, 3, 5)


@pytest.fixture
def server(request):
    srv = SalesApi(style=getattr(request, "param", "ferry_v2"))
    yield srv
    srv.close()


def fetch(server, prof, **kw):
    with requests.Session() as s:
        return list(api.fetch_day(s, server.url, API_KEY, DAY, prof, **kw))


def test_shipped_profiles_load_and_differ_where_the_formats_do():
    profiles = api.load_profiles()
    assert set(profiles) == {"original", "ferry_v2"}
    orig, v2 = profiles["original"], profiles["ferry_v2"]
    assert (orig.query["style"], orig.response["shape"], orig.paging["style"]) == ("days", "array", "none")
    assert (v2.query["style"], v2.response["shape"], v2.paging["style"]) == ("date", "envelope", "page")
    assert "order_id" not in orig.fields and v2.fields["order_id"] == "order_id"
    assert api.profile_name(None, {"profile": "original"}) == "original"
    assert api.profile_name("ferry_v2", {"profile": "original"}) == "ferry_v2"
    assert api.profile_name(None, {}) == "ferry_v2"
    with pytest.raises(api.ProfileError, match="no API profile 'nope'.*known: original, ferry_v2"):
        api.profile("nope")


@pytest.mark.parametrize("server", ["original"], indirect=True)
def test_original_profile_plain_array_days_query_without_order_id(server, caplog):
    for k in (-1, 0, 1):  # the day before, the day, and today's sales so far
        server.days[(DAY + timedelta(days=k)).isoformat()] = make_records(DAY + timedelta(days=k), 4)
    server.today = DAY + timedelta(days=1)  # the API's today: the day is yesterday -> days=2
    with caplog.at_level(logging.DEBUG):
        pages = fetch(server, api.profile("original"), today=DAY + timedelta(days=1))
    assert server.requests == [{"path": "/sales", "days": "2"}]
    [(src, records, raws)] = pages
    assert src == "api page 1" and len(records) == 4  # today's 4 records are left to their own run
    assert all(r["order_id"] is None and r["date"] == DAY.isoformat() for r in records)
    assert json.loads(raws[0]) == {k: v for k, v in make_records(DAY, 4)[0].items() if k != "order_id"}
    assert "records of other days left to their own runs" in caplog.text
    assert API_KEY not in caplog.text


def test_ferry_v2_profile_pages_with_the_api_key_header(server):
    server.days[DAY.isoformat()] = make_records(DAY, 7)
    pages = fetch(server, api.profile("ferry_v2"), page_size=3)
    assert [len(r) for _, r, _ in pages] == [3, 3, 1]
    assert [q["page"] for q in server.requests] == ["1", "2", "3"]
    assert pages[0][1][0]["order_id"] == "API-20240305-0001"


CUSTOM = """
bearer_cursor:
  path: sales
  query: {style: date}
  auth: {header: Authorization, scheme: Bearer}
  response: {shape: envelope, records: result.rows}
  paging: {style: cursor, cursor_param: cursor, next: meta.next}
  fields: {order_id: order_id, date: date, user_id: user_id, product_name: product_name, quantity: quantity,
           unit_price: unit_price, total_amount: total_amount, region: region}
linked:
  path: /sales
  query: {style: since_until}
  auth: {header: X-API-Key}
  response: {shape: array}
  paging: {style: link}
  fields: {date: ts, user_id: user_id, product_name: product_name, quantity: quantity,
           unit_price: unit_price, total_amount: total_amount, region: region}
  timezone: America/New_York
"""


@pytest.mark.parametrize("server", ["cursor"], indirect=True)
def test_cursor_paging_and_a_bearer_scheme(server, tmp_path):
    (tmp_path / "p.yaml").write_text(CUSTOM)
    server.days[DAY.isoformat()] = make_records(DAY, 10)
    pages = fetch(server, api.profile("bearer_cursor", tmp_path / "p.yaml"))
    assert [len(r) for _, r, _ in pages] == [4, 4, 2]
    assert [q.get("cursor") for q in server.requests] == [None, "4", "8"]


@pytest.mark.parametrize("server", ["link"], indirect=True)
def test_link_header_paging_since_until_and_the_source_timezone(server, tmp_path):
    (tmp_path / "p.yaml").write_text(CUSTOM)
    recs = make_records(DAY, 7)
    for r in recs:  # timestamps in the source's timezone (New York, UTC-5 in March before DST)
        r["ts"] = f"{DAY}T10:00:00"
    recs[6]["ts"] = f"{DAY}T20:30:00"  # 01:30 UTC the next day
    server.days[DAY.isoformat()] = recs
    pages = fetch(server, api.profile("linked", tmp_path / "p.yaml"))
    assert [len(r) for _, r, _ in pages] == [3, 3, 1]
    assert (
        server.requests[0]["since"] == "2024-03-05T00:00:00Z" and server.requests[0]["until"] == "2024-03-06T00:00:00Z"
    )
    assert [q.get("p") for q in server.requests] == [None, "2", "3"]
    days = [r["date"] for _, rs, _ in pages for r in rs]
    assert days == ["2024-03-05"] * 6 + ["2024-03-06"]  # the load rejects the last one as outside the day


def test_wrong_shape_error_is_a_short_redacted_excerpt(server):
    server.days[DAY.isoformat()] = make_records(DAY, 30)
    with pytest.raises(api.SalesApiError) as err:
        # a profile expecting a plain array, against an API that sends the ferry_v2 envelope
        fetch(server, api.Profile(name="original", response={"shape": "array"}))
    msg = str(err.value)
    assert "records are not a JSON array" in msg
    assert "profile original" in msg and len(msg) < 400
    for rec in make_records(DAY, 30):
        assert rec["order_id"] not in msg and rec["product_name"] not in msg and rec["region"] not in msg
    assert API_KEY not in msg


def test_unauthorised_without_the_key_in_the_message(server):
    with requests.Session() as s, pytest.raises(api.SalesApiError, match=r"HTTP 401: \{\"error\": \"bad api key\"\}"):
        list(api.fetch_day(s, server.url, "wrong-" + API_KEY, DAY, api.profile("ferry_v2")))


def test_excerpt_keeps_structure_and_messages_only():
    text = json.dumps([{"order_id": "ORD-1", "product_name": "Laptop", "unit_price": 999.99}] * 20)
    ex = api.excerpt(text, secret="Laptop")
    assert ex.startswith('[{"order_id": "…", "product_name": "…", "unit_price": 0}') and len(ex) <= 122
    assert api.excerpt('{"error": "date not queryable"}') == '{"error": "date not queryable"}'


def test_records_without_order_id_load_by_fingerprint_and_duplicates_are_quarantined(tmp_path):
    recs = [{k: v for k, v in r.items() if k != "order_id"} for r in make_records(DAY, 6)]
    recs.append(dict(recs[2]))  # the same sale sent twice
    raws = [json.dumps(r) for r in recs]
    with duckdb.connect(str(tmp_path / "s.duckdb")) as con:
        ensure_schema(con)
        for run in ("r1", "r2"):  # a rerun replaces the partition: still exactly once
            stage = load.Stage(con)
            stage.add_records("api page 1", [{"order_id": None, **r} for r in recs], raws)
            res = load.replace_partition(con, stage, DAY, run_id=run, source="api", max_reject_ratio=0.5, gx=False)
            assert (res.rows, res.reject_records) == (6, 1)
        ids = [r[0] for r in con.execute("SELECT order_id FROM sales ORDER BY order_id").fetchall()]
        assert len(ids) == len(set(ids)) == 6 and all(i.startswith("fp-") and len(i) == 35 for i in ids)
        rej = con.execute('SELECT line, "column", rule, reason, raw FROM sales_rejects').fetchall()
        assert rej == [(7, "fingerprint", "duplicate_row", rej[0][3], raws[6])]
        assert rej[0][3].startswith("duplicate row fp-") and rej[0][3].endswith("(first at api page 1 line 3)")
