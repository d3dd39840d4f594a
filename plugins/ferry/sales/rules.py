"""Business rules of the sales load from ``include/sales/rules.yaml`` (versioned): allowed values, ranges, the
``total = quantity × unit_price`` tolerance, the key. The load checks them in SQL (``checks``); the health
check and the Great Expectations sample use the same definitions.

    r = rules.load()                 # or rules.load("my_rules.yaml")
    r.version, r.allowed_values("region"), r.checks()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry import settings
from ferry.errors import FerryError
from ferry.sales.store import COLUMNS

RULES_FILE = settings.include("sales", "rules.yaml")
BUSINESS = [c for c in COLUMNS if c != "order_id"]
_SQL_COL = {c: ("sale_date" if c == "date" else c) for c in COLUMNS}
_OPS = {"min": ">=", "max": "<=", "gt": ">", "lt": "<"}
_NOT = {"min": "<", "max": ">", "gt": "<=", "lt": ">="}

#: rule names of the checks that are not in the file
REQUIRED, IN_INTERVAL, DUPLICATE_KEY, DUPLICATE_ROW, OTHER_DAY = (
    "required",
    "date_in_interval",
    "duplicate_key",
    "duplicate_row",
    "loaded_other_day",
)


class RulesError(FerryError, ValueError):
    """The rules file is unusable (errors name the file and the field)."""


def sql_str(s: Any) -> str:
    return "'" + str(s).replace("'", "''") + "'"


@dataclass(frozen=True)
class Rules:
    version: int
    allowed: list[dict[str, Any]] = field(default_factory=list)
    ranges: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] | None = None
    natural_key: str | None = "order_id"
    fingerprint: list[str] = field(default_factory=lambda: list(BUSINESS))
    track_new_values: list[str] = field(default_factory=list)
    path: str = ""

    def allowed_values(self, column: str) -> list[str] | None:
        for a in self.allowed:
            if a["column"] == column:
                return list(a["values"])
        return None

    def fingerprint_sql(self, alias: str = "") -> str:
        """``'fp-' || md5(...)`` over the fingerprint columns (NULL-safe, unambiguous separators)."""
        a = alias + "." if alias else ""
        parts = ", ".join(f"coalesce({a}\"{_SQL_COL[c]}\"::VARCHAR, '\\N')" for c in self.fingerprint)
        return f"'fp-' || md5(concat_ws(chr(31), {parts}))"

    def checks(self) -> list[tuple[str, str, str, str]]:
        """``(failing condition, column, reason expression, rule name)`` per row rule, in SQL over Ferry's
        staged columns (``sale_date`` for ``date``)."""
        out: list[tuple[str, str, str, str]] = []
        for a in self.allowed:
            col = _SQL_COL[a["column"]]
            values = ", ".join(sql_str(v) for v in a["values"])
            out.append(
                (
                    f'"{col}" NOT IN ({values})',
                    a["column"],
                    f"'unknown {a['column']} ''' || \"{col}\" || ''''",
                    a["name"],
                )
            )
        for r in self.ranges:
            col = _SQL_COL[r["column"]]
            for op in ("min", "max", "gt", "lt"):
                if op in r:
                    bound = r[op]
                    out.append(
                        (
                            f'"{col}" {_NOT[op]} {bound}',
                            r["column"],
                            f"'{r['column']} must be {_OPS[op]} {bound} (got ' || \"{col}\" || ')'",
                            r["name"],
                        )
                    )
        if self.total:
            tol = float(self.total.get("tolerance", 0.01))
            out.append(
                (
                    f"abs(total_amount - quantity * unit_price) > {tol}",
                    "total_amount",
                    "'total_amount ' || total_amount || ' != quantity x unit_price = ' || (quantity * unit_price)",
                    self.total.get("name", "total_matches"),
                )
            )
        return out


def rules_file(path: str | Path | None = None) -> Path:
    return Path(path) if path else settings.file_setting("FERRY_SALES_RULES")


def _read(p: Path) -> dict:
    """The rules file as a mapping with only known keys and an integer version (else ``RulesError``)."""
    import yaml

    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise RulesError(f"{p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"{p}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise RulesError(f"{p}: expected a mapping with version, allowed, ranges, total, key")
    unknown = set(doc) - {"version", "allowed", "ranges", "total", "key", "track_new_values"}
    if unknown:
        raise RulesError(f"{p}: unknown keys {sorted(unknown)}")
    if not isinstance(doc.get("version"), int):
        raise RulesError(f"{p}: version: an integer is required (bump it when a rule changes)")
    return doc


def _keys(p: Path, doc: dict) -> tuple[str | None, list[str], list[str]]:
    """``key.natural``, ``key.fingerprint`` and ``track_new_values``, checked."""
    key = doc.get("key") or {}
    fp = key.get("fingerprint") or list(BUSINESS)
    bad = [c for c in fp if c not in COLUMNS]
    if bad:
        raise RulesError(f"{p}: key.fingerprint: {bad} are not columns ({', '.join(COLUMNS)})")
    natural = key.get("natural", "order_id")
    if natural not in (None, "order_id"):
        raise RulesError(f"{p}: key.natural: only order_id (or null: always fingerprint) is supported")
    track = list(doc.get("track_new_values") or [])
    if any(c not in COLUMNS for c in track):
        raise RulesError(f"{p}: track_new_values: {track} must be columns ({', '.join(COLUMNS)})")
    return natural, list(fp), track


def load(path: str | Path | None = None) -> Rules:
    p = rules_file(path)
    doc = _read(p)
    names: set[str] = set()

    def rule(i: int, section: str, r: Any, needs: tuple[str, ...]) -> dict[str, Any]:
        where = f"{p}: {section}[{i}]"
        if not isinstance(r, dict) or not r.get("name") or r.get("column") not in COLUMNS:
            raise RulesError(f"{where}: needs a name and a column (one of {', '.join(COLUMNS)}); got {r!r}")
        if r["name"] in names:
            raise RulesError(f"{where}: rule name {r['name']!r} used twice")
        names.add(r["name"])
        if not any(k in r for k in needs):
            raise RulesError(f"{where} ({r['name']}): needs one of {', '.join(needs)}")
        return r

    allowed = [rule(i, "allowed", r, ("values",)) for i, r in enumerate(doc.get("allowed") or [])]
    for i, a in enumerate(allowed):
        if not isinstance(a["values"], list) or not a["values"]:
            raise RulesError(f"{p}: allowed[{i}] ({a['name']}): values must be a non-empty list")
    ranges = [rule(i, "ranges", r, tuple(_OPS)) for i, r in enumerate(doc.get("ranges") or [])]
    for i, r in enumerate(ranges):
        for op in _OPS:
            if op in r and not isinstance(r[op], int | float):
                raise RulesError(f"{p}: ranges[{i}] ({r['name']}): {op} must be a number, got {r[op]!r}")
    total = doc.get("total")
    if total is not None and not isinstance((total or {}).get("tolerance"), int | float):
        raise RulesError(f"{p}: total.tolerance must be a number")
    natural, fp, track = _keys(p, doc)
    return Rules(
        version=doc["version"],
        allowed=allowed,
        ranges=ranges,
        total=total,
        natural_key=natural,
        fingerprint=fp,
        track_new_values=track,
        path=str(p),
    )
