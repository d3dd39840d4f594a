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

import bisect
import csv
import json
import logging
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ferry.errors import FerryError
from ferry.sales import api
from ferry.sales import rules as rules_mod
from ferry.sales.rules import Rules
from ferry.sales.store import COLUMNS, ensure_schema

log = logging.getLogger(__name__)

_TYPED = ", ".join(f"{'sale_date' if c == 'date' else c} {t}" for c, t in COLUMNS.items())
# _stage: typed rows in source order, each with its source's number (_sid: 1, 2, ... in staging order; the path or
# page name is in the small _srcs table, joined only for rejects and the final insert). A row's position among its
# source's staged rows is rowid - base + 1 (k-th staged row: the reader and the page insert keep source order;
# WITH ORDINALITY cost 40%, and a path or position column on every staged row costs memory).
# _rejects: one row per rejected record; reader/cast rejects know their line, rule rejects their _ord and _rid
# (the staged rowid). _gaps/_srcs turn (_sid, _ord) back into a file line or record number: k + hdr (1 for a CSV
# header, 0 for an API page) + the records rejected before the row was staged (reader or cast rejects).
# _raws: the original JSON text of API records (a rejected CSV row's raw line is read back from its file).
_STAGE_DDL = f"""
CREATE OR REPLACE TEMP TABLE _stage (_sid INTEGER, {_TYPED});
CREATE OR REPLACE TEMP TABLE _rejects (_sid INTEGER, _ord BIGINT, _line BIGINT, "column" VARCHAR, reason VARCHAR,
                                       raw VARCHAR, _rid BIGINT, rule VARCHAR);
CREATE OR REPLACE TEMP TABLE _raws (_sid INTEGER, _ord BIGINT, raw VARCHAR);
CREATE OR REPLACE TEMP TABLE _gaps (_sid INTEGER, g BIGINT, j BIGINT);
CREATE OR REPLACE TEMP TABLE _srcs (_sid INTEGER, src VARCHAR, hdr BIGINT, base BIGINT);
"""
_DATA_COLS = [("sale_date" if c == "date" else c) for c in COLUMNS]
#: the original design's CSV: no order_id (rows are keyed by their fingerprint, ``include/sales/rules.yaml``)
CSV_WITHOUT_KEY = [c for c in COLUMNS if c != "order_id"]
# line of a staged record: k-th staged row of a source = k + hdr + rejected lines before it. With the rejected line
# r_j (rank j), g_j = r_j - hdr - j staged rows precede it; the ASOF join finds max j with g_j < k.
_LINE_JOIN = "JOIN _srcs h ON h._sid = {a}._sid ASOF LEFT JOIN _gaps g ON g._sid = {a}._sid AND {ord} > g.g"
_LINE_EXPR = "({ord} + h.hdr + coalesce(g.j, 0))"
# _gaps of source ? with header lines ? from its records rejected before staging (_line known, no _rid)
_GAPS_SQL = """INSERT INTO _gaps SELECT ?, g, max(j) FROM (
    SELECT _line - ? - row_number() OVER (ORDER BY _line) AS g, row_number() OVER (ORDER BY _line) AS j
    FROM (SELECT DISTINCT _line FROM _rejects WHERE _sid = ? AND _rid IS NULL)) GROUP BY g"""


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
    """Temp tables ``_stage`` (typed rows with their source's number, in source order) and ``_rejects`` on ``con``."""

    def __init__(self, con):
        self.con = con
        con.execute(_STAGE_DDL)
        self.sources: list[str] = []  # a source's number (_sid) is its position here + 1
        self.csv_files: list[str] = []

    def _new_source(self, source: str, hdr: int) -> int:
        self.sources.append(source)
        sid = len(self.sources)
        base = self.con.execute("SELECT count(*) FROM _stage").fetchone()[0]  # next rowid (no deletes on _stage)
        self.con.execute("INSERT INTO _srcs VALUES (?, ?, ?, ?)", [sid, source, hdr, base])
        return sid

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
        sid = self._new_source(path, 1)
        self.csv_files.append(path)
        con = self.con
        columns = "{" + ", ".join(f"{_sql_str(c)}: {_sql_str(COLUMNS[c])}" for c in header) + "}"
        select = ", ".join(f'"{c}"' if c in header else "NULL" for c in COLUMNS)
        con.execute("DROP TABLE IF EXISTS _csv_rej; DROP TABLE IF EXISTS _csv_scan")
        n = con.execute(
            f"""INSERT INTO _stage
            SELECT {sid}, {select}
            FROM read_csv(?, header=true, delim=',', quote='"', escape='"', columns={columns},
                          store_rejects=true, rejects_table='_csv_rej', rejects_scan='_csv_scan')""",
            [path],
        ).fetchone()[0]
        # Reader rejects: one per line (a line can fail several columns: keep them all in one reason).
        con.execute(
            """INSERT INTO _rejects (_sid, _ord, _line, "column", reason, raw, rule)
            SELECT ?, NULL, line, string_agg(column_name, ', ' ORDER BY column_idx),
                   string_agg(error_type || ': ' || error_message, '; ' ORDER BY column_idx),
                   trim(any_value(csv_line), chr(10) || chr(13)),
                   string_agg(DISTINCT lower(replace(error_type::VARCHAR, ' ', '_')), ', ')
            FROM _csv_rej GROUP BY line""",
            [sid],
        )
        con.execute(_GAPS_SQL, [sid, 1, sid])
        return n

    # ------------------------------------------------------------------ API records
    def add_records(self, source: str, records: list[dict[str, Any]], raws: list[str] | None = None) -> int:
        """Stage records keyed by Ferry's columns (record number = position in the page, from 1); ``raws``: each
        record's original JSON text (kept as ``raw`` if it is rejected). Bad values go to ``_rejects``."""
        import pyarrow as pa

        sid = self._new_source(source, 0)
        if not records:
            return 0
        cols: dict[str, list] = {"_ord": [], "_raw": []}
        cols.update({c: [] for c in COLUMNS})
        for i, rec in enumerate(records, start=1):
            cols["_ord"].append(i)
            cols["_raw"].append(raws[i - 1] if raws else json.dumps(rec, default=str))
            for c in COLUMNS:
                v = rec.get(c) if isinstance(rec, dict) else None
                cols[c].append(None if v is None else str(v))
        arrow = pa.table(cols)
        con = self.con
        con.register("_api_page", arrow)
        try:
            fails = {c: f'("{c}" IS NOT NULL AND TRY_CAST("{c}" AS {t}) IS NULL)' for c, t in COLUMNS.items()}
            casts = " UNION ALL ".join(
                f"""SELECT _ord, '{c}' AS "column",
                    'CAST: could not convert ''' || "{c}" || ''' to {t}' AS reason, _raw AS raw
                FROM _api_page WHERE {fails[c]}"""
                for c, t in COLUMNS.items()
            )
            con.execute(
                f"""INSERT INTO _rejects (_sid, _ord, _line, "column", reason, raw, rule)
                SELECT {sid}, NULL, _ord, string_agg("column", ', '), string_agg(reason, '; '),
                any_value(raw), 'cast' FROM ({casts}) GROUP BY _ord"""
            )
            con.execute(_GAPS_SQL, [sid, 0, sid])
            con.execute(f"INSERT INTO _raws SELECT {sid}, _ord, _raw FROM _api_page")
            typed = ", ".join(f'TRY_CAST("{c}" AS {t})' for c, t in COLUMNS.items())
            # in record order, like a CSV's rows: record number = position among the staged + rejected before
            con.execute(
                f"""INSERT INTO _stage SELECT {sid}, {typed} FROM _api_page
                WHERE NOT ({" OR ".join(fails.values())}) ORDER BY _ord"""
            )
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
    d = f"DATE '{day.isoformat()}'"
    checks = _row_checks(day, rules)
    items = ", ".join(
        f"CASE WHEN {cond} THEN {{'c': '{col}', 'r': {reason}, 'n': {_sql_str(name)}}} END"
        for cond, col, reason, name in checks
    )
    ord_ = "(s.rowid - h.base + 1)"
    # Most days repeat no key: distinct key hashes prove it (one cheap aggregate) and the search for repeated keys
    # (a GROUP BY over every key, then a join back: ~0.1 s of a 1M-row load) is skipped.
    repeats = con.execute("SELECT count(DISTINCT hash(order_id)) < count(*) FROM _stage").fetchone()[0]
    con.execute(
        _REJECTS_SQL.format(
            items=items,
            where=" OR ".join(f"({cond})" for cond, _, _, _ in checks),
            d=d,
            dup_ids="SELECT order_id FROM _stage "
            + ("GROUP BY order_id HAVING count(*) > 1" if repeats else "WHERE false"),
            ord_=ord_,
            first_line=_LINE_EXPR.format(ord="f.first_ord"),
            line=_LINE_EXPR.format(ord=ord_),
            other_day=rules_mod.OTHER_DAY,
            duplicate_row=rules_mod.DUPLICATE_ROW,
            duplicate_key=rules_mod.DUPLICATE_KEY,
        )
    )


def _row_checks(day: date, rules: Rules) -> list[tuple[str, str, str, str]]:
    """``(SQL condition, column, SQL reason, rule name)`` of every row rule: required values, the rules file's
    checks, the run's day."""
    nxt = (day + timedelta(days=1)).isoformat()
    checks = [(f'"{c}" IS NULL', c, "'required value missing'", rules_mod.REQUIRED) for c in _DATA_COLS]
    checks += rules.checks()
    reason = f"'date ' || sale_date || ' outside the run interval [{day}, {nxt})'"
    checks.append((f"sale_date <> DATE '{day.isoformat()}'", "date", reason, rules_mod.IN_INTERVAL))
    return checks


#: The rejects of the staged rows: row rules (``simple``), ids loaded for another day (``elsewhere``), repeated
#: keys among the rows that passed (``dups``: the first valid occurrence loads), one ``_rejects`` row per row.
_REJECTS_SQL = """INSERT INTO _rejects (_sid, _ord, _line, "column", reason, raw, _rid, rule)
        WITH simple AS (
            SELECT rowid AS _rid, unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS f
            FROM _stage WHERE {where}
        ),
        elsewhere AS (
            SELECT st.rowid AS _rid, 'order_id' AS col,
                   'order_id ' || st.order_id || ' already loaded for ' || s.sale_date AS reason,
                   '{other_day}' AS rule
            FROM _stage st JOIN (SELECT order_id, sale_date FROM sales WHERE sale_date <> {d}) s
                 ON s.order_id = st.order_id
        ),
        bad AS (SELECT _rid FROM simple UNION SELECT _rid FROM elsewhere),
        -- keys seen more than once at all (cheap: one aggregate), then among those only the rows that passed
        -- every other rule: the first VALID occurrence is kept
        dup_ids AS ({dup_ids}),
        valid AS (
            SELECT rowid AS _rid, order_id FROM _stage
            WHERE order_id IN (SELECT order_id FROM dup_ids) AND rowid NOT IN (SELECT _rid FROM bad)
        ),
        dup_rows AS (
            SELECT _rid, order_id, first_value(_rid) OVER w AS first_rid, row_number() OVER w AS n
            FROM valid WINDOW w AS (PARTITION BY order_id ORDER BY _rid)
        ),
        firsts AS (
            SELECT d._rid, d.order_id, s._sid AS first_sid, {ord_} AS first_ord
            FROM dup_rows d JOIN _stage s ON s.rowid = d.first_rid JOIN _srcs h ON h._sid = s._sid
            WHERE d.n > 1
        ),
        dups AS (
            SELECT f._rid,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN 'fingerprint' ELSE 'order_id' END AS col,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN 'duplicate row ' ELSE 'duplicate order_id ' END
                   || f.order_id || ' (first at ' || h.src || ' line ' || {first_line} || ')' AS reason,
                   CASE WHEN f.order_id LIKE 'fp-%' THEN '{duplicate_row}'
                        ELSE '{duplicate_key}' END AS rule
            FROM firsts f JOIN _srcs h ON h._sid = f.first_sid
            ASOF LEFT JOIN _gaps g ON g._sid = f.first_sid AND f.first_ord > g.g
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
        SELECT s._sid, {ord_}, {line},
               p.col, p.reason, w.raw, p._rid, p.rule
        FROM per_row p JOIN _stage s ON s.rowid = p._rid JOIN _srcs h ON h._sid = s._sid
        ASOF LEFT JOIN _gaps g ON g._sid = s._sid AND {ord_} > g.g
        LEFT JOIN _raws w ON w._sid = s._sid AND w._ord = {line}"""


def _newline_after(buf, pos: int, end: int, k: int, avg: float) -> tuple[int, int]:
    """``(index, k)`` of the ``k``-th (k >= 1) newline at or after ``pos`` in ``buf[:end]``, or ``(-1, c)`` with the
    ``c`` (< k) newlines there. ``count`` over a guessed span (``avg`` bytes per line), narrowed by halving, then
    ``rfind`` back over the last few lines: the bytes are counted about once, in C."""
    if k <= 8:  # the next few lines (many wanted): find them one by one
        for i in range(k):
            pos = buf.find(b"\n", pos, end) + 1
            if not pos:
                return -1, i
        return pos - 1, k
    seen = 0
    while True:
        q = min(end, pos + int((k - seen) * avg) + 256)
        c = buf.count(b"\n", pos, q)
        if seen + c >= k:
            break
        seen += c
        if q == end:
            return -1, seen
        pos = q
    need = k - seen  # the need-th newline in buf[pos:q], which holds c >= need
    while c - need > 16:
        mid = (pos + q) // 2
        c1 = buf.count(b"\n", pos, mid)
        if c1 >= need:
            q, c = mid, c1
        else:
            pos, need, c = mid, need - c1, c - c1
    for _ in range(c - need + 1):
        q = buf.rfind(b"\n", pos, q)
    return q, k


def read_lines(path: str, wanted: Iterable[int], chunk: int = 1 << 23) -> dict[int, str]:
    """Lines ``wanted`` (1-based) of a file as they are in it (BOM and line ending removed), through one reused
    buffer of ``chunk`` bytes (bounded memory). Newlines are counted in C (``bytearray.count``) from one wanted line
    to the next: the file is scanned about once, with no Python loop per line and no numpy in the task process."""
    targets, out = sorted(set(wanted)), dict[int, bytes]()
    buf = bytearray(chunk)
    keep = 0  # buf[:keep]: the start of line `line` (carried over from the previous chunk)
    line, ti, avg = 1, 0, 64.0
    with open(path, "rb", buffering=0) as f:
        while ti < len(targets):
            if len(buf) - keep < max(chunk // 2, 1):  # a line about as long as the buffer: grow it
                buf = buf[:keep] + bytearray(chunk)
            with memoryview(buf) as mv:
                got = f.readinto(mv[keep:])
            eof, end, pos = not got, keep + (got or 0), 0  # pos: start of line `line` in buf[:end]
            est = end / avg  # about this many lines in buf
            if (bisect.bisect_left(targets, line + est, ti) - ti) * 32 > est:  # many wanted here: split once
                parts = bytes(buf[:end]).split(b"\n")
                n = len(parts) if eof else len(parts) - 1  # complete lines (at the end of the file, all)
                last = bisect.bisect_left(targets, line + n, ti)
                out.update((t, parts[t - line]) for t in targets[ti:last])
                ti, line, pos = last, line + len(parts) - 1, end - len(parts[-1])
                avg = end / max(len(parts) - 1, 1)
                if not eof:
                    keep = end - pos
                    buf[:keep] = buf[pos:end]
                    continue
            while ti < len(targets):
                k = targets[ti] - line
                if k > 0:
                    nl, skipped = _newline_after(buf, pos, end, k, avg)
                    if nl < 0:  # fewer lines left in buf: the rest is the start of line `line + skipped`
                        line += skipped
                        if skipped:
                            pos = buf.rfind(b"\n", pos, end) + 1
                        break
                    avg = 0.9 * avg + 0.1 * (nl + 1 - pos) / k
                    pos, line = nl + 1, targets[ti]
                e = buf.find(b"\n", pos, end)
                if e < 0 and not eof:
                    break  # line `line` continues in the next chunk
                out[line] = bytes(buf[pos : e if e >= 0 else end])
                ti += 1
            if eof:
                break
            keep = end - pos
            buf[:keep] = buf[pos:end]
    return {k: v.decode("utf-8", "replace").rstrip("\r").removeprefix("\ufeff") for k, v in out.items()}


def _wanted_lines(con, stage: Stage) -> dict[str, dict[int, int]]:
    """Per CSV file: line number -> ``_rejects`` rowid of the rule rejects whose ``raw`` is the file's line."""
    out = {}
    for sid, path in enumerate(stage.sources, start=1):
        if path not in stage.csv_files:
            continue
        want = dict(con.execute("SELECT _line, rowid FROM _rejects WHERE _sid = ? AND raw IS NULL", [sid]).fetchall())
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


#: units of DuckDB's ``current_setting('memory_limit')`` ("18.8 GiB")
_UNITS = {u: 1 << (10 * i) for i, u in enumerate(("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"))}
#: memory the insert into ``sales`` may use beyond what is in use when it starts (per DuckDB thread; at least 128 MB)
WRITE_BUDGET_PER_THREAD = 64 << 20


def _cap_memory(con):
    """Cap DuckDB's ``memory_limit`` at what it uses now (mostly the stage) + a write budget, until the returned
    function restores it. The insert buffers row groups (up to 20% of the limit per thread) and writes them to the
    database file, compressed; with the default limit (80% of RAM) DuckDB also keeps every written block cached,
    so the peak RSS was the stage plus the partition. With the cap, written blocks leave memory instead (they are
    on disk) and fewer row groups wait in memory; the stage stays in memory (measured on 1M rows: no spill, peak
    396 -> 234 MB for this statement). Never raises the limit."""
    limit_s, threads = con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    try:
        num, unit = str(limit_s).split()
        limit = float(num) * _UNITS[unit]
    except (ValueError, KeyError):
        return lambda: None
    used = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] or 0
    cap = used + max(128 << 20, WRITE_BUDGET_PER_THREAD * int(threads))
    if cap >= limit:
        return lambda: None
    con.execute(f"SET memory_limit = '{cap >> 20}MiB'")

    def restore():
        con.execute("RESET memory_limit")  # exact if it was the default; else set back (as DuckDB printed it)
        if con.execute("SELECT current_setting('memory_limit')").fetchone()[0] != limit_s:
            con.execute(f"SET memory_limit = '{limit_s}'")

    return restore


#: Rows of the day the Great Expectations check samples.
GX_MAX_ROWS = 50_000


def replace_partition(
    con,
    stage: Stage,
    day: date,
    *,
    run_id: str,
    source: str,
    max_reject_ratio: float = 0.01,
    gx: bool = True,
    rules: Rules | None = None,
) -> LoadResult:
    """Validate the stage and, in one transaction, replace ``day``'s rows and rejects.

    If the rejects exceed ``max_reject_ratio``, only the rejects are replaced (for inspection) and
    ``RejectThresholdExceeded`` is raised; the day's sales stay as they were.
    """
    ensure_schema(con)
    rules = rules or rules_mod.load()
    _rule_rejects(con, day, rules)
    wanted = _wanted_lines(con, stage)
    result, over = _counts(con, day, source, max_reject_ratio)
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(2)
    # the rejected CSV lines are read back while DuckDB writes the accepted rows (it releases the GIL)
    lines = pool.submit(_read_wanted, wanted) if wanted else None
    # GX (pandas, Python) runs in a thread while DuckDB prepares the swap; COMMIT waits for its verdict.
    gate = pool.submit(gx_gate, gx_frame(con, day, GX_MAX_ROWS), day, rules) if gx and not over else None
    pool.shutdown(wait=False)
    d = f"DATE '{day.isoformat()}'"
    with _transaction(con):
        con.execute(f"DELETE FROM sales_rejects WHERE sale_date = {d}")
        if not over:
            result.replaced_rows = _write_accepted(con, d, run_id, result)
        if lines is not None:
            _fill_raw(con, lines.result())
        con.execute(
            f"""INSERT INTO sales_rejects (sale_date, run_id, source, line, "column", reason, raw, rejected_at, rule,
                                           rules_version)
            SELECT {d}, ?, h.src, coalesce(r._line, {_LINE_EXPR.format(ord="r._ord")}) AS line, r."column", r.reason,
                   r.raw, now()::TIMESTAMP, r.rule, ?
            FROM _rejects r {_LINE_JOIN.format(a="r", ord="r._ord")}
            ORDER BY h.src, line""",
            [run_id, rules.version],
        )
        if gate is not None:
            gate.result()  # raises ValidationFailed -> ROLLBACK
    result.swapped = not over
    if over:
        raise RejectThresholdExceeded(result)
    return result


def _counts(con, day: date, source: str, max_reject_ratio: float) -> tuple[LoadResult, bool]:
    """The day's counts from the stage and the rejects, and whether the rejects are over the ratio."""
    staged = con.execute("SELECT count(*) FROM _stage").fetchone()[0]
    rule_rejected = con.execute("SELECT count(*) FROM _rejects WHERE _rid IS NOT NULL").fetchone()[0]
    rejected = con.execute("SELECT count(*) FROM _rejects").fetchone()[0]
    candidates = staged + (rejected - rule_rejected)
    ratio = rejected / candidates if candidates else 0.0
    result = LoadResult(
        day=day.isoformat(),
        source=source,
        candidates=candidates,
        rows=staged - rule_rejected,
        reject_records=rejected,
        reject_ratio=round(ratio, 6),
        max_reject_ratio=max_reject_ratio,
        replaced_rows=0,
        swapped=False,
    )
    return result, ratio > max_reject_ratio


@contextmanager
def _transaction(con):
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _write_accepted(con, d: str, run_id: str, result: LoadResult) -> int:
    """Inside the swap: the day's old rows out, the accepted rows in, the load recorded; the rows replaced."""
    replaced = con.execute(f"DELETE FROM sales WHERE sale_date = {d}").fetchone()[0]
    # the order of rows in `sales` means nothing (line numbers live in _stage/_rejects): let DuckDB
    # write the accepted rows in parallel
    con.execute("SET preserve_insertion_order = false")
    restore = _cap_memory(con)
    try:
        con.execute(
            f"""INSERT INTO sales SELECT {", ".join("s." + c for c in _DATA_COLS)}, h.src, ?,
                now()::TIMESTAMP FROM {_ACCEPTED} JOIN _srcs h ON h._sid = s._sid""",
            [run_id],
        )
    finally:
        restore()
        con.execute("RESET preserve_insertion_order")
    con.execute(
        f"INSERT OR REPLACE INTO sales_loads VALUES ({d}, ?, ?, ?, ?, now()::TIMESTAMP)",
        [run_id, result.source, result.rows, result.reject_records],
    )
    return replaced


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
    session, base_url: str, api_key: str | None, day: date, *, page_size: int = 500, **retry
) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    """``(source, records)`` per page with the ``ferry_v2`` profile (``ferry.sales.api.fetch_day`` for any);
    ``retry``: the fields of ``api.Retry`` (attempts, backoff, timeout, sleep)."""
    prof = api.profile("ferry_v2")
    pages = api.fetch_day(session, base_url, api_key, day, prof, page_size=page_size, retry=api.Retry(**retry))
    for src, records, _raws in pages:
        yield src, records
