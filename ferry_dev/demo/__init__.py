"""``python -m ferry_dev.demo``: start local services, seed demo data, run every Ferry DAG, print a summary.

Each DAG family adds one module here (``ferry/demo/<family>.py``) with:

- ``ORDER: int`` – position in the demo (lower runs first),
- ``def run(ctx: DemoContext) -> list[dict]`` – seeds what it needs, runs its DAG(s) with
  ``ctx.run_dag(...)``, reads back what landed and returns summary rows
  (``{"dag": ..., "result": ...}``).

The runner discovers modules with ``pkgutil`` (no central list to edit).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DemoContext:
    stack: Any  # ferry_dev.devstack.DevStack
    workdir: Path
    pg_db: str
    bucket: str
    duckdb_path: Path
    notes: list[str] = field(default_factory=list)

    def run_dag(self, dag_id: str, conf: dict | None = None, **kw):
        from ferry_dev import dagtest

        return dagtest.run_dag(dag_id, conf, **kw)


def discover() -> list[Any]:
    """Demo step modules in this package, ordered by their ``ORDER``."""
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "run"):
            mods.append(mod)
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
