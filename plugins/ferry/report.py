"""Readable reports: markdown tables for task logs, HITL bodies and artifacts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def table(rows: Iterable[Mapping[str, Any] | Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured markdown table (``tabulate``); ``"(none)"`` for no rows."""
    from tabulate import tabulate

    items: list[Any] = list(rows)
    if not items:
        return "(none)"
    if isinstance(items[0], Mapping):
        if headers is None:
            headers = list(dict.fromkeys(k for r in items for k in r))  # union of keys, first-seen order
        cells = [[_cell(r.get(h)) for h in headers] for r in items]
    else:
        cells = [[_cell(v) for v in r] for r in items]
    return tabulate(cells, headers=headers or (), tablefmt="github")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)  # keep key order: compound index keys are ordered
    return "" if value is None else value


def log_table(logger: logging.Logger, title: str, rows, headers=None) -> str:
    """Log ``title`` and the table on separate lines; return the markdown."""
    text = f"{title}\n{table(rows, headers)}"
    logger.info("%s", text)
    return text


def location(family: str, run_id: str, name: str = "") -> str:
    """URL of a run's report ``name``: ``<storage root>/reports/<family>/<run id>/<name>``."""
    from ferry import storage

    return storage.join(storage.root(), "reports", family, storage.safe_name(run_id), name)


def publish(family: str, run_id: str, name: str, content: str | bytes, *, s3=None) -> str:
    """Store a report (markdown, JSON lines ...) by URL for people and later tasks; returns its URL."""
    from ferry import storage

    data = content.encode("utf-8") if isinstance(content, str) else content
    return storage.put_bytes(location(family, run_id, name), data, s3=s3).url


class Progress:
    """Logs rows done, rate and ETA at most every ``every`` seconds (and once at the end)."""

    def __init__(self, logger: logging.Logger, what: str, total: int | None = None, every: float = 10.0):
        import time

        self._time = time.monotonic
        self.logger, self.what, self.total, self.every = logger, what, total, every
        self.done = 0
        self.start = self._last = self._time()

    def add(self, n: int) -> None:
        self.done += n
        if self._time() - self._last >= self.every:
            self.log()

    def log(self, final: bool = False) -> None:
        self._last = now = self._time()
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        eta = ""
        if self.total and rate > 0 and not final:
            eta = f", ETA {max(self.total - self.done, 0) / rate:.0f}s"
        of = f"/{self.total}" if self.total is not None else ""
        state = "done" if final else "progress"
        self.logger.info("%s %s: %d%s rows, %.0f rows/s, %.1fs%s", self.what, state, self.done, of, rate, elapsed, eta)
