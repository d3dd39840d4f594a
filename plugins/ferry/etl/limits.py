"""The scaffold's thresholds (``ferry.etl.scaffold``), in a module light enough for the DAG's params
(``request.ScaffoldRequest`` takes its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The thresholds of the suggestions (each overridable on the command line and in the DAG's params)."""

    embed_one_rows: int = 10_000  # a parent with at most this many rows may be copied into its children
    embed_one_churn: float = 0.10  # ... and (updates + deletes) / rows since the statistics reset at most this
    embed_many_max: int = 1_000  # children per parent (measured maximum) to embed as an array
    embed_many_p99: int = 100  # ... and their 99th percentile
    document_bytes: int = 1 << 20  # estimated largest document (MongoDB's limit is 16 MiB)
    exact_below: int = 1_000_000  # fan-out over every child row below this many rows, else a sample


DEFAULT = Limits()
