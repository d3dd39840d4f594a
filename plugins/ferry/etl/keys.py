"""A collection's key: one column (``id: order_id``, ``_id`` is its value) or several (``id: [order_id,
line_no]``, a composite key: ``_id`` is a sub-document of the columns in key order, ``{order_id: 7,
line_no: 2}``). One place for the rule of what may be a key and for how a key is read, compared and looked up.

In Python a composite key is a ``Key`` (a dict that hashes and orders like the tuple of its values), so the
sets and sorted merges of change capture treat it as they treat an integer; in PostgreSQL it is the row of
its columns (``(a, b) IN (...)``, ``ORDER BY a, b``).
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

#: separates a composite key's values in its hash text (``Key.__str__``, ``text_sql``)
SEP = "\x1f"


class Key(dict):
    """A composite ``_id``: its columns in key order; hashable and ordered like the tuple of its values."""

    def _t(self) -> tuple:
        return tuple(self.values())

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._t())

    def __eq__(self, other) -> bool:
        return isinstance(other, dict) and list(self.items()) == list(other.items())

    def __lt__(self, other) -> bool:
        return self._t() < Key(other)._t()

    def __str__(self) -> str:  # the text ``text_sql`` computes in PostgreSQL
        return SEP.join(str(v) for v in self.values())


def names(spec: str | list[str]) -> list[str]:
    """A mapping's one column or list of columns (``id``, ``foreign_key``, ``local_key``, a reference's
    ``column``) as a list."""
    return [spec] if isinstance(spec, str) else list(spec)


def columns(coll: dict) -> list[str]:
    """The key columns of a collection (``id``), in key order."""
    return names(coll["id"])


def composite(coll: dict) -> bool:
    return not isinstance(coll["id"], str)


def label(spec: str | list[str]) -> str:
    """``id`` as people read it: ``id`` or ``(order_id, line_no)``."""
    return spec if isinstance(spec, str) else f"({', '.join(spec)})"


def table_key(info: dict) -> list[str]:
    """The key a table offers for ``_id``: its primary key, else its first unique constraint whose columns are
    all NOT NULL; ``[]`` when it has neither."""
    pk = list(info.get("primary_key") or [])
    if pk:
        return pk
    for cols in info.get("unique") or []:
        if cols and all(not info["columns"].get(c, {}).get("nullable", True) for c in cols):
            return list(cols)
    return []


def is_key(info: dict, cols: list[str]) -> bool:
    """Whether ``cols`` (in this order) are the primary key or a unique constraint of NOT NULL columns."""
    if cols == list(info.get("primary_key") or []):
        return True
    return any(
        list(u) == cols and all(not info["columns"].get(c, {}).get("nullable", True) for c in cols)
        for u in info.get("unique") or []
    )


def of_row(row: dict, cols: list[str]) -> Any:
    """The source key of ``row``: the value of a one-column key, the tuple of a composite one."""
    return row[cols[0]] if len(cols) == 1 else tuple(row[c] for c in cols)


def has_null(key: Any) -> bool:
    """A source key (``of_row``) with a NULL part (it references nothing)."""
    return key is None or (isinstance(key, tuple) and any(v is None for v in key))


def stored(value: Any) -> Any:
    """An ``_id`` as read back from MongoDB (a sub-document comes back a plain dict), comparable with
    ``transform.doc_id``."""
    return Key(value) if type(value) is dict else value


def idents(cols: list[str], alias: str | None = None) -> sql.Composable:
    """``a, b`` (or ``t.a, t.b``)."""
    return sql.SQL(", ").join(sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in cols)


def row_expr(cols: list[str], alias: str | None = None) -> sql.Composable:
    """``a`` for one column, ``(a, b)`` for several (a row, compared element by element)."""
    inner = idents(cols, alias)
    return inner if len(cols) == 1 else sql.SQL("({})").format(inner)


def among(cols: list[str], keys: list, schema: str, table: str, key_cols: list[str] | None = None):
    """``(predicate, args)``: ``cols`` is one of ``keys`` (source keys, ``of_row``). One column: ``= ANY``; a
    composite key: ``(a, b) IN`` the keys as rows of ``table``'s own types, whose key columns are ``key_cols``
    (default ``cols``; an embed's foreign key names other columns than its parent's key). With
    ``jsonb_populate_recordset`` each value is compared as its column's type and the index is used."""
    if len(cols) == 1:
        return sql.SQL("{} = ANY(%s)").format(idents(cols)), [list(keys)]
    key_cols = key_cols or cols
    rows = json.dumps([dict(zip(key_cols, k, strict=True)) for k in keys], default=str)
    pred = sql.SQL("{} IN (SELECT {} FROM jsonb_populate_recordset(NULL::{}.{}, %s::jsonb) k)").format(
        row_expr(cols), idents(key_cols, "k"), sql.Identifier(schema), sql.Identifier(table)
    )
    return pred, [rows]


def text_sql(cols: list[str], alias: str | None = None) -> sql.Composable:
    """The text a key is hashed by: ``col::text``, or the columns' texts joined by ``SEP`` (``Key.__str__``)."""
    if len(cols) == 1:
        return sql.SQL("({})::text").format(idents(cols, alias))
    parts = sql.SQL(", ").join(sql.SQL("({})::text").format(idents([c], alias)) for c in cols)
    return sql.SQL("concat_ws(chr(31), {})").format(parts)


def not_null_sql(cols: list[str]) -> sql.Composable:
    return sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in cols)
