"""The ``filter`` param: a JSON query, globally or per collection, without server-side JavaScript."""

from __future__ import annotations

import json
from typing import Any

from ferry.errors import FerryError

#: Operators that run JavaScript on the server: never accepted from a form field.
FORBIDDEN = ("$where", "$function", "$accumulator")


class FilterError(FerryError, ValueError):
    """The filter is not acceptable; the message says where and why."""


def _walk(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in FORBIDDEN:
                raise FilterError(
                    f"filter operator {k} is not allowed (at {path}.{k}): it runs JavaScript on the server"
                )
            _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, f"{path}[{i}]")


def parse(raw: Any, collections: list[str], known: list[str] | None = None) -> dict[str, dict]:
    """``raw`` (JSON text, dict or empty) -> ``{collection: query}`` for every collection in ``collections``.

    A query whose top-level keys are all collection names (``known``, default ``collections``) is per
    collection (missing ones get ``{}``);
    any other query applies to every collection. ``$where`` / ``$function`` / ``$accumulator`` are
    rejected anywhere, also nested.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {c: {} for c in collections}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FilterError(f"filter is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise FilterError(f"filter must be a JSON object, got {type(raw).__name__}")
    _walk(raw, "filter")
    known = list(known or collections)
    if raw and all(k in known for k in raw):
        out = {}
        for c in collections:
            q = raw.get(c) or {}
            if not isinstance(q, dict):
                raise FilterError(f"filter.{c} must be a JSON object, got {type(q).__name__}")
            out[c] = q
        return out
    return {c: dict(raw) for c in collections}
