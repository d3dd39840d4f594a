"""Every environment variable Ferry's runtime reads, with its default and meaning: the only module that reads
``os.environ`` (``tests/test_architecture.py`` checks it), and the one place repository paths come from.

Values are read when asked for, not at import, so a worker's environment (and a test's ``monkeypatch``)
applies to the next task without a restart. The README's settings table is ``SETTINGS`` below.
Imported at DAG-parse time: keep it light (standard library only).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

#: The bundle's root: ``dags/``, ``plugins/``, ``include/`` live under it.
REPO = Path(__file__).resolve().parents[2]
#: ``plugins/``: on the ``PYTHONPATH`` of every process Ferry starts (the snapshot holder).
PLUGINS = REPO / "plugins"


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("FERRY_STORAGE_URL", "s3://ferry-artifacts", "where backups, plans and reports go (S3 URL or folder)"),
    Setting("USE_DEV_MONGO_DB", "false", "true: every MongoDB target database gets the suffix `_dev`"),
    Setting("FERRY_LOCK_TTL_SECONDS", "600", "lease of a target's write lock (a crashed holder blocks this long)"),
    Setting("FERRY_LOCK_WAIT_SECONDS", "600", "how long a writer waits for a busy target"),
    Setting("FERRY_PG_BINDIR", "", "folder of pg_dump / pg_restore (else the server's Debian install, then PATH)"),
    Setting("FERRY_ETL_SCHEDULE", "", "cron or preset for production_etl (empty: manual only)"),
    Setting("FERRY_SALES_START_DATE", "2026-11-01", "first day nightly_sales_sync catches up from"),
    Setting("FERRY_SALES_RULES", "include/sales/rules.yaml", "the sales rules file"),
    Setting("FERRY_SALES_API_PROFILES", "include/sales/api_profiles.yaml", "the sales HTTP API profiles file"),
    Setting("FERRY_ALERT_EMAIL", "", "alert e-mail recipients (`,`-separated) sent through connection `ferry_smtp`"),
    Setting("FERRY_PROMOTION_CONFIG", "include/promotion.yaml", "the promotion config file"),
    Setting(
        "FERRY_ALLOWED_DIRS",
        "",
        "folders (`:`-separated) a path param may point into besides the bundle's `include/` and a local "
        "FERRY_STORAGE_URL (e.g. `/srv/ferry/inbox`)",
    ),
    Setting(
        "FERRY_APPROVERS",
        "",
        "Airflow user ids (`,`-separated) who may answer an approval before a production write; the UI and "
        "API refuse anyone else (403). Empty: any user who may edit the DAG",
    ),
    Setting(
        "FERRY_ALLOW_SELF_APPROVAL",
        "false",
        "true: the user who triggered a run may approve it too (four eyes off)",
    ),
    Setting(
        "FERRY_ALLOWED_BUCKETS",
        "ferry-*",
        "S3 buckets (`,`-separated names or `*` patterns) an S3 URL or bucket param may name",
    ),
)
_DEFAULTS = {s.name: s.default for s in SETTINGS}


def get(name: str) -> str:
    """The value of setting ``name`` (empty or unset: its default)."""
    if name not in _DEFAULTS:
        raise KeyError(f"{name} is not a Ferry setting (ferry.settings.SETTINGS lists them)")
    return os.environ.get(name) or _DEFAULTS[name]


def repo_path(value: str | os.PathLike) -> Path:
    """A path as given when absolute, else relative to the repository (bundle) root."""
    path = Path(value)
    return path if path.is_absolute() else REPO / path


def include(*parts: str) -> Path:
    """A file under the bundle's ``include/``."""
    return REPO.joinpath("include", *parts)


def storage_root() -> str:
    return get("FERRY_STORAGE_URL").rstrip("/")


def _boolean(name: str) -> bool:
    """A boolean setting: true/1/yes or false/0/no (any case); anything else is an error."""
    raw = get(name).strip().lower()
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no", ""):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean: use true/1/yes or false/0/no")


def use_dev_db() -> bool:
    """``USE_DEV_MONGO_DB``: true/1/yes or false/0/no (any case); anything else is an error."""
    return _boolean("USE_DEV_MONGO_DB")


def lock_ttl() -> dt.timedelta:
    return dt.timedelta(seconds=float(get("FERRY_LOCK_TTL_SECONDS")))


def lock_wait_seconds() -> float:
    return float(get("FERRY_LOCK_WAIT_SECONDS"))


def pg_bindir() -> Path | None:
    raw = os.environ.get("FERRY_PG_BINDIR")
    return Path(raw) if raw else None


def etl_schedule() -> str | None:
    return get("FERRY_ETL_SCHEDULE") or None


def sales_start_date() -> dt.datetime:
    return dt.datetime.fromisoformat(get("FERRY_SALES_START_DATE")).replace(tzinfo=dt.UTC)


def allowed_dirs() -> list[Path]:
    """Where path params may point: ``include/``, a local storage root, and ``FERRY_ALLOWED_DIRS``."""
    dirs = [REPO / "include"]
    root = storage_root()
    if not root.startswith("s3://"):
        dirs.append(Path(root[7:] if root.startswith("file://") else root))
    dirs += [Path(p) for p in get("FERRY_ALLOWED_DIRS").split(os.pathsep) if p]
    return [d.resolve() for d in dirs]


def allowed_buckets() -> list[str]:
    """Bucket names or ``fnmatch`` patterns an S3 param may name (``FERRY_ALLOWED_BUCKETS``)."""
    return [b.strip() for b in get("FERRY_ALLOWED_BUCKETS").split(",") if b.strip()]


def approvers() -> list[str]:
    """``FERRY_APPROVERS``: the user ids who may answer an approval (empty: anyone with edit rights)."""
    return [a.strip() for a in get("FERRY_APPROVERS").split(",") if a.strip()]


def allow_self_approval() -> bool:
    return _boolean("FERRY_ALLOW_SELF_APPROVAL")


def alert_recipients() -> list[str]:
    return [a.strip() for a in get("FERRY_ALERT_EMAIL").split(",") if a.strip()]


def file_setting(name: str) -> Path:
    """A file named by setting ``name`` (relative paths from the bundle root)."""
    return repo_path(get(name))


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a process Ferry starts (``pg_restore``, the snapshot holder): this one's, with
    ``plugins/`` first on ``PYTHONPATH`` and ``extra`` added. Secrets go in ``extra`` (``PGPASSWORD``), never argv."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env
