"""MongoDB helpers shared by Ferry's DAGs."""

from __future__ import annotations

import os

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def use_dev_db() -> bool:
    """``USE_DEV_MONGO_DB``: false by default; true/1/yes or false/0/no (any case); anything else an error."""
    raw = os.environ.get("USE_DEV_MONGO_DB", "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f"USE_DEV_MONGO_DB={os.environ['USE_DEV_MONGO_DB']!r} is not a boolean: use true/1/yes or false/0/no"
    )


def db_name(base: str, suffix: str = "_dev") -> str:
    """The application database to open: ``<base>_dev`` when ``USE_DEV_MONGO_DB`` is true, else ``base``."""
    return f"{base}{suffix}" if use_dev_db() and not base.endswith(suffix) else base
