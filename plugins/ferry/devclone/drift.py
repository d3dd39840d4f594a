"""Drift between a production database and its structure clone, and the repair (create what is missing, collMod
validation rules, drop + create changed indexes; never drops a collection or an index only the clone has)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ferry.devclone import clone, search_indexes, structure

#: Plan actions a repair applies: create what is missing, collMod validation rules, and drop + create an
#: index whose spec changed (its keys' order included). Indexes only the clone has are never dropped.
REPAIRS = ("create", "collMod", "drop")


@dataclass
class DriftResult:
    source: str
    target: str
    rows: list[dict] = field(default_factory=list)  # diff rows, before any repair
    repaired: list[dict] = field(default_factory=list)  # plan rows applied by repair
    remaining: list[dict] = field(default_factory=list)  # diff rows after the repair
    failures: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    search_report: str | None = None

    @property
    def drifted(self) -> bool:
        return bool(self.remaining)


def search_diff(source: dict[str, list[dict]], target: dict[str, list[dict]]) -> list[dict]:
    """Diff rows for search-index definitions (``{collection: [{name, type, definition}]}``)."""
    rows = []
    for coll in sorted(set(source) | set(target)):
        s = {d["name"]: d for d in source.get(coll, [])}
        t = {d["name"]: d for d in target.get(coll, [])}
        for name in sorted(set(s) | set(t)):
            change = (
                "missing"
                if name not in t
                else "extra"
                if name not in s
                else "different"
                if s[name] != t[name]
                else None
            )
            if change:
                rows.append(
                    {
                        "collection": coll,
                        "item": f"search index {name}",
                        "change": change,
                        "source": s.get(name),
                        "target": t.get(name),
                    }
                )
    return rows


def fix_hint(remaining: list[dict], repaired: bool) -> str:
    """What makes ``remaining`` drift go away: repair creates and re-creates, it never drops what only the
    clone has (a clone run with ``drop_extra_indexes=true`` does)."""
    extra = any(r["change"] == "extra" for r in remaining)
    fixable = any(r["change"] != "extra" for r in remaining)
    hints = []
    if fixable:
        hints.append(
            "see the repair failures below" if repaired else "rerun with repair=true to create what is missing"
        )
    if extra:
        hints.append(
            "what only the clone has stays: drop it by hand, or run dev_db_structure_clone with "
            "drop_extra_indexes=true (and allow_nonempty_target=true if the clone holds documents)"
        )
    return "; ".join(hints) or "see the repair failures below"


def _unbuildable(rows: list[dict], version, dbname: str, notes: list[str]) -> list[dict]:
    """``rows`` without the missing indexes the clone's server cannot build (each becomes a note)."""
    kept = []
    for r in rows:
        why = (
            structure.unsupported_index(r["source"], version)
            if r["change"] == "missing" and r["item"].startswith("index ")
            else None
        )
        if why:
            notes.append(f"{dbname}.{r['collection']} {r['item']}: {why}")
        else:
            kept.append(r)
    return kept


def _read(source_db, target_db, include_search: bool, reader, notes: list[str]):
    clone.check_source(source_db)
    src = structure.read_structure(source_db)
    tgt = structure.read_structure(target_db)
    rows = _unbuildable(structure.diff(src, tgt), clone.server_version(target_db), target_db.name, notes)
    s_search = t_search = None
    if include_search:
        s_search, why = clone.read_search(source_db, src["collections"], reader)
        if s_search:
            t_search, why_t = clone.read_search(target_db, tgt["collections"], reader)
            if why_t:
                n = sum(len(v) for v in s_search.values())
                notes.append(
                    f"{target_db.name}: {n} search index(es) not verified, the target cannot list them ({why_t})"
                )
                s_search = t_search = None
            else:
                rows += search_diff(s_search, t_search)
    return src, tgt, rows, s_search, t_search


def check(
    source_db,
    target_db,
    *,
    repair: bool = False,
    include_search: bool = False,
    search_reader=search_indexes.read,
    report_url: str | Path | None = None,
) -> DriftResult:
    """Diff ``source_db`` against ``target_db``; with ``repair`` create what is missing, collMod validators and
    re-create changed indexes."""
    res = DriftResult(source=source_db.name, target=target_db.name)
    src, tgt, res.rows, s_search, t_search = _read(source_db, target_db, include_search, search_reader, res.notes)
    res.remaining = res.rows
    if repair and res.rows:
        plan = [
            r
            for r in clone.plan_clone(
                src,
                tgt,
                recreate_indexes=True,
                source_search=s_search,
                target_search=t_search,
                target_version=clone.server_version(target_db),
            )
            if r["action"] in REPAIRS
        ]
        res.failures, _ = clone.apply_plan(target_db, plan)
        s_fail, res.search_report, _ = clone.apply_search(target_db, plan, report_url=report_url)
        res.failures += s_fail
        res.repaired = plan
        res.remaining = _read(source_db, target_db, include_search, search_reader, [])[2]
    return res


def table_rows(res: DriftResult, rows: list[dict] | None = None) -> list[dict]:
    """Diff rows ready for ``ferry.report.table`` (BSON values as JSON)."""
    return [
        {
            "source": res.source,
            "target": res.target,
            "collection": r["collection"],
            "item": r["item"],
            "change": r["change"],
            "what differs": r.get("how", ""),
            "in source": _text(r["source"]),
            "in target": _text(r["target"]),
        }
        for r in (res.rows if rows is None else rows)
    ]


def _text(value) -> str:
    return "" if value is None else structure.json_text(value)
