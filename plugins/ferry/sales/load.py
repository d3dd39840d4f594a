"""Load one day of sales into DuckDB: stage (CSV via DuckDB's reader, or API pages), validate, swap the partition.

    con = duckdb.connect(path)
    stage = Stage(con)
    stage.add_csv("include/sales/sales_2024-01-15.csv")       # or stage.add_records("api page 1", records)
    result = replace_partition(con, stage, day, run_id="...", max_reject_ratio=0.01)

Every staged record either lands in ``sales`` or in ``sales_rejects`` (with its source, line or record
number, column, reason and raw text): nothing is dropped silently. The day's partition (and its rejects)
is replaced in one transaction, so reruns and backfills never duplicate or lose rows.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ferry.errors import FerryError
from ferry.sales import COLUMNS, REGIONS, ensure_schema

log = logging.getLogger(__name__)

_TYPED = ", ".join(f"{'sale_date' if c == 'date' else c} {t}" for c, t in COLUMNS.items())
# _stage: typed rows in source order; a record's position in its source (_ord) is explicit for API records and,
# for CSV rows, rowid - base + 1 (k-th good row; the reader preserves file order, WITH ORDINALITY cost 40%).
# _rejects: one row per rejected record; reader/cast rejects know their line, rule rejects their _ord and _rid
# (the staged rowid). _gaps/_srcs turn (_src, _ord) back into a file line (header + reader-rejected lines before).
_STAGE_DDL = f"""
CREATE OR REPLACE TEMP TABLE _stage (_src VARCHAR, _ord BIGINT, {_TYPED});
CREATE OR REPLACE TEMP TABLE _rejects (_src VARCHAR, _ord BIGINT, _line BIGINT, "column" VARCHAR, reason VARCHAR,
                                       raw VARCHAR, _rid BIGINT);
CREATE OR REPLACE TEMP TABLE _gaps (_src VARCHAR, g BIGINT, j BIGINT);
CREATE OR REPLACE TEMP TABLE _srcs (_src VARCHAR, hdr BIGINT, base BIGINT);
"""
_DATA_COLS = [("sale_date" if c == "date" else c) for c in COLUMNS]
# line of a staged record: k-th good row of a CSV = k + 1 (header) + reader-rejected lines before it. With the
# rejected line r_j (rank j), g_j = r_j - 1 - j good rows precede it; the ASOF join finds max j with g_j < k.
_LINE_JOIN = "JOIN _srcs h ON h._src = {a}._src ASOF LEFT JOIN _gaps g ON g._src = {a}._src AND {ord} > g.g"
_LINE_EXPR = "({ord} + h.hdr + coalesce(g.j, 0))"


class SalesInputError(FerryError, ValueError):
    """The input as a whole is unusable (wrong header, missing file): fail fast, do not retry."""


class RejectThresholdExceeded(FerryError):
    def __init__(self, result: LoadResult):
        super().__init__(
            f"{result.reject_records} of {result.candidates} records for {result.day} rejected "
            f"({result.reject_ratio:.2%} > max {result.max_reject_ratio:.2%}); partition left unchanged, "
            f"rejects are in sales_rejects"
        )
        self.result = result


@dataclass
class LoadResult:
    day: str
    source: str
    candidates: int
    rows: int
    reject_records: int
    reject_ratio: float
    max_reject_ratio: float
    replaced_rows: int
    swapped: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class Stage:
    """Temp tables ``_stage`` (typed rows with source + position) and ``_rejects`` on ``con``."""

    def __init__(self, con):
        self.con = con
        con.execute(_STAGE_DDL)
        self.sources: list[str] = []

    # ------------------------------------------------------------------ CSV
    def add_csv(self, path: str | Path) -> int:
        """Stage one CSV file with DuckDB's reader (one pass); malformed lines go to ``_rejects`` with line numbers."""
        path = str(path)
        if not Path(path).is_file():
            raise SalesInputError(f"{path}: no such file")
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        if header != list(COLUMNS):
            raise SalesInputError(f"{path}: header {header} does not match the expected columns {list(COLUMNS)}")
        if path in self.sources:
            raise SalesInputError(f"{path}: staged twice")
        self.sources.append(path)
        con = self.con
        columns = "{" + ", ".join(f"{_sql_str(c)}: {_sql_str(t)}" for c, t in COLUMNS.items()) + "}"
        con.execute("DROP TABLE IF EXISTS _csv_rej; DROP TABLE IF EXISTS _csv_scan")
        base = con.execute("SELECT count(*) FROM _stage").fetchone()[0]  # next rowid (no deletes on _stage)
        n = con.execute(
            f"""INSERT INTO _stage
            SELECT ?, NULL, {", ".join('"' + c + '"' for c in COLUMNS)}
            FROM read_csv(?, header=true, delim=',', quote='"', escape='"', columns={columns},
                          store_rejects=true, rejects_table='_csv_rej', rejects_scan='_csv_scan')""",
            [path, path],
        ).fetchone()[0]
        # Reader rejects: one per line (a line can fail several columns: keep them all in one reason).
        con.execute(
            """INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw)
            SELECT ?, NULL, line, string_agg(column_name, ', ' ORDER BY column_idx),
                   string_agg(error_type || ': ' || error_message, '; ' ORDER BY column_idx),
                   trim(any_value(csv_line), chr(10) || chr(13))
            FROM _csv_rej GROUP BY line""",
            [path],
        )
        con.execute(
            """INSERT INTO _gaps SELECT ?, g, max(j) FROM (
                SELECT line - 1 - row_number() OVER (ORDER BY line) AS g, row_number() OVER (ORDER BY line) AS j
                FROM (SELECT DISTINCT line FROM _csv_rej)) GROUP BY g""",
            [path],
        )
        con.execute("INSERT INTO _srcs VALUES (?, 1, ?)", [path, base])
        return n

    # ------------------------------------------------------------------ API records
    def add_records(self, source: str, records: list[dict[str, Any]]) -> int:
        """Stage JSON records (record number = position in the page, from 1); bad values go to ``_rejects``."""
        import pyarrow as pa

        self.sources.append(source)
        self.con.execute("INSERT INTO _srcs VALUES (?, 0, 0)", [source])
        if not records:
            return 0
        cols: dict[str, list] = {"_src": [], "_ord": [], "_raw": []}
        cols.update({c: [] for c in COLUMNS})
        for i, rec in enumerate(records, start=1):
            cols["_src"].append(source)
            cols["_ord"].append(i)
            cols["_raw"].append(json.dumps(rec, default=str, sort_keys=True))
            for c in COLUMNS:
                v = rec.get(c) if isinstance(rec, dict) else None
                cols[c].append(None if v is None else str(v))
        arrow = pa.table(cols)
        con = self.con
        con.register("_api_page", arrow)
        try:
            casts = [
                f"""SELECT _src, _ord, '{c}' AS "column",
                    'CAST: could not convert ''' || "{c}" || ''' to {t}' AS reason, _raw AS raw
                FROM _api_page WHERE "{c}" IS NOT NULL AND TRY_CAST("{c}" AS {t}) IS NULL"""
                for c, t in COLUMNS.items()
            ]
            con.execute("CREATE OR REPLACE TEMP TABLE _api_rej AS " + " UNION ALL ".join(casts))
            con.execute(
                """INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw)
                SELECT _src, NULL, _ord, string_agg("column", ', '), string_agg(reason, '; '),
                any_value(raw) FROM _api_rej GROUP BY _src, _ord"""
            )
            typed = ", ".join(f'TRY_CAST("{c}" AS {t})' for c, t in COLUMNS.items())
            con.execute(
                f"""INSERT INTO _stage SELECT _src, _ord, {typed} FROM _api_page p
                WHERE NOT EXISTS (SELECT 1 FROM _api_rej r WHERE r._src = p._src AND r._ord = p._ord)"""
            )
            con.execute("DROP TABLE _api_rej")
        finally:
            con.unregister("_api_page")
        return len(records)


def _rule_rejects(con, day: date) -> None:
    """Business rules on the staged rows (one scan + duplicate and cross-day checks): every failure becomes a
    ``_rejects`` row naming column and reason."""
    regions = ", ".join(_sql_str(r) for r in REGIONS)
    nxt = (day + timedelta(days=1)).isoformat()
    d = f"DATE '{day.isoformat()}'"
    checks = [(f'"{c}" IS NULL', c, "'required value missing'") for c in _DATA_COLS] + [
        ("quantity <= 0", "quantity", "'quantity must be > 0 (got ' || quantity || ')'"),
        ("unit_price < 0", "unit_price", "'unit_price must be >= 0 (got ' || unit_price || ')'"),
        (
            "abs(total_amount - quantity * unit_price) > 0.01",
            "total_amount",
            "'total_amount ' || total_amount || ' != quantity x unit_price = ' || (quantity * unit_price)",
        ),
        (f"region NOT IN ({regions})", "region", "'unknown region ''' || region || ''''"),
        (f"sale_date <> {d}", "date", f"'date ' || sale_date || ' outside the run interval [{day}, {nxt})'"),
    ]
    items = ", ".join(f"CASE WHEN {cond} THEN {{'c': '{col}', 'r': {reason}}} END" for cond, col, reason in checks)
    where = " OR ".join(f"({cond})" for cond, _, _ in checks)
    raw = "to_json(struct_pack(" + ", ".join(f'"{c}" := s."{c}"' for c in _DATA_COLS) + "))::VARCHAR"
    con.execute(
        f"""INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw, _rid)
        WITH simple AS (
            SELECT rowid AS _rid, unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS f
            FROM _stage WHERE {where}
        ),
        dup_ids AS (SELECT order_id FROM _stage WHERE order_id IS NOT NULL GROUP BY order_id HAVING count(*) > 1),
        dup_rows AS (
            SELECT rowid AS _rid, order_id, first_value(rowid) OVER w AS first_rid, row_number() OVER w AS n
            FROM _stage WHERE order_id IN (SELECT order_id FROM dup_ids)
            WINDOW w AS (PARTITION BY order_id ORDER BY rowid)
        ),
        firsts AS (
            SELECT d._rid, d.order_id, s._src AS first_src, coalesce(s._ord, s.rowid - h.base + 1) AS first_ord
            FROM dup_rows d JOIN _stage s ON s.rowid = d.first_rid JOIN _srcs h ON h._src = s._src
            WHERE d.n > 1
        ),
        dups AS (
            SELECT f._rid, 'order_id' AS col, 'duplicate order_id ' || f.order_id || ' (first at '
                   || f.first_src || ' line ' || {_LINE_EXPR.format(ord="f.first_ord")} || ')' AS reason
            FROM firsts f JOIN _srcs h ON h._src = f.first_src
            ASOF LEFT JOIN _gaps g ON g._src = f.first_src AND f.first_ord > g.g
        ),
        elsewhere AS (
            SELECT st.rowid AS _rid, 'order_id' AS col,
                   'order_id ' || st.order_id || ' already loaded for ' || s.sale_date AS reason
            FROM _stage st JOIN (SELECT order_id, sale_date FROM sales WHERE sale_date <> {d}) s
                 ON s.order_id = st.order_id
        ),
        failures AS (
            SELECT _rid, f.c AS col, f.r AS reason FROM simple
            UNION ALL SELECT _rid, col, reason FROM dups
            UNION ALL SELECT _rid, col, reason FROM elsewhere
        )
        SELECT any_value(s._src), any_value(coalesce(s._ord, s.rowid - h.base + 1)), NULL,
               string_agg(f.col, ', '), string_agg(DISTINCT f.reason, '; '), any_value({raw}), f._rid
        FROM failures f JOIN _stage s ON s.rowid = f._rid JOIN _srcs h ON h._src = s._src
        GROUP BY f._rid"""
    )


GX_EXPECTATIONS: list[tuple[str, dict[str, Any]]] = [  # (GX class name, kwargs): ferry.validation.Expectation
    *[("ExpectColumnValuesToNotBeNull", {"column": c}) for c in _DATA_COLS],
    ("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 1}),
    ("ExpectColumnValuesToBeBetween", {"column": "unit_price", "min_value": 0}),
    ("ExpectColumnValuesToBeBetween", {"column": "total_error", "max_value": 0.01}),
    ("ExpectColumnValuesToBeInSet", {"column": "region", "value_set": list(REGIONS)}),
    ("ExpectColumnValuesToBeUnique", {"column": "order_id"}),
]
_ACCEPTED = "_stage s ANTI JOIN _rejects r ON r._rid = s.rowid"


def gx_frame(con, day: date, max_rows: int = 50_000):
    """The accepted rows GX checks: all of them, or above ``max_rows`` (0 = no limit) a repeatable uniform
    sample of that size (GX on pandas costs ~1 s per 100k rows; the SQL rules already saw every row)."""
    sample = f"USING SAMPLE reservoir({int(max_rows)} ROWS) REPEATABLE (42)" if max_rows else ""
    df = con.execute(
        f"""SELECT * FROM (
            SELECT {", ".join("s." + c for c in _DATA_COLS)},
                   abs(s.total_amount - s.quantity * s.unit_price)::DOUBLE AS total_error
            FROM {_ACCEPTED}) {sample}"""
    ).df()
    for c in ("unit_price", "total_amount"):
        df[c] = df[c].astype("float64")
    return df


def gx_gate(df, day: date):
    """Great Expectations over the rows about to be swapped in; raises ``ValidationFailed`` if any fail.

    The SQL rules already quarantined each failing row with its line number; this is the independent check
    that nothing slipped through before the partition is replaced.
    """
    from ferry.validation import ValidationFailed, validate

    if len(df):
        lo, hi = df["sale_date"].min(), df["sale_date"].max()
        if str(lo)[:10] != day.isoformat() or str(hi)[:10] != day.isoformat():
            raise ValidationFailed(f"accepted rows span {lo}..{hi}, expected only {day}")
    res = validate(df, GX_EXPECTATIONS, name=f"sales_{day.isoformat()}")
    res.raise_for_failure()
    return res


def replace_partition(
    con,
    stage: Stage,
    day: date,
    *,
    run_id: str,
    source: str,
    max_reject_ratio: float = 0.01,
    gx: bool = True,
    gx_max_rows: int = 50_000,
) -> LoadResult:
    """Validate the stage and, in one transaction, replace ``day``'s rows and rejects.

    If the rejects exceed ``max_reject_ratio``, only the rejects are replaced (for inspection) and
    ``RejectThresholdExceeded`` is raised; the day's sales stay as they were.
    """
    ensure_schema(con)
    _rule_rejects(con, day)
    staged = con.execute("SELECT count(*) FROM _stage").fetchone()[0]
    rule_rejected = con.execute("SELECT count(*) FROM _rejects WHERE _rid IS NOT NULL").fetchone()[0]
    rejected = con.execute("SELECT count(*) FROM _rejects").fetchone()[0]
    accepted = staged - rule_rejected
    candidates = staged + (rejected - rule_rejected)
    ratio = rejected / candidates if candidates else 0.0
    result = LoadResult(
        day=day.isoformat(),
        source=source,
        candidates=candidates,
        rows=accepted,
        reject_records=rejected,
        reject_ratio=round(ratio, 6),
        max_reject_ratio=max_reject_ratio,
        replaced_rows=0,
        swapped=False,
    )
    over = ratio > max_reject_ratio
    gate = None
    if gx and not over:
        # GX (pandas, Python) runs in a thread while DuckDB prepares the swap; COMMIT waits for its verdict.
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1)
        gate = pool.submit(gx_gate, gx_frame(con, day, gx_max_rows), day)
        pool.shutdown(wait=False)
    d = f"DATE '{day.isoformat()}'"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM sales_rejects WHERE sale_date = {d}")
        con.execute(
            f"""INSERT INTO sales_rejects
            SELECT {d}, ?, r._src, coalesce(r._line, {_LINE_EXPR.format(ord="r._ord")}), r."column", r.reason, r.raw,
                   now()::TIMESTAMP
            FROM _rejects r {_LINE_JOIN.format(a="r", ord="r._ord")}
            ORDER BY 3, 4""",
            [run_id],
        )
        if not over:
            result.replaced_rows = con.execute(f"DELETE FROM sales WHERE sale_date = {d}").fetchone()[0]
            con.execute(
                f"""INSERT INTO sales SELECT {", ".join("s." + c for c in _DATA_COLS)}, s._src, ?, now()::TIMESTAMP
                FROM {_ACCEPTED}""",
                [run_id],
            )
            con.execute(
                f"INSERT OR REPLACE INTO sales_loads VALUES ({d}, ?, ?, ?, ?, now()::TIMESTAMP)",
                [run_id, source, accepted, rejected],
            )
        if gate is not None:
            gate.result()  # raises ValidationFailed -> ROLLBACK
        con.execute("COMMIT")
        result.swapped = not over
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if over:
        raise RejectThresholdExceeded(result)
    return result


def rejects_table(con, day: date, limit: int = 50) -> list[dict[str, Any]]:
    """The day's quarantined records, for the task log."""
    cur = con.execute(
        f"""SELECT source, line, "column", reason, raw FROM sales_rejects
        WHERE sale_date = DATE '{day.isoformat()}' ORDER BY source, line LIMIT {int(limit)}"""
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ---------------------------------------------------------------------- API client


class SalesApiError(FerryError):
    """The API refused the request (4xx): not transient, do not retry."""


class SalesApiUnavailable(Exception):
    """5xx or timeouts after every attempt: transient, the task may be retried."""


def fetch_day(
    session,
    base_url: str,
    api_key: str | None,
    day: date,
    *,
    page_size: int = 500,
    timeout: float = 10.0,
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """Yield ``(source, records)`` per page of ``GET {base_url}/sales?date=&page=&page_size=``.

    The response is ``{"data": [...], "next_page": n | null}``. The API key travels in the
    ``X-API-Key`` header and is never logged. 5xx and timeouts are retried with exponential backoff
    (``backoff * 2**attempt`` s); 4xx fails at once with the response body.
    """
    import requests

    url = base_url.rstrip("/") + "/sales"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    page: int | None = 1
    while page is not None:
        params = {"date": day.isoformat(), "page": page, "page_size": page_size}
        for attempt in range(attempts):
            try:
                resp = session.get(url, params=params, headers=headers, timeout=timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code < 400:
                    break
                body = resp.text[:2000]
                if resp.status_code < 500:
                    raise SalesApiError(f"GET {url} {params} -> HTTP {resp.status_code}: {body}")
                problem = f"HTTP {resp.status_code}: {body[:200]}"
            if attempt == attempts - 1:
                raise SalesApiUnavailable(f"GET {url} {params} failed after {attempts} attempts: {problem}")
            delay = backoff * 2**attempt
            log.warning(
                "GET %s %s: %s; retrying in %.1fs (attempt %d/%d)", url, params, problem, delay, attempt + 1, attempts
            )
            sleep(delay)
        try:
            payload = resp.json()
            records = payload["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise SalesApiError(f"GET {url} {params}: response is not {{'data': [...]}}: {resp.text[:500]}") from exc
        yield f"api page {page}", records
        page = payload.get("next_page")
