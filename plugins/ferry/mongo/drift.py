"""Drift between a production database and its structure clone, and the additive repair."""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry.mongo import clone, structure

#: Drift a repair can fix without dropping anything.
ADDITIVE = ("create", "collMod")


@dataclass
class DriftResult:
    source: str
    target: str
    rows: list[dict] = field(default_factory=list)  # structure.diff rows, before any repair
    repaired: list[dict] = field(default_factory=list)  # plan rows applied by repair
    remaining: list[dict] = field(default_factory=list)  # diff rows after the repair
    failures: list[dict] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.remaining)


def check(source_db, target_db, *, repair: bool = False) -> DriftResult:
    """Diff ``source_db`` against ``target_db``; with ``repair`` create what is missing and collMod validators."""
    src = structure.read_structure(source_db)
    if not src["collections"]:
        raise clone.GuardError(f"source database {source_db.name!r} has no collections (does it exist?)")
    tgt = structure.read_structure(target_db)
    res = DriftResult(source=source_db.name, target=target_db.name, rows=structure.diff(src, tgt))
    res.remaining = res.rows
    if repair and res.rows:
        plan = [r for r in clone.plan_clone(src, tgt) if r["action"] in ADDITIVE]
        res.failures, _ = clone.apply_plan(target_db, plan)
        res.repaired = plan
        res.remaining = structure.diff(src, structure.read_structure(target_db))
    return res


def table_rows(res: DriftResult, rows: list[dict] | None = None) -> list[dict]:
    """Diff rows ready for ``ferry.report.table`` (BSON values as JSON)."""
    return [
        {"source": res.source, "target": res.target, "collection": r["collection"], "item": r["item"],
         "change": r["change"], "in source": _text(r["source"]), "in target": _text(r["target"])}
        for r in (res.rows if rows is None else rows)
    ]


def _text(value) -> str:
    return "" if value is None else structure.json_text(value)
