"""Draft a ``production_etl`` mapping from a PostgreSQL schema: ``python -m ferry.etl.scaffold`` and the
``production_etl_scaffold`` DAG.

It reads the catalog (tables, columns and their types, primary, foreign and unique keys, indexes: the
same snapshot ``detect_schema`` takes), row counts, the churn PostgreSQL's statistics saw and, per foreign
key, the fan-out (children per parent: maximum and p99, over every row below ``Limits.exact_below`` child
rows, else over a sample of parents), then decides:

- a table that other tables point at, or that has no bounded parent, is a **collection** (primary key as
  ``_id``; without one, a unique NOT NULL column; without either it is reported, not guessed);
- a leaf table (nothing points at it, not even itself) whose rows belong to one parent (a NOT NULL foreign
  key) with a bounded fan-out is
  **embed_many** in the parent's collection; a join table (its key is two foreign keys) is an array of
  references (``embed_many`` of the other key) in its first parent;
- every many-to-one foreign key is a **reference**, plus an **embed_one** copy when the parent is small and
  rarely changes; self-references and foreign-key cycles stay references;
- the watermark is an indexed ``updated_at``-like column when one exists, else ``xmin``.

Every suggestion carries a YAML comment with the figures it was based on and the alternative; what needs a
decision (composite keys, keyless tables, columns that become text) is a comment too. The draft parses
with ``ferry.etl.mapping`` and loads as it is. See docs/etl.md ("Drafting a mapping").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from ferry.etl.limits import DEFAULT as DEFAULT_LIMITS
from ferry.etl.limits import Limits

#: names YAML would read as something other than a string
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_UPDATED = re.compile(r"^(updated|modified|last_modified|last_updated|changed)(_at|_on|_time|_ts)?$", re.I)


# --------------------------------------------------------------------------- BSON per PostgreSQL type

#: PostgreSQL type (``pg_type.typname``, after domains) -> (BSON type, note). A note marks a conversion the
#: user should know about; "(text)" ones have no BSON counterpart and keep PostgreSQL's text form.
TYPES: dict[str, tuple[str, str]] = {
    "int2": ("int", ""),
    "int4": ("int", ""),
    "int8": ("int or long", "int when the value fits 32 bits"),
    "oid": ("int or long", ""),
    "numeric": ("decimal", "Decimal128, or double with defaults.numeric: double; NaN and >34 digits: quarantined"),
    "float4": ("double", "NaN and ±Infinity kept"),
    "float8": ("double", "NaN and ±Infinity kept"),
    "money": ("string (text)", "with the currency symbol of lc_monetary, e.g. '$12.34'"),
    "bool": ("bool", ""),
    "text": ("string", ""),
    "varchar": ("string", ""),
    "bpchar": ("string", "char(n) keeps its padding"),
    "name": ("string", ""),
    "citext": ("string", ""),
    "uuid": ("string", ""),
    "date": ("date", "midnight UTC"),
    "timestamp": ("date", "read as UTC; milliseconds"),
    "timestamptz": ("date", "UTC; milliseconds"),
    "time": ("string", "ISO 8601, e.g. '12:34:56.789000'"),
    "timetz": ("string", "ISO 8601 with offset"),
    "interval": ("double", "seconds; a month counts 30 days"),
    "json": ("object", "any JSON value (object, array, string, number, bool, null)"),
    "jsonb": ("object", "any JSON value (object, array, string, number, bool, null)"),
    "bytea": ("binData", ""),
    "xml": ("string (text)", ""),
    "inet": ("string", "e.g. '10.0.0.1/24'"),
    "cidr": ("string", "e.g. '10.0.0.0/8'"),
    "macaddr": ("string (text)", ""),
    "bit": ("string (text)", ""),
    "varbit": ("string (text)", ""),
    "tsvector": ("string (text)", ""),
    "tsquery": ("string (text)", ""),
}
#: by ``pg_type.typtype`` / ``typcategory`` when the name is not in ``TYPES``
KINDS = {
    "e": ("string", "enum label"),
    "r": ("string (text)", "range, e.g. '[1, 5)'"),
    "m": ("string (text)", "multirange"),
    "c": ("string (text)", "composite, PostgreSQL's row text form"),
    "G": ("string (text)", "geometric, e.g. '(1,2)'"),
}
_UNKNOWN = ("string (text)", "a type Ferry has no conversion for: its text form")


def bson_type(typname: str, typtype: str = "b", category: str = "U", array: bool = False) -> tuple[str, str]:
    """The BSON type a column of this PostgreSQL type becomes, and the note on the conversion."""
    bson, note = TYPES.get(typname) or KINDS.get(typtype) or KINDS.get(category) or _UNKNOWN
    return (f"array of {bson}", note) if array else (bson, note)


# --------------------------------------------------------------------------- survey


@dataclass
class Table:
    name: str
    columns: dict[str, dict]  # the snapshot's columns, plus "bson" and "note"
    primary_key: list[str]
    foreign_keys: list[dict]
    unique: list[list[str]]
    indexes: dict[str, str]
    rows: int = 0
    width: int = 0  # average row size in bytes (sampled)
    churn: float | None = None  # (updates + deletes) / rows since PostgreSQL's statistics were reset
    fanout: dict[str, dict] = field(default_factory=dict)  # fk column -> {"max", "p99", "parents", "sampled"}


_TYPES_SQL = """
WITH cols AS (
  SELECT c.relname, a.attname, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS base
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped)
SELECT cols.relname, cols.attname, b.typcategory = 'A', coalesce(e.typname, b.typname),
       coalesce(e.typtype, b.typtype), coalesce(e.typcategory, b.typcategory)
FROM cols JOIN pg_type b ON b.oid = cols.base LEFT JOIN pg_type e ON e.oid = b.typelem AND b.typcategory = 'A'
"""
_STATS_SQL = """
SELECT c.relname, c.reltuples::bigint, coalesce(s.n_tup_upd + s.n_tup_del, 0), coalesce(s.n_live_tup, 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
"""


def survey(conn, schema: str = "public", tables: list[str] | None = None, limits: Limits = DEFAULT_LIMITS) -> dict:
    """What the draft is based on: ``{"schema", "tables": {name: Table}, "missing": [asked, not found]}``."""
    from ferry.etl.schema import snapshot

    snap = snapshot(conn, schema)["tables"]
    wanted = set(tables or snap)
    out = {
        n: Table(n, t["columns"], t["primary_key"], t["foreign_keys"], t["unique"], t["indexes"])
        for n, t in sorted(snap.items())
        if n in wanted
    }
    for table, col, array, typname, typtype, category in conn.execute(_TYPES_SQL, (schema,)).fetchall():
        if table in out and col in out[table].columns:
            bson, note = bson_type(typname, typtype, category, array)
            out[table].columns[col].update(bson=bson, note=note, typname=typname)
    for name, estimate, changes, live in conn.execute(_STATS_SQL, (schema,)).fetchall():
        if name in out:
            t = out[name]
            t.rows = _count(conn, schema, name) if estimate < limits.exact_below else int(estimate)
            t.churn = round(changes / max(t.rows, live, 1), 3)
            t.width = _width(conn, schema, name)
    for t in out.values():
        for fk in t.foreign_keys:
            if len(fk["columns"]) == 1 and fk["ref_table"] in out:
                t.fanout[fk["columns"][0]] = _fanout(conn, schema, t, fk["columns"][0], limits)
    return {"schema": schema, "tables": out, "missing": sorted(wanted - set(snap))}


def _count(conn, schema: str, table: str) -> int:
    q = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    return int(conn.execute(q).fetchone()[0])


def _width(conn, schema: str, table: str) -> int:
    q = sql.SQL("SELECT coalesce(avg(pg_column_size(t.*)), 0)::int FROM (SELECT * FROM {}.{} LIMIT 1000) t")
    return int(conn.execute(q.format(sql.Identifier(schema), sql.Identifier(table))).fetchone()[0])


def _fanout(conn, schema: str, t: Table, col: str, limits: Limits) -> dict:
    """Children per parent of ``t.col``: every row below ``limits.exact_below`` rows, else the children of
    up to 10,000 parents drawn from a block sample (the counts of those parents are exact)."""
    c, tab = sql.Identifier(col), sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(t.name))
    sampled = t.rows >= limits.exact_below
    where = sql.SQL("{c} IS NOT NULL").format(c=c)
    if sampled:
        pct = sql.Literal(min(100.0, 100.0 * 50_000 / max(t.rows, 1)))
        sample = "{c} IN (SELECT {c} FROM {t} TABLESAMPLE SYSTEM ({p}) WHERE {c} IS NOT NULL LIMIT 10000)"
        where = sql.SQL(sample).format(c=c, t=tab, p=pct)
    q = sql.SQL(
        "SELECT coalesce(max(n), 0), coalesce(percentile_disc(0.99) WITHIN GROUP (ORDER BY n), 0), count(*) "
        "FROM (SELECT count(*) AS n FROM {t} WHERE {w} GROUP BY {c}) g"
    ).format(t=tab, w=where, c=c)
    mx, p99, parents = conn.execute(q).fetchone()
    return {"max": int(mx), "p99": int(p99), "parents": int(parents), "sampled": sampled}


# --------------------------------------------------------------------------- decisions


class ScaffoldError(ValueError):
    """Nothing usable to draft (an unknown table, no table with a key)."""


@dataclass
class Suggestion:
    """One mapping entry (a collection or a relation) and the comment lines that explain it."""

    body: dict[str, Any]
    why: list[str] = field(default_factory=list)
    relations: list[Suggestion] = field(default_factory=list)


@dataclass
class _Plan:
    tables: dict[str, Table]
    limits: Limits
    keys: dict[str, tuple[str | list[str] | None, str]] = field(default_factory=dict)
    embedded: dict[str, tuple[str, Suggestion]] = field(default_factory=dict)  # child -> (parent, embed_many)
    size: dict[str, int] = field(default_factory=dict)  # estimated largest document per collection
    unmapped: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)  # table -> comment lines for its collection


def _key(t: Table) -> tuple[str | list[str] | None, str]:
    """The ``_id`` column (a list for a composite key) and why; ``(None, why not)`` for a table without a key
    (``keys.table_key``: the primary key, else a unique constraint of NOT NULL columns)."""
    from ferry.etl import keys

    key = keys.table_key({"primary_key": t.primary_key, "unique": t.unique, "columns": t.columns})
    if not key:
        return (
            None,
            "no primary key and no unique NOT NULL column(s): add one (production_etl needs a key per document)",
        )
    if len(key) == 1:
        return key[0], "primary key" if key == list(t.primary_key) else (
            f"no primary key: the unique NOT NULL column {key[0]} is the _id"
        )
    what = "composite primary key" if key == list(t.primary_key) else "no primary key: the unique NOT NULL key"
    return key, (
        f"{what} {keys.label(key)}: _id is a sub-document of its columns in key order; a reference cannot point "
        "at it (a reference is one column); its children embed with a foreign_key list"
    )


def _cyclic(tables: dict[str, Table]) -> set[tuple[str, str]]:
    """Foreign-key edges (table, referenced table) that lie on a cycle, self-references included."""
    edges = {n: {fk["ref_table"] for fk in t.foreign_keys if fk["ref_table"] in tables} for n, t in tables.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            n = todo.pop()
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(edges.get(n, ()))
        return False

    return {(n, r) for n, refs in edges.items() for r in refs if reaches(r, n)}


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def _fan(f: dict) -> str:
    return f"max {f['max']:,}, p99 {f['p99']:,} over {f['parents']:,} parents{' (sampled)' if f['sampled'] else ''}"


def _embed_children(p: _Plan, pointed: set[str]) -> None:
    """Leaf tables whose rows belong to one parent with a bounded fan-out: embed_many (join tables too)."""
    for n, t in p.tables.items():
        if n in pointed:
            continue
        fks = [fk for fk in t.foreign_keys if len(fk["columns"]) == 1 and fk["ref_table"] != n]
        fks = [fk for fk in fks if fk["ref_table"] in p.tables and isinstance(p.keys[fk["ref_table"]][0], str)]
        join = len(fks) == 2 and set(t.primary_key) == {fk["columns"][0] for fk in fks}
        for i, fk in enumerate(fks[:1] if join else fks):
            col, parent = fk["columns"][0], fk["ref_table"]
            f, lim = t.fanout[col], p.limits
            grown = p.size[parent] + f["max"] * t.width
            if t.columns[col]["nullable"]:
                p.notes.setdefault(n, []).append(
                    f"not embedded in {parent}: {col} is nullable (a row without a parent would be in no document)"
                )
                continue
            if f["max"] > lim.embed_many_max or f["p99"] > lim.embed_many_p99 or grown > lim.document_bytes:
                p.notes.setdefault(n, []).append(
                    f"not embedded in {parent}: {_fan(f)} children per {parent} row, ~{_kib(grown)} documents "
                    f"(limits: max {lim.embed_many_max:,}, p99 {lim.embed_many_p99:,}, {_kib(lim.document_bytes)})"
                )
                continue
            body = {"kind": "embed_many", "table": n, "foreign_key": col, "as": n}
            rest = [c for c in t.primary_key if c != col]  # the key within one parent
            order = fks[1]["columns"][0] if join else (rest[0] if len(rest) == 1 else None)
            if order:
                body["order_by"] = order
            what = (
                f"join table (its key is two foreign keys): an array of references to {fks[1]['ref_table']} "
                f"({fks[1]['columns'][0]}); alternative: the same array in {fks[1]['ref_table']} "
                f"(foreign_key: {fks[1]['columns'][0]})"
                if join
                else f"alternative: its own collection with a reference to {parent}"
            )
            why = [
                f"embed_many {n}: {t.rows:,} rows of ~{t.width} B; per {parent} row {_fan(f)}; "
                f"largest document ~{_kib(grown)} (limits: max {lim.embed_many_max:,}, p99 {lim.embed_many_p99:,}, "
                f"{_kib(lim.document_bytes)})",
                what,
            ]
            # a join table's other key is the array's content, not another parent
            others = [] if join else [o["ref_table"] for j, o in enumerate(fks) if j != i]
            if others:
                why.append(f"it also points at {', '.join(others)}: embedded under the first bounded parent")
            p.size[parent] = grown
            p.embedded[n] = (parent, Suggestion(body, why))
            p.notes.pop(n, None)
            break


def _watermark(t: Table) -> tuple[str, str]:
    indexed = {_first_column(d) for d in t.indexes.values()}
    like = [c for c, spec in t.columns.items() if _UPDATED.match(c) and spec.get("typname", "").startswith("timestamp")]
    for c in like:
        if c in indexed:
            return c, f"{c} is indexed: rows changed since the last run are read by it"
    if like:
        return "xmin", f"{like[0]} is not indexed (reading by it would scan the table): PostgreSQL's row version"
    return "xmin", "no updated_at-like column: PostgreSQL's row version"


def _first_column(index_def: str) -> str:
    m = re.search(r"\(\s*\"?([^\",) ]+)", index_def)
    return m.group(1) if m else ""


def _relations(p: _Plan, t: Table, cyclic: set[tuple[str, str]]) -> list[Suggestion]:
    """A reference per many-to-one foreign key (plus an embed_one copy of a small, stable parent)."""
    out: list[Suggestion] = []
    used = set(t.columns)
    for fk in t.foreign_keys:
        cols, ref = fk["columns"], fk["ref_table"]
        if len(cols) > 1:
            out += _composite_reference(p, t, fk, used)
            continue
        col = cols[0]
        if ref not in p.tables or ref in p.embedded or not isinstance(p.keys[ref][0], str):
            gap = "not among the drafted tables" if ref not in p.tables else "not a collection with a one-column key"
            p.notes.setdefault(t.name, []).append(f"{col} -> {ref}: no reference ({ref} is {gap})")
            continue
        loop = "self-reference" if ref == t.name else ("a foreign-key cycle" if (t.name, ref) in cyclic else "")
        why = [f"reference {col} -> {ref}._id (validate checks every one)"]
        if loop:
            why.append(f"{loop}: a reference only (an embedded copy would recurse)")
        out.append(Suggestion({"kind": "reference", "column": col, "collection": ref}, why))
        if not loop:
            one = _embed_one(p, t, col, ref, used)
            if isinstance(one, Suggestion):
                out.append(one)
            else:
                why.append(one)
    return out


def _composite_reference(p: _Plan, t: Table, fk: dict, used: set[str]) -> list[Suggestion]:
    """A foreign key of several columns to a collection with that composite key: a reference whose field is a
    sub-document equal to the referenced ``_id`` (else a note: decide)."""
    cols, ref = fk["columns"], fk["ref_table"]
    key = p.keys[ref][0] if ref in p.tables and ref not in p.embedded else None
    if not isinstance(key, list) or sorted(fk["ref_columns"]) != sorted(key):
        p.notes.setdefault(t.name, []).append(
            f"foreign key ({', '.join(cols)}) -> {ref}: not mapped ({ref} is not a collection keyed by "
            f"({', '.join(fk['ref_columns'])})): decide"
        )
        return []
    mine = [cols[fk["ref_columns"].index(k)] for k in key]  # in the order of the referenced key
    name = ref if ref not in used else f"{ref}_ref"
    used.add(name)
    why = [f"reference ({', '.join(mine)}) -> {ref}._id, a sub-document {_braces(key)} (validate checks every one)"]
    return [Suggestion({"kind": "reference", "column": mine, "collection": ref, "as": name}, why)]


def _braces(cols: list[str]) -> str:
    return "{" + ", ".join(cols) + "}"


def _embed_one(p: _Plan, t: Table, col: str, ref: str, used: set[str]) -> Suggestion | str:
    parent, lim = p.tables[ref], p.limits
    figures = f"{ref}: {parent.rows:,} rows of ~{parent.width} B, churn {parent.churn}"
    if len(parent.primary_key) != 1:
        return f"not embedded: {ref} has no one-column primary key to join on"
    if parent.rows > lim.embed_one_rows or (parent.churn or 0) > lim.embed_one_churn:
        return (
            f"not embedded: {figures} (limits: {lim.embed_one_rows:,} rows, churn {lim.embed_one_churn}; "
            "a change to one row would rewrite every document that copies it)"
        )
    name = col[:-3] if col.endswith("_id") and len(col) > 3 else f"{ref}_row"
    if name in used:
        name = f"{ref}_row"
    used.add(name)
    p.size[t.name] = p.size.get(t.name, t.width) + parent.width
    body = {"kind": "embed_one", "table": ref, "local_key": col, "as": name}
    return Suggestion(
        body,
        [
            f"embed_one {ref} as {name}: {figures} (limits: {lim.embed_one_rows:,} rows, churn {lim.embed_one_churn})",
            "alternative: the reference alone, if readers can look the parent up",
        ],
    )


def _collection(p: _Plan, t: Table, cyclic: set[tuple[str, str]], pointed_by: dict[str, list[str]]) -> Suggestion:
    key, key_why = p.keys[t.name]
    wm, wm_why = _watermark(t)
    by = pointed_by.get(t.name, [])
    head = f"{t.name}: {t.rows:,} rows of ~{t.width} B" + (f"; referenced by {', '.join(by)}" if by else "")
    body: dict[str, Any] = {"name": t.name, "table": t.name, "id": key, "watermark": wm}
    bad = [c for c in t.columns if c.startswith("$") or "." in c]
    if bad:
        body["exclude"] = bad
    coll = Suggestion(body, [head, f"id: {key_why}", f"watermark: {wm_why}"])
    if bad:
        coll.why.append(f"excluded: {', '.join(bad)} (not a valid field name: list it under fields: with a new name)")
    coll.relations = _relations(p, t, cyclic)
    coll.relations += [s for child, (parent, s) in p.embedded.items() if parent == t.name]
    for part in [t.name] + [c for c, (parent, _) in p.embedded.items() if parent == t.name]:
        for c, spec in p.tables[part].columns.items():
            if spec.get("note") and "(text)" in spec.get("bson", ""):
                coll.why.append(f"{part}.{c} ({spec['type']}) becomes {spec['bson']}: {spec['note']}")
    coll.why += p.notes.get(t.name, [])
    return coll


def plan(surveyed: dict, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Suggestion], list[str]]:
    """The suggested collections (each with its relations) and what could not be mapped, with why."""
    tables = surveyed["tables"]
    if surveyed.get("missing"):
        raise ScaffoldError(f"tables not in schema {surveyed['schema']!r}: {', '.join(surveyed['missing'])}")
    p = _Plan(tables, limits, keys={n: _key(t) for n, t in tables.items()})
    p.size = {n: t.width for n, t in tables.items()}
    pointed_by: dict[str, list[str]] = {}
    for n, t in tables.items():
        for fk in t.foreign_keys:
            if fk["ref_table"] != n:
                pointed_by.setdefault(fk["ref_table"], []).append(n)
    # a reference needs a collection to point at: a table pointed at (by itself too) is never embedded
    selfref = {n for n, t in tables.items() if any(fk["ref_table"] == n for fk in t.foreign_keys)}
    _embed_children(p, set(pointed_by) | selfref)
    cyclic = _cyclic(tables)
    colls = []
    for n, t in tables.items():
        if n in p.embedded:
            continue
        if p.keys[n][0] is None:
            p.unmapped.append(f"{n}: {p.keys[n][1]}")
            continue
        colls.append(_collection(p, t, cyclic, pointed_by))
    if not colls:
        raise ScaffoldError("no table can be a collection:\n" + "\n".join(p.unmapped))
    return colls, p.unmapped


# --------------------------------------------------------------------------- YAML


def _scalar(v: Any) -> str:
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and v.lower() not in _YAML_WORDS:
        return v
    return json.dumps(v)  # JSON is YAML: quoted strings, lists


def _entry(s: Suggestion, indent: str) -> list[str]:
    lines = [f"{indent}# {w}" for w in s.why]
    first = True
    for k, v in s.body.items():
        lines.append(f"{indent}{'- ' if first else '  '}{k}: {_scalar(v)}")
        first = False
    if s.relations:
        lines.append(f"{indent}  relations:")
        for r in s.relations:
            lines += _entry(r, indent + "    ")
    return lines


def render(surveyed: dict, limits: Limits = DEFAULT_LIMITS, today: dt.date | None = None) -> str:
    """The draft mapping (YAML with comments) for a ``survey``."""
    colls, unmapped = plan(surveyed, limits)
    lim = limits
    lines = [
        f"# Drafted by ferry.etl.scaffold from schema {surveyed['schema']!r} on {today or dt.date.today()} "
        f"({len(surveyed['tables'])} tables).",
        "# Each suggestion says what it is based on and the alternative; change what does not fit, then run",
        '# production_etl with mapping=<this file>. Reference: docs/etl.md ("Writing a mapping").',
        f"# Limits: embed_one a parent of <= {lim.embed_one_rows:,} rows and churn <= {lim.embed_one_churn} "
        "(updates+deletes per row since the statistics reset);",
        f"#   embed_many <= {lim.embed_many_max:,} children per parent (p99 <= {lim.embed_many_p99:,}) and documents "
        f"<= {_kib(lim.document_bytes)}; fan-out over every row below {lim.exact_below:,} child rows, else sampled.",
        "version: 1",
        "source:",
        f"  schema: {_scalar(surveyed['schema'])}",
        "defaults:",
        "  numeric: decimal128        # or: double",
        "  on_source_delete: delete   # or: flag",
        "  new_tables: report         # or: create",
        "collections:",
    ]
    for c in colls:
        lines += _entry(c, "  ")
    if unmapped:
        lines += ["", "# Not mapped (decide, then add them above):"] + [f"# - {u}" for u in unmapped]
    return "\n".join(lines) + "\n"


def draft(conn, schema: str = "public", tables: list[str] | None = None, limits: Limits = DEFAULT_LIMITS) -> str:
    """Survey ``schema`` on ``conn`` (psycopg) and return the draft mapping."""
    return render(survey(conn, schema, tables, limits), limits)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ferry.etl.scaffold", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--conn", default="ferry_pg_prod", help="Airflow connection id (default: ferry_pg_prod)")
    src.add_argument("--dsn", help="a libpq connection string instead of a connection id")
    ap.add_argument("--schema", default="public")
    ap.add_argument("--tables", nargs="*", help="only these tables (default: every table of the schema)")
    for name, value in Limits().__dict__.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    a = ap.parse_args(argv)
    limits = Limits(**{k: getattr(a, k) for k in Limits().__dict__})
    try:
        if a.dsn:
            import psycopg

            with psycopg.connect(a.dsn) as conn:
                text = draft(conn, a.schema, a.tables, limits)
        else:
            from ferry import conns

            with conns.pg_connect(a.conn) as conn:
                text = draft(conn, a.schema, a.tables, limits)
    except ScaffoldError as exc:
        print(f"ferry.etl.scaffold: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
