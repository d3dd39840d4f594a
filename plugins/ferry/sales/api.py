"""Sales API client driven by a profile from ``include/sales/api_profiles.yaml`` (request, auth, response
shape, paging, field mapping, timezone): configuration, not code, decides how a source is read.

    prof = api.profile("original")
    for source, records, raws in api.fetch_day(session, base_url, secret, day, prof):
        stage.add_records(source, records, raws)

``records`` are dicts keyed by Ferry's columns (values as the source sent them); ``raws`` the original JSON text
of each record (what ``sales_rejects.raw`` keeps). The secret travels in the profile's header only and is
never logged; error messages carry at most a short, redacted excerpt of a response (never sales data).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ferry import settings
from ferry.errors import FerryError
from ferry.sales.store import COLUMNS

log = logging.getLogger(__name__)

PROFILES_FILE = settings.include("sales", "api_profiles.yaml")
DEFAULT_PROFILE = "ferry_v2"
QUERY_STYLES = ("date", "days", "since_until")
SHAPES = ("array", "envelope")
PAGING_STYLES = ("none", "page", "cursor", "link")


class SalesApiError(FerryError):
    """The API refused the request (4xx) or answered something the profile does not describe: do not retry."""


class SalesApiUnavailable(Exception):
    """5xx or timeouts after every attempt: transient, the task may be retried."""


class ProfileError(FerryError, ValueError):
    """The profile file or a profile in it is unusable."""


@dataclass(frozen=True)
class Profile:
    name: str
    path: str = "/sales"
    query: dict[str, Any] = field(default_factory=lambda: {"style": "date"})
    auth: dict[str, str] = field(default_factory=lambda: {"header": "X-API-Key", "scheme": ""})
    response: dict[str, str] = field(default_factory=lambda: {"shape": "envelope", "records": "data"})
    paging: dict[str, Any] = field(default_factory=lambda: {"style": "none"})
    fields: dict[str, str] = field(default_factory=lambda: {c: c for c in COLUMNS})
    timezone: str = "UTC"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def profiles_file() -> Path:
    return settings.file_setting("FERRY_SALES_API_PROFILES")


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """Every profile of the file, checked (errors name the file, the profile and the field)."""
    import yaml

    path = Path(path or profiles_file())
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict) or not doc:
        raise ProfileError(f"{path}: expected a mapping of profile names to profiles")
    out = {}
    for name, spec in doc.items():
        where = f"{path}: profile {name!r}"
        if not isinstance(spec, dict):
            raise ProfileError(f"{where}: expected a mapping")
        unknown = set(spec) - {"path", "query", "auth", "response", "paging", "fields", "timezone"}
        if unknown:
            raise ProfileError(f"{where}: unknown keys {sorted(unknown)}")
        prof = Profile(name=str(name), **spec)
        _check(prof, where)
        out[str(name)] = prof
    return out


def _check(p: Profile, where: str) -> None:
    def one_of(section: str, key: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise ProfileError(f"{where}: {section}.{key} {value!r} is not one of {', '.join(allowed)}")

    one_of("query", "style", p.query.get("style"), QUERY_STYLES)
    one_of("response", "shape", p.response.get("shape"), SHAPES)
    one_of("paging", "style", p.paging.get("style", "none"), PAGING_STYLES)
    if p.response["shape"] == "envelope" and not p.response.get("records"):
        raise ProfileError(f"{where}: response.records (the path of the records in the envelope) is required")
    if p.paging.get("style") == "cursor" and (p.response["shape"] != "envelope" or not p.paging.get("next")):
        raise ProfileError(f"{where}: cursor paging needs an envelope and paging.next (where the next cursor is)")
    if not p.auth.get("header"):
        raise ProfileError(f"{where}: auth.header is required")
    bad = set(p.fields) - set(COLUMNS)
    if bad:
        raise ProfileError(f"{where}: fields {sorted(bad)} are not Ferry columns ({', '.join(COLUMNS)})")
    missing = set(COLUMNS) - set(p.fields) - {"order_id"}
    if missing:
        raise ProfileError(f"{where}: fields has no source field for {sorted(missing)}")
    try:
        p.tz  # noqa: B018
    except Exception as exc:
        raise ProfileError(f"{where}: timezone {p.timezone!r} is unknown") from exc


def profile(name: str | None, path: str | Path | None = None) -> Profile:
    profiles = load_profiles(path)
    name = name or DEFAULT_PROFILE
    if name not in profiles:
        raise ProfileError(f"no API profile {name!r} in {path or profiles_file()}; known: {', '.join(profiles)}")
    return profiles[name]


def profile_name(param: str | None, conn_extra: dict | None) -> str:
    """The profile: the ``api_profile`` param, else the connection extra's ``profile``, else the default."""
    return param or (conn_extra or {}).get("profile") or DEFAULT_PROFILE


# ---------------------------------------------------------------------- redaction


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*')
#: string values of these keys are messages about the request, not data: kept in the excerpt
MESSAGE_KEYS = {"error", "message", "detail", "title", "reason", "code", "status"}


def excerpt(text: str, secret: str | None = None, limit: int = 120) -> str:
    """A short, redacted view of a response for errors and alerts: keys, structure and error messages
    (``error``/``message``/``detail``... values) stay, other strings become ``"…"`` and numbers ``0``
    (no sales data, never the secret)."""
    text = (text or "")[: limit * 8]
    if secret:
        text = text.replace(secret, "***")
    out, pos, key = [], 0, None
    for m in _TOKEN.finditer(text):
        out.append(text[pos : m.start()])
        tok, pos = m.group(), m.end()
        is_key = tok.startswith('"') and text[pos:].lstrip().startswith(":")
        if is_key:
            out.append(tok)
            key = tok.strip('"').lower()
        elif key in MESSAGE_KEYS and tok.startswith('"'):
            out.append(tok)
        else:
            out.append('"…"' if tok.startswith('"') else "0")
    out.append(text[pos:])
    short = " ".join("".join(out).split())
    return (short[:limit] + " …") if len(short) > limit else short


# ---------------------------------------------------------------------- requests


def _query(p: Profile, day: date, today: date) -> dict[str, Any]:
    q = p.query
    params: dict[str, Any] = dict(q.get("params") or {})
    if q["style"] == "date":
        params[q.get("date_param", "date")] = day.isoformat()
    elif q["style"] == "days":
        params[q.get("days_param", "days")] = max((today - day).days + 1, 1)
    else:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        params[q.get("since_param", "since")] = start.isoformat().replace("+00:00", "Z")
        params[q.get("until_param", "until")] = (start + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return params


def _dig(payload: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(payload, dict) or part not in payload:
            raise KeyError(dotted)
        payload = payload[part]
    return payload


def utc_day(value: Any, tz: ZoneInfo) -> Any:
    """A record's date as the UTC day: ``YYYY-MM-DD`` stays; a timestamp (naive = in the source's timezone)
    becomes its UTC date; anything else is returned unchanged (the load rejects it with the reason)."""
    if not isinstance(value, str) or len(value) <= 10:
        return value
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=tz)
    return ts.astimezone(UTC).date().isoformat()


def map_record(p: Profile, rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        return {c: None for c in COLUMNS}
    out = {c: (rec.get(p.fields[c]) if c in p.fields else None) for c in COLUMNS}
    out["date"] = utc_day(out.get("date"), p.tz)
    return out


@dataclass(frozen=True)
class Retry:
    """How a request is retried: ``attempts`` tries on 5xx and timeouts, ``backoff * 2**n`` s apart."""

    attempts: int = 4
    backoff: float = 0.5
    timeout: float = 10.0
    sleep: Callable[[float], None] = time.sleep


def fetch_day(
    session,
    base_url: str,
    secret: str | None,
    day: date,
    prof: Profile,
    *,
    page_size: int = 500,
    retry: Retry = Retry(),  # noqa: B008 - frozen, shared safely
    today: date | None = None,
) -> Iterator[tuple[str, list[dict[str, Any]], list[str]]]:
    """Yield ``(source, records, raws)`` per page (source ``api page N``) of the day, as ``prof`` describes.

    5xx and timeouts are retried with exponential backoff (``retry``); 4xx fails at once.
    With ``days=N`` queries the API answers several days: records of other days are left to their own runs
    (counted in the log); a record with an unreadable date stays and is rejected by the load.
    """
    pager = _Pager(prof, base_url, day, today or datetime.now(prof.tz).date(), page_size)
    headers = {"Accept": "application/json"}
    if secret:
        scheme = prof.auth.get("scheme") or ""
        headers[prof.auth["header"]] = f"{scheme} {secret}" if scheme else secret
    n, other_days = 0, 0
    while True:
        n += 1
        what = f"GET {pager.url} {pager.params or ''}".rstrip()
        resp = _get(session, pager.url, pager.params, headers, secret, retry)
        payload, records = _records(prof, resp, what, secret)
        mapped, raws = [], []
        for rec in records:
            m = map_record(prof, rec)
            if prof.query["style"] == "days" and isinstance(m["date"], str) and _is_other_day(m["date"], day):
                other_days += 1
                continue
            mapped.append(m)
            raws.append(json.dumps(rec, ensure_ascii=False, separators=(", ", ": ")))
        yield f"api page {n}", mapped, raws
        if not pager.advance(resp, payload, records, what):
            break
    if other_days:
        log.info("%s: %d records of other days left to their own runs (days=N query)", day, other_days)


def _records(prof: Profile, resp, what: str, secret: str | None) -> tuple[Any, list]:
    """The page's JSON and its records (where the profile says they are)."""
    try:
        payload = resp.json()
    except ValueError as exc:
        raise SalesApiError(f"{what}: response is not JSON: {excerpt(resp.text, secret)}") from exc
    if prof.response["shape"] == "array":
        records = payload
    else:
        try:
            records = _dig(payload, prof.response["records"])
        except KeyError as exc:
            raise SalesApiError(
                f"{what}: no records at {prof.response['records']!r} (profile {prof.name}): "
                f"{excerpt(resp.text, secret)}"
            ) from exc
    if not isinstance(records, list):
        raise SalesApiError(
            f"{what}: records are not a JSON array (profile {prof.name}, response.shape "
            f"{prof.response['shape']}): {excerpt(resp.text, secret)}"
        )
    return payload, records


class _Pager:
    """The URL and query of the next page, as the profile's paging style says (none, page, cursor, link)."""

    def __init__(self, prof: Profile, base_url: str, day: date, today: date, page_size: int):
        self.prof, self.day, self.today, self.page_size = prof, day, today, page_size
        self.url = base_url.rstrip("/") + "/" + prof.path.lstrip("/")
        self.origin = urlsplit(self.url)[:2]
        self.style = prof.paging.get("style", "none")
        self.params: dict[str, Any] = _query(prof, day, today)
        if self.style == "page":
            self.params[prof.paging.get("page_param", "page")] = 1
            self.params[prof.paging.get("size_param", "page_size")] = page_size

    def advance(self, resp, payload: Any, records: list, what: str) -> bool:
        """Move to the next page; ``False`` when this one was the last."""
        paging = self.prof.paging
        if self.style == "page":
            page_param = paging.get("page_param", "page")
            if paging.get("next") and isinstance(payload, dict):
                nxt = payload.get(paging["next"])
                if nxt is None:
                    return False
                self.params[page_param] = nxt
            elif len(records) >= self.page_size:
                self.params[page_param] += 1
            else:
                return False
            return True
        if self.style == "cursor":
            try:
                cursor = _dig(payload, paging["next"])
            except KeyError:
                cursor = None
            if not cursor:
                return False
            self.params = {**_query(self.prof, self.day, self.today), paging.get("cursor_param", "cursor"): cursor}
            return True
        if self.style == "link":
            nxt_url = (resp.links.get("next") or {}).get("url")
            if not nxt_url:
                return False
            if urlsplit(nxt_url)[:2] != self.origin:
                raise SalesApiError(f"{what}: Link rel=next points to another host ({urlsplit(nxt_url).netloc})")
            self.url, self.params = nxt_url, {}  # the link carries the query
            return True
        return False


def _is_other_day(value: str, day: date) -> bool:
    try:
        return date.fromisoformat(value[:10]) != day
    except ValueError:
        return False


class _Transient(Exception):
    """A 5xx answer or a timeout: worth another try."""


def _get(session, url: str, params: dict, headers: dict, secret: str | None, retry: Retry):
    """One GET, retried by ``tenacity`` on 5xx and timeouts; a 4xx fails at once with the (redacted) body."""
    import requests
    from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

    def once():
        try:
            resp = session.get(url, params=params, headers=headers, timeout=retry.timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Transient(f"{type(exc).__name__}: {excerpt(str(exc), secret, 200)}") from None
        if resp.status_code < 400:
            return resp
        body = excerpt(resp.text, secret, 200)
        if resp.status_code < 500:
            raise SalesApiError(f"GET {url} {params or ''} -> HTTP {resp.status_code}: {body}")
        raise _Transient(f"HTTP {resp.status_code}: {body}")

    def warn(state) -> None:
        log.warning(
            "GET %s %s: %s; retrying in %.1fs (attempt %d/%d)",
            url,
            params or "",
            state.outcome.exception(),
            state.next_action.sleep,
            state.attempt_number,
            retry.attempts,
        )

    retrying = Retrying(
        stop=stop_after_attempt(retry.attempts),
        wait=wait_exponential(multiplier=retry.backoff),
        retry=retry_if_exception_type(_Transient),
        sleep=retry.sleep,
        before_sleep=warn,
        reraise=True,
    )
    try:
        return retrying(once)
    except _Transient as exc:
        raise SalesApiUnavailable(f"GET {url} {params or ''} failed after {retry.attempts} attempts: {exc}") from None
