"""Local HTTP servers for the sales tests: the sales API and a webhook receiver (127.0.0.1, threads)."""

from __future__ import annotations

import json
import threading
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

REGIONS = ["North America", "Europe", "Asia", "South America", "Oceania"]
API_KEY = "s3cr3t-api-key-do-not-log"


def make_records(day: date, n: int) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        q, price = i % 4 + 1, round(5 + i * 1.25, 2)
        out.append(
            {
                "order_id": f"API-{day:%Y%m%d}-{i:04d}",
                "date": day.isoformat(),
                "user_id": i % 17 + 1,
                "product_name": f"Product {i % 7}",
                "quantity": q,
                "unit_price": price,
                "total_amount": round(q * price, 2),
                "region": REGIONS[i % len(REGIONS)],
            }
        )
    return out


class _Server:
    def __init__(self, handler_cls):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class SalesApi(_Server):
    """``GET /sales?date=&page=&page_size=`` → ``{"data": [...], "next_page": n|null}``; needs X-API-Key.

    ``style`` switches the dialect (the profiles of include/sales/api_profiles.yaml and test profiles):
    ``original``: ``GET /sales?days=N`` (N days up to ``today``) → a plain JSON array without order_id;
    ``cursor``: ``Authorization: Bearer``, ``?date=&cursor=`` → ``{"result": {"rows": [...]}, "meta": {"next": c}}``;
    ``link``: ``?since=&until=`` → a plain array of 3 records per page, next page in the ``Link`` header.
    """

    def __init__(self, style: str = "ferry_v2"):
        self.style = style
        self.today: date | None = None  # style original: the API's "today"
        self.days: dict[str, list[dict]] = {}
        self.fail_days: set[str] = set()  # answer 500
        self.client_error_days: set[str] = set()  # answer 422 with a body
        self.requests: list[dict] = []
        super().__init__(_ApiHandler)

    def seed(self, start: date, n_days: int, per_day: int) -> list[str]:
        days = []
        for k in range(n_days):
            d = start + timedelta(days=k)
            self.days[d.isoformat()] = make_records(d, per_day)
            days.append(d.isoformat())
        return days


class _ApiHandler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def _send(self, code: int, body: dict | str):
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        api: SalesApi = self.server.owner
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        api.requests.append({"path": u.path, **q})
        if api.style == "cursor":
            if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                return self._send(401, {"error": "bad token"})
        elif self.headers.get("X-API-Key") != API_KEY:
            return self._send(401, {"error": "bad api key"})
        if u.path != "/sales":
            return self._send(404, {"error": "not found"})
        if api.style == "original" or "days" in q:  # the ferry_v2 server also answers the original dialect
            n, today = int(q["days"]), api.today or date.today()
            days = [(today - timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]
            rows = [{k: v for k, v in r.items() if k != "order_id"} for d in days for r in api.days.get(d, [])]
            return self._send(200, rows)
        if api.style == "cursor":
            rows, at = api.days.get(q["date"], []), int(q.get("cursor", "0"))
            nxt = str(at + 4) if at + 4 < len(rows) else None
            return self._send(200, {"result": {"rows": rows[at : at + 4]}, "meta": {"next": nxt}})
        if api.style == "link":
            rows, page = api.days.get(q["since"][:10], []), int(q.get("p", "1"))
            chunk = rows[(page - 1) * 3 : page * 3]
            data = json.dumps(chunk).encode()
            self.send_response(200)
            if page * 3 < len(rows):
                nxt = f"{api.url}/sales?since={q['since']}&until={q['until']}&p={page + 1}"
                self.send_header("Link", f'<{nxt}>; rel="next"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        day = q.get("date", "")
        if day in api.fail_days:
            return self._send(500, {"error": "upstream database unavailable"})
        if day in api.client_error_days:
            return self._send(422, {"error": f"date {day} is not queryable yet"})
        page, size = int(q.get("page", 1)), int(q.get("page_size", 500))
        rows = api.days.get(day, [])
        chunk = rows[(page - 1) * size : page * size]
        nxt = page + 1 if page * size < len(rows) else None
        return self._send(200, {"data": chunk, "page": page, "next_page": nxt})


class Webhook(_Server):
    """Records JSON POST bodies."""

    def __init__(self):
        self.payloads: list[dict] = []
        super().__init__(_HookHandler)


class _HookHandler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.server.owner.payloads.append(json.loads(self.rfile.read(n)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def sales_api():
    api = SalesApi()
    yield api
    api.close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def sales_conns(airflow_conns, sales_api, webhook, monkeypatch):
    """Airflow connections for the sales DAGs: every Ferry conn + the API and the alert webhook."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_SALES_API", json.dumps({"conn_type": "http", "host": sales_api.url, "password": API_KEY})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_FERRY_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "slackwebhook", "password": webhook.url + "/hook"}),
    )
    return airflow_conns
