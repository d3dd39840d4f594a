"""Health checks of the ``sales`` table: per-day counts with gap detection, nulls, types, business rules,
duplicate order ids. Each check is a row ``{check, status, detail}``; any ``FAIL`` fails the task."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from ferry.sales import COLUMNS, REGIONS

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


def check(con, end_day: date, days: int = 7) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return ``(checks, day_counts)``."""
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
    regions = ", ".join("'" + r.replace("'", "''") + "'" for r in REGIONS)
    rules = {
        "quantity > 0": "quantity <= 0",
        "unit_price >= 0": "unit_price < 0",
        "total_amount = quantity x unit_price (±0.01)": "abs(total_amount - quantity * unit_price) > 0.01",
        "region in known set": f"region NOT IN ({regions})",
    }
    for name, cond in rules.items():
        bad = con.execute(f"SELECT count(*) FROM sales WHERE {cond}").fetchone()[0]
        add(name, bad)
    dups = con.execute("SELECT count(*) - count(DISTINCT order_id) FROM sales").fetchone()[0]
    add("order_id unique", dups)
    return checks, counts
