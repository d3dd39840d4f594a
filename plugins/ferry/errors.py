"""Ferry's one error type, and the one place it becomes ``AirflowFailException``.

Domain code raises ``FerryError`` (or a subclass) for anything a retry cannot fix: bad input, a refused
guard, a failed check. Task entry points (``<family>.runs``, operators) are wrapped with ``fails_fast``,
which turns those into ``AirflowFailException`` (no retries, clear message). Anything else, e.g. a
network error, propagates unchanged so Airflow's retries with exponential backoff apply.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


class FerryError(Exception):
    """Bad input, a refused guard or a failed check: fail the task at once, with this message."""


def fails_fast[F: Callable[..., Any]](fn: F) -> F:
    """Decorator for task entry points: ``FerryError`` -> ``AirflowFailException`` (the only place this happens)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FerryError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]
