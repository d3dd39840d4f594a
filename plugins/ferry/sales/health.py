"""Health checks of the ``sales`` table: per-day counts with gap detection, nulls, types, business rules
(``include/sales/rules.yaml``), duplicate order ids, values never seen before. Each check is a row
``{check, status, detail}``; any ``FAIL`` fails the task, ``NEW`` is a finding (reported, not a failure)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ferry.sales import rules as rules_mod
from ferry.sales.store import COLUMNS

EXPECTED_TYPES = {("sale_date" if c == "date" else c): t for c, t in COLUMNS.items()}


def day_counts(con, end_day: date, days: int) -> list[dict[str, Any]]:
    start = end_day - timedelta(days=days - 1)
    rows = con.execute(
        """SELECT d::DATE AS day, count(s.order_id) AS rows
        FROM range(?::DATE, ?::DATE + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)
        LEFT JOIN sales s ON s.sale_date = d::DATE GROUP BY 1 ORDER BY 1""",
        [start, end_day],
    ).fetchall()
    return [{"day": d.isoformat(), "rows": n, "status": "ok" if n else "GAP"} for d, n in rows]


def new_values(con, column: str, end_day: date, days: int) -> list[tuple[str, date]]:
    """Values of ``column`` first seen inside the window (and never before it), with the day they first came;
    none while there is no history before the window (a first load makes everything new)."""
    col = "sale_date" if column == "date" else column
    start = end_day - timedelta(days=days - 1)
    rows = con.execute(
        f"""WITH firsts AS (SELECT "{col}"::VARCHAR AS v, min(sale_date) AS first FROM sales
                            WHERE sale_date <= ? GROUP BY 1)
        SELECT v, first FROM firsts WHERE first >= ? AND EXISTS (SELECT 1 FROM sales WHERE sale_date < ?)
        ORDER BY first, v""",
        [end_day, start, start],
    ).fetchall()
    return [(v, d) for v, d in rows]


def check(
    con, end_day: date, days: int = 7, rules: rules_mod.Rules | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(checks, day_counts)``."""
    rules = rules or rules_mod.load()
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "sales" not in tables:
        return [{"check": "sales table", "status": "FAIL", "detail": "table sales does not exist"}], []
    checks: list[dict[str, Any]] = []

    def add(name: str, bad: int, detail: str = "") -> None:
        checks.append({"check": name, "status": "FAIL" if bad else "ok", "detail": detail or str(bad)})

    counts = day_counts(con, end_day, days)
    gaps = [c["day"] for c in counts if not c["rows"]]
    add(f"gaps in last {days} days (to {end_day})", len(gaps), ", ".join(gaps) or "none")
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'sales'"
        ).fetchall()
    )
    wrong = [f"{c}: {types.get(c)} (expected {t})" for c, t in EXPECTED_TYPES.items() if types.get(c) != t]
    add("column types", len(wrong), "; ".join(wrong) or "as expected")
    nulls = con.execute(
        "SELECT " + ", ".join(f'count(*) FILTER (WHERE "{c}" IS NULL)' for c in EXPECTED_TYPES) + " FROM sales"
    ).fetchone()
    null_cols = {c: n for c, n in zip(EXPECTED_TYPES, nulls, strict=True) if n}
    add("required values not null", sum(null_cols.values()), str(null_cols) if null_cols else "0")
    for cond, column, _reason, name in rules.checks():
        bad = con.execute(f"SELECT count(*) FROM sales WHERE {cond}").fetchone()[0]
        add(f"{name} ({column}, rules v{rules.version})", bad)
    dups = con.execute("SELECT count(*) - count(DISTINCT order_id) FROM sales").fetchone()[0]
    add("order_id unique", dups)
    for column in rules.track_new_values:
        new = new_values(con, column, end_day, days)
        checks.append(
            {
                "check": f"new {column} values",
                "status": "NEW" if new else "ok",
                "detail": ", ".join(f"{v!r} since {d}" for v, d in new) or "none",
            }
        )
    return checks, counts
