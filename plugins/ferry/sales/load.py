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
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ferry.errors import FerryError
from ferry.sales import COLUMNS, api, ensure_schema
from ferry.sales import rules as rules_mod
from ferry.sales.rules import Rules

log = logging.getLogger(__name__)

_TYPED = ", ".join(f"{'sale_date' if c == 'date' else c} {t}" for c, t in COLUMNS.items())
# _stage: typed rows in source order; a record's position in its source (_ord) is explicit for API records and,
# for CSV rows, rowid - base + 1 (k-th good row; the reader preserves file order, WITH ORDINALITY cost 40%).
# _rejects: one row per rejected record; reader/cast rejects know their line, rule rejects their _ord and _rid
# (the staged rowid). _gaps/_srcs turn (_src, _ord) back into a file line (header + reader-rejected lines before).
_STAGE_DDL = f"""
CREATE OR REPLACE TEMP TABLE _stage (_src VARCHAR, _ord BIGINT, {_TYPED});
CREATE OR REPLACE TEMP TABLE _rejects (_src VARCHAR, _ord BIGINT, _line BIGINT, "column" VARCHAR, reason VARCHAR,
                                       raw VARCHAR, _rid BIGINT, rule VARCHAR);
CREATE OR REPLACE TEMP TABLE _raws (_src VARCHAR, _ord BIGINT, raw VARCHAR);
CREATE OR REPLACE TEMP TABLE _gaps (_src VARCHAR, g BIGINT, j BIGINT);
CREATE OR REPLACE TEMP TABLE _srcs (_src VARCHAR, hdr BIGINT, base BIGINT);
"""
_DATA_COLS = [("sale_date" if c == "date" else c) for c in COLUMNS]
#: the original design's CSV: no order_id (rows are keyed by their fingerprint, ``include/sales/rules.yaml``)
CSV_WITHOUT_KEY = [c for c in COLUMNS if c != "order_id"]
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
        self.csv_files: list[str] = []

    # ------------------------------------------------------------------ CSV
    def add_csv(self, path: str | Path) -> int:
        """Stage one CSV file with DuckDB's reader (one pass); malformed lines go to ``_rejects`` with line numbers."""
        path = str(path)
        if not Path(path).is_file():
            raise SalesInputError(f"{path}: no such file")
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        if header not in (list(COLUMNS), CSV_WITHOUT_KEY):
            raise SalesInputError(
                f"{path}: header {header} does not match the expected columns {list(COLUMNS)} "
                f"(or {CSV_WITHOUT_KEY}: rows without an order id, keyed by their fingerprint)"
            )
        if path in self.sources:
            raise SalesInputError(f"{path}: staged twice")
        self.sources.append(path)
        self.csv_files.append(path)
        con = self.con
        columns = "{" + ", ".join(f"{_sql_str(c)}: {_sql_str(COLUMNS[c])}" for c in header) + "}"
        select = ", ".join(f'"{c}"' if c in header else "NULL" for c in COLUMNS)
        con.execute("DROP TABLE IF EXISTS _csv_rej; DROP TABLE IF EXISTS _csv_scan")
        base = con.execute("SELECT count(*) FROM _stage").fetchone()[0]  # next rowid (no deletes on _stage)
        n = con.execute(
            f"""INSERT INTO _stage
            SELECT ?, NULL, {select}
            FROM read_csv(?, header=true, delim=',', quote='"', escape='"', columns={columns},
                          store_rejects=true, rejects_table='_csv_rej', rejects_scan='_csv_scan')""",
            [path, path],
        ).fetchone()[0]
        # Reader rejects: one per line (a line can fail several columns: keep them all in one reason).
        con.execute(
            """INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw, rule)
            SELECT ?, NULL, line, string_agg(column_name, ', ' ORDER BY column_idx),
                   string_agg(error_type || ': ' || error_message, '; ' ORDER BY column_idx),
                   trim(any_value(csv_line), chr(10) || chr(13)),
                   string_agg(DISTINCT lower(replace(error_type::VARCHAR, ' ', '_')), ', ')
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
    def add_records(self, source: str, records: list[dict[str, Any]], raws: list[str] | None = None) -> int:
        """Stage records keyed by Ferry's columns (record number = position in the page, from 1); ``raws``: each
        record's original JSON text (kept as ``raw`` if it is rejected). Bad values go to ``_rejects``."""
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
            cols["_raw"].append(raws[i - 1] if raws else json.dumps(rec, default=str))
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
                """INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw, rule)
                SELECT _src, NULL, _ord, string_agg("column", ', '), string_agg(reason, '; '),
                any_value(raw), 'cast' FROM _api_rej GROUP BY _src, _ord"""
            )
            con.execute("INSERT INTO _raws SELECT _src, _ord, _raw FROM _api_page")
            typed = ", ".join(f'TRY_CAST("{c}" AS {t})' for c, t in COLUMNS.items())
            con.execute(
                f"""INSERT INTO _stage SELECT _src, _ord, {typed} FROM _api_page p
                WHERE NOT EXISTS (SELECT 1 FROM _api_rej r WHERE r._src = p._src AND r._ord = p._ord)"""
            )
            con.execute("DROP TABLE _api_rej")
        finally:
            con.unregister("_api_page")
        return len(records)


def _rule_rejects(con, day: date, rules: Rules) -> None:
    """Business rules (``rules.yaml``) on the staged rows, in SQL: one scan for the row rules, then duplicates
    among the rows that passed them (the first VALID occurrence of a key loads), then ids loaded for another
    day. Every failure becomes a ``_rejects`` row naming column, reason and rule."""
    if rules.natural_key is None:
        con.execute(f"UPDATE _stage SET order_id = {rules.fingerprint_sql()}")
    elif con.execute("SELECT count(*) FROM _stage WHERE order_id IS NULL").fetchone()[0]:
        # records without an order id (the original API/CSV format): the row fingerprint is their key
        con.execute(f"UPDATE _stage SET order_id = {rules.fingerprint_sql()} WHERE order_id IS NULL")
    nxt = (day + timedelta(days=1)).isoformat()
    d = f"DATE '{day.isoformat()}'"
    checks = [(f'"{c}" IS NULL', c, "'required value missing'", rules_mod.REQUIRED) for c in _DATA_COLS]
    checks += rules.checks()
    checks.append(
        (
            f"sale_date <> {d}",
            "date",
            f"'date ' || sale_date || ' outside the run interval [{day}, {nxt})'",
            rules_mod.IN_INTERVAL,
        )
    )
    items = ", ".join(
        f"CASE WHEN {cond} THEN {{'c': '{col}', 'r': {reason}, 'n': {_sql_str(name)}}} END"
        for cond, col, reason, name in checks
    )
    where = " OR ".join(f"({cond})" for cond, _, _, _ in checks)
    first_line = _LINE_EXPR.format(ord="f.first_ord")
    ord_ = "coalesce(s._ord, s.rowid - h.base + 1)"
    con.execute(
        f"""INSERT INTO _rejects (_src, _ord, _line, "column", reason, raw, _rid, rule)
        WITH simple AS (
            SELECT rowid AS _rid, unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS f
            FROM _stage WHERE {where}
        ),
        elsewhere AS (
            SELECT st.rowid AS _rid, 'order_id' AS col,
                   'order_id ' || st.order_id || ' already loaded for ' || s.sale_date AS reason,
                   '{rules_mod.OTHER_DAY}' AS rule
            FROM _stage st JOIN (SELECT order_id, sale_date FROM sales WHERE sale_date <> {d}) s
                 ON s.order_id = st.order_id
        ),
        bad AS (SELECT _rid FROM simple UNION SELECT _rid FROM elsewhere),
        -- keys seen more than once at all (cheap: one aggregate), then among those only the rows that passed
        -- every other rule: the first VALID occurrence is kept
        dup_ids AS (SELECT order_id FROM _stage GROUP BY order_id HAVING count(*) > 1),
        valid AS (
            SELECT rowid AS _rid, order_id FROM _stage
            WHERE order_id IN (SELECT order_id FROM dup_ids) AND rowid NOT IN (SELECT _rid FROM bad)
        ),
        dup_rows AS (
            SELECT _rid, order_id, first_value(_rid) OVER w AS first_rid, row_number() OVER w AS n
            FROM valid WINDOW w AS (PARTITION BY order_id ORDER BY _rid)
        ),
        firsts AS (
            SELECT d._rid, d.order_id, s._src AS first_src, coalesce(s._ord, s.rowid - h.base + 1) AS first_ord
            FROM dup_rows d JOIN _stage s ON s.rowid = d.first_rid JOIN _srcs h ON h._src = s._src
            WHERE d.n > 1
        ),
        dups AS (
            SELECT f._rid,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN 'fingerprint' ELSE 'order_id' END AS col,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN 'duplicate row ' ELSE 'duplicate order_id ' END
                   || f.order_id || ' (first at ' || f.first_src || ' line ' || {first_line} || ')' AS reason,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN '{rules_mod.DUPLICATE_ROW}'
                        ELSE '{rules_mod.DUPLICATE_KEY}' END AS rule
            FROM firsts f JOIN _srcs h ON h._src = f.first_src
            ASOF LEFT JOIN _gaps g ON g._src = f.first_src AND f.first_ord > g.g
        ),
        failures AS (
            SELECT _rid, f.c AS col, f.r AS reason, f.n AS rule FROM simple
            UNION ALL SELECT _rid, col, reason, rule FROM elsewhere
            UNION ALL SELECT _rid, col, reason, rule FROM dups
        ),
        per_row AS (
            SELECT _rid, string_agg(col, ', ') AS col, string_agg(DISTINCT reason, '; ') AS reason,
                   string_agg(DISTINCT rule, ', ') AS rule
            FROM failures GROUP BY _rid
        )
        SELECT s._src, {ord_}, {_LINE_EXPR.format(ord=ord_)},
               p.col, p.reason, w.raw, p._rid, p.rule
        FROM per_row p JOIN _stage s ON s.rowid = p._rid JOIN _srcs h ON h._src = s._src
        ASOF LEFT JOIN _gaps g ON g._src = s._src AND {ord_} > g.g
        LEFT JOIN _raws w ON w._src = s._src AND w._ord = s._ord"""
    )


def read_lines(path: str, wanted: Iterable[int], chunk: int = 1 << 23) -> dict[int, str]:
    """Lines ``wanted`` (1-based) of a file as they are in it (BOM and line ending removed). Newlines are found
    with numpy per 8 MB chunk (no Python loop per line: 1M lines in well under a second, bounded memory)."""
    import numpy as np

    targets, out = sorted(set(wanted)), {}
    ti, first_line, offset = 0, 1, 0  # first_line starts at byte offset
    with open(path, "rb") as f:
        carry = b""
        while ti < len(targets):
            data = f.read(chunk)
            buf = carry + data
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
            if not data:
                nl = np.append(nl, len(buf))  # the last line has no newline
            # line first_line + i ends at nl[i]; it starts after nl[i - 1] (or at 0)
            while ti < len(targets) and targets[ti] < first_line + len(nl):
                i = targets[ti] - first_line
                start = int(nl[i - 1]) + 1 if i else 0
                out[targets[ti]] = buf[start : int(nl[i])]
                ti += 1
            if not data:
                break
            cut = int(nl[-1]) + 1 if len(nl) else 0
            carry, first_line, offset = buf[cut:], first_line + len(nl), offset + cut
    return {k: v.decode("utf-8", "replace").rstrip("\r").removeprefix("\ufeff") for k, v in out.items()}


def _wanted_lines(con, files: list[str]) -> dict[str, dict[int, int]]:
    """Per CSV file: line number -> ``_rejects`` rowid of the rule rejects whose ``raw`` is the file's line."""
    out = {}
    for path in files:
        want = dict(con.execute("SELECT _line, rowid FROM _rejects WHERE _src = ? AND raw IS NULL", [path]).fetchall())
        if want:
            out[path] = want
    return out


def _read_wanted(wanted: dict[str, dict[int, int]]) -> list[tuple[int, str]]:
    return [(want[n], text) for path, want in wanted.items() for n, text in read_lines(path, want).items()]


def _fill_raw(con, found: list[tuple[int, str]]) -> None:
    """``raw`` of a rule-rejected CSV row = its line as it is in the file (read back by line number)."""
    if found:
        con.execute(
            "UPDATE _rejects SET raw = l.raw FROM (SELECT unnest(?) AS rid, unnest(?) AS raw) l "
            "WHERE _rejects.rowid = l.rid",
            [[r for r, _ in found], [t for _, t in found]],
        )


def gx_expectations(rules: Rules) -> list[tuple[str, dict[str, Any]]]:
    """(GX class name, kwargs) per rule (``ferry.validation.Expectation``), from the same rules file."""
    out: list[tuple[str, dict[str, Any]]] = [("ExpectColumnValuesToNotBeNull", {"column": c}) for c in _DATA_COLS]
    for r in rules.ranges:
        col = "sale_date" if r["column"] == "date" else r["column"]
        kw: dict[str, Any] = {"column": col}
        if "min" in r or "gt" in r:
            kw["min_value"] = r.get("min", r.get("gt"))
            kw["strict_min"] = "gt" in r
        if "max" in r or "lt" in r:
            kw["max_value"] = r.get("max", r.get("lt"))
            kw["strict_max"] = "lt" in r
        out.append(("ExpectColumnValuesToBeBetween", kw))
    if rules.total:
        out.append(("ExpectColumnValuesToBeBetween", {"column": "total_error", "max_value": rules.total["tolerance"]}))
    for a in rules.allowed:
        col = "sale_date" if a["column"] == "date" else a["column"]
        out.append(("ExpectColumnValuesToBeInSet", {"column": col, "value_set": list(a["values"])}))
    out.append(("ExpectColumnValuesToBeUnique", {"column": "order_id"}))
    return out


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


def gx_gate(df, day: date, rules: Rules):
    """Great Expectations over the rows about to be swapped in; raises ``ValidationFailed`` if any fail.

    The SQL rules already quarantined each failing row with its line number; this is the independent check
    that nothing slipped through before the partition is replaced.
    """
    from ferry.validation import ValidationFailed, validate

    if len(df):
        lo, hi = df["sale_date"].min(), df["sale_date"].max()
        if str(lo)[:10] != day.isoformat() or str(hi)[:10] != day.isoformat():
            raise ValidationFailed(f"accepted rows span {lo}..{hi}, expected only {day}")
    res = validate(df, gx_expectations(rules), name=f"sales_{day.isoformat()}")
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
    rules: Rules | None = None,
) -> LoadResult:
    """Validate the stage and, in one transaction, replace ``day``'s rows and rejects.

    If the rejects exceed ``max_reject_ratio``, only the rejects are replaced (for inspection) and
    ``RejectThresholdExceeded`` is raised; the day's sales stay as they were.
    """
    ensure_schema(con)
    rules = rules or rules_mod.load()
    _rule_rejects(con, day, rules)
    wanted = _wanted_lines(con, stage.csv_files)
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
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)
    # the rejected CSV lines are read back (numpy, GIL released) while DuckDB writes the accepted rows
    lines = pool.submit(_read_wanted, wanted) if wanted else None
    if gx and not over:
        # GX (pandas, Python) runs in a thread while DuckDB prepares the swap; COMMIT waits for its verdict.
        gate = pool.submit(gx_gate, gx_frame(con, day, gx_max_rows), day, rules)
    pool.shutdown(wait=False)
    d = f"DATE '{day.isoformat()}'"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM sales_rejects WHERE sale_date = {d}")
        if not over:
            result.replaced_rows = con.execute(f"DELETE FROM sales WHERE sale_date = {d}").fetchone()[0]
            # the order of rows in `sales` means nothing (line numbers live in _stage/_rejects): let DuckDB
            # write the accepted rows in parallel
            con.execute("SET preserve_insertion_order = false")
            try:
                con.execute(
                    f"""INSERT INTO sales SELECT {", ".join("s." + c for c in _DATA_COLS)}, s._src, ?,
                        now()::TIMESTAMP FROM {_ACCEPTED}""",
                    [run_id],
                )
            finally:
                con.execute("RESET preserve_insertion_order")
            con.execute(
                f"INSERT OR REPLACE INTO sales_loads VALUES ({d}, ?, ?, ?, ?, now()::TIMESTAMP)",
                [run_id, source, accepted, rejected],
            )
        if lines is not None:
            _fill_raw(con, lines.result())
        con.execute(
            f"""INSERT INTO sales_rejects (sale_date, run_id, source, line, "column", reason, raw, rejected_at, rule,
                                           rules_version)
            SELECT {d}, ?, r._src, coalesce(r._line, {_LINE_EXPR.format(ord="r._ord")}) AS line, r."column", r.reason,
                   r.raw, now()::TIMESTAMP, r.rule, ?
            FROM _rejects r {_LINE_JOIN.format(a="r", ord="r._ord")}
            ORDER BY r._src, line""",
            [run_id, rules.version],
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
        f"""SELECT source, line, "column", rule, reason, raw FROM sales_rejects
        WHERE sale_date = DATE '{day.isoformat()}' ORDER BY source, line LIMIT {int(limit)}"""
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# ---------------------------------------------------------------------- API client (ferry.sales.api)

SalesApiError = api.SalesApiError
SalesApiUnavailable = api.SalesApiUnavailable


def fetch_day(
    session, base_url: str, api_key: str | None, day: date, **kw
) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """``(source, records)`` per page with the ``ferry_v2`` profile (``ferry.sales.api.fetch_day`` for any)."""
    for src, records, _raws in api.fetch_day(session, base_url, api_key, day, api.profile("ferry_v2"), **kw):
        yield src, records
