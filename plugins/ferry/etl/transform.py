"""Rows (dicts from psycopg) -> MongoDB documents, as the effective mapping says.

Conversions (``auto`` picks by the Python value psycopg returns):
numeric/Decimal -> Decimal128 (or double: ``defaults.numeric`` / field ``type``), timestamptz -> UTC datetime,
timestamp -> datetime taken as UTC, date -> datetime at midnight UTC, jsonb/json -> sub-documents,
arrays -> arrays (elements converted), uuid -> string, bytea -> binary, interval -> seconds (double).

Every document carries ``_ferry_hash`` (sha1 of its BSON without the hash) so incremental loads can skip
unchanged documents.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterable
from typing import Any

import bson
from bson.decimal128 import Decimal128

from ferry.etl import keys

HASH_FIELD = "_ferry_hash"
DELETED_FIELD = "_ferry_deleted"


class RowError(ValueError):
    """A value that cannot be converted; the row is quarantined."""


def convert(value: Any, typ: str = "auto", numeric: str = "decimal128") -> Any:
    if value is None:
        return None
    if typ == "auto":
        return _auto(value, numeric)
    try:
        if typ == "decimal128":
            return _decimal128(decimal.Decimal(str(value)))
        if typ == "double":
            return float(value)
        if typ == "string":
            return value if isinstance(value, str) else str(value)
        if typ == "int":
            if isinstance(value, (float, decimal.Decimal)) and value != int(value):
                raise RowError(f"{value!r} is not a whole number")
            return int(value)
        if typ == "bool":
            return bool(value)
        if typ == "datetime":
            return _auto(
                value if isinstance(value, (dt.datetime, dt.date)) else dt.datetime.fromisoformat(str(value)), numeric
            )
    except RowError:
        raise
    except (ValueError, TypeError, decimal.InvalidOperation, ArithmeticError) as exc:
        raise RowError(f"cannot convert {value!r} to {typ}: {exc}") from exc
    raise RowError(f"unknown type {typ!r}")


def _decimal128(d: decimal.Decimal) -> Decimal128:
    if not d.is_finite():
        raise RowError(f"{d} cannot be stored as Decimal128 in a document")
    try:
        return Decimal128(d)
    except (decimal.InvalidOperation, ValueError) as exc:
        raise RowError(f"{d} does not fit Decimal128 (34 digits): {exc}") from exc


def _auto(v: Any, numeric: str) -> Any:
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, decimal.Decimal):
        return float(v) if numeric == "double" else _decimal128(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC)
        else:
            v = v.replace(tzinfo=dt.UTC)
        return v.replace(microsecond=v.microsecond // 1000 * 1000)  # BSON dates are milliseconds
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC)
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bson.Binary(bytes(v))
    if isinstance(v, dict):
        return {str(k): _auto(x, numeric) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_auto(x, numeric) for x in v]
    return str(v)  # ranges, inet, ... as text


def project(row: dict, part: dict, numeric: str) -> dict:
    """The mapped fields of one row (``part`` = a collection or an embed of the effective mapping)."""
    out = {}
    for col, spec in part["fields"].items():
        value = row[col]
        if value is None and spec.get("default") is not None:  # a reviewed new required column's default
            value = spec["default"]
        try:
            out[spec["name"]] = convert(value, spec["type"], numeric)
        except RowError as exc:
            if spec.get("on_cast_error") == "keep":  # reviewed type change, "keep old type": lenient
                out[spec["name"]] = convert(value, "auto", numeric)
                continue
            raise RowError(f"{part.get('table')}.{col}: {exc}") from exc
    return out


def document(row: dict, coll: dict, related: dict[str, Any], numeric: str, omit: list[str] | None = None) -> dict:
    """One document: ``_id`` from the id column, fields, references, embeds (``related[as]``); the fields
    in ``omit`` are left out (``on_missing: omit``)."""
    cols = keys.columns(coll)
    doc = {"_id": doc_id(keys.of_row(row, cols), cols, numeric)}
    doc.update(project(row, coll, numeric))
    for rel in coll["relations"]:
        if omit and rel["as"] in omit:
            continue
        if rel["kind"] == "reference":
            doc[rel["as"]] = None if rel["as"] in related else reference(row, rel, numeric)
        else:
            doc[rel["as"]] = related.get(rel["as"])
    doc[HASH_FIELD] = doc_hash(doc)
    return doc


def doc_id(value: Any, cols: list[str], numeric: str) -> Any:
    """The ``_id`` of a source key (``keys.of_row``): converted as every value is; a composite key becomes a
    ``keys.Key`` sub-document of its columns in key order."""
    if len(cols) == 1:
        return convert(value, "auto", numeric)
    return keys.Key((c, convert(v, "auto", numeric)) for c, v in zip(cols, value, strict=True))


def reference(row: dict, rel: dict, numeric: str) -> Any:
    """A reference field: the referenced document's ``_id`` (a sub-document named by that collection's key
    columns for a composite key; ``None`` when a part is NULL)."""
    if isinstance(rel["column"], str):
        return convert(row[rel["column"]], "auto", numeric)
    key = keys.of_row(row, rel["column"])
    if keys.has_null(key):
        return None
    return doc_id(key, keys.names(rel.get("ref_key") or rel["column"]), numeric)


def doc_hash(doc: dict) -> str:
    """The hash stored in ``_ferry_hash`` (SHA-1 as in earlier releases, so stored hashes stay valid)."""
    from ferry.hashing import doc_digest

    return doc_digest(doc, exclude=(HASH_FIELD, DELETED_FIELD), algorithm="sha1")


class MissingRelation(RowError):
    """A relation's target row does not exist (``on_missing: quarantine`` quarantines the row)."""


def _missing(rel: dict, coll: dict, key: Any, missing: dict | None, problems: list) -> None:
    """Count a missing relation target; note it for ``on_missing: quarantine`` / ``fail``."""
    if missing is not None:
        missing[rel["as"]] = missing.get(rel["as"], 0) + 1
    mode = rel.get("on_missing", "null")
    what = f"{coll['name']}.{rel['as']}: no {rel.get('table') or rel.get('ref_table')} row with key {key!r}"
    if mode in ("fail", "quarantine"):
        problems.append((mode, f"{what} (on_missing: {mode}; mapping line {rel.get('line', '?')})"))


def _raise_missing(problems: list) -> None:
    """After every relation of the row was counted: fail the load, or quarantine the row."""
    for mode, what in problems:
        if mode == "fail":
            from ferry.errors import FerryError

            raise FerryError(what)
    if problems:
        raise MissingRelation("; ".join(w for _, w in problems))


def build_batch(
    rows: list[dict], coll: dict, children: dict[str, dict], numeric: str, missing: dict | None = None
) -> tuple[list[dict], list[dict]]:
    """Documents for a batch of root rows; ``children[as]`` = {parent key: rows or row} (embeds) or the set
    of referenced keys that exist (references).

    Returns (documents, rejected) where rejected rows carry the table, key and error. Relation targets
    that do not exist are counted in ``missing[as]`` and handled as the relation's ``on_missing`` says
    (``null``: the field is null, ``omit``: no field, ``quarantine``: the row is rejected, ``fail``: error).
    """
    cols = keys.columns(coll)
    docs, rejected = [], []
    for row in rows:
        try:
            related: dict[str, Any] = {}
            omit: list[str] = []
            problems: list = []
            for rel in coll["relations"]:
                if rel["kind"] == "embed_many":
                    related[rel["as"]] = [
                        project(r, rel, numeric) for r in children[rel["as"]].get(keys.of_row(row, cols), [])
                    ]
                elif rel["kind"] == "embed_one":
                    key = keys.of_row(row, keys.names(rel["local_key"]))
                    parent = children[rel["as"]].get(key) if not keys.has_null(key) else None
                    related[rel["as"]] = project(parent, rel, numeric) if parent is not None else None
                    if not keys.has_null(key) and parent is None:
                        _missing(rel, coll, key, missing, problems)
                        omit += [rel["as"]] if rel.get("on_missing") == "omit" else []
                elif rel["as"] in children:  # reference, checked against the referenced table
                    key = keys.of_row(row, keys.names(rel["column"]))
                    if not keys.has_null(key) and key not in children[rel["as"]]:
                        _missing(rel, coll, key, missing, problems)
                        omit += [rel["as"]] if rel.get("on_missing") == "omit" else []
                        related[rel["as"]] = None
            _raise_missing(problems)
            docs.append(document(row, coll, related, numeric, omit))
        except (RowError, KeyError) as exc:
            rejected.append(
                {"collection": coll["name"], "table": coll["table"], "key": _key_text(row, cols), "error": str(exc)}
            )
    return docs, rejected


def _key_text(row: dict, cols: list[str]) -> str:
    """A rejected row's key as text (``7``, or ``7, 2`` for a composite key)."""
    return ", ".join(str(row.get(c)) for c in cols)


def group(rows: Iterable[dict], key: str | list[str]) -> dict[Any, list[dict]]:
    """Rows by the value of ``key`` (the tuple of the values of several columns)."""
    cols = keys.names(key)
    out: dict[Any, list[dict]] = {}
    for r in rows:
        out.setdefault(keys.of_row(r, cols), []).append(r)
    return out
