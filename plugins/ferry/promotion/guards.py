"""Guards a promotion passes before it connects for writes: confirmation, not onto its own source, branch."""

from __future__ import annotations

from ferry.errors import FerryError


class PromotionRefused(FerryError, ValueError):
    """A guard refused the run before anything was written."""


def deployment(hosts: str | None, port: int | None) -> frozenset[str]:
    """Normalised ``host:port`` set of a connection (``localhost`` == ``127.0.0.1``)."""
    out = set()
    for h in (hosts or "localhost").split(","):
        h = h.strip().lower()
        p = port or 27017
        if ":" in h and not h.startswith("["):
            h, _, ps = h.partition(":")
            p = int(ps)
        if h in ("localhost", "::1", "[::1]"):
            h = "127.0.0.1"
        out.add(f"{h}:{p}")
    return frozenset(out)


def check_guards(
    *, mode: str, confirm: str, source: frozenset[str], target: frozenset[str], source_db: str, target_db: str
) -> None:
    """Refuse a run that targets its own source, or an ``execute`` without the right confirmation."""
    if source & target and source_db == target_db:
        raise PromotionRefused(
            f"source and target are the same deployment ({', '.join(sorted(source & target))}) and the same "
            f"database {target_db!r}: refusing to promote a database onto itself"
        )
    if mode == "execute":
        require_confirmation("mode=execute", confirm, target_db)


def require_confirmation(action: str, confirm: str, target_db: str) -> None:
    """The one confirmation rule of a production write: ``confirm`` is exactly the target database's name."""
    if confirm != target_db:
        raise PromotionRefused(
            f"{action} writes to production database {target_db!r}: set confirm to exactly {target_db!r} "
            f"(got {confirm!r}); nothing was written"
        )


def next_tasks(mode: str, require_approval: bool) -> list[str]:
    """The branch after planning: nothing (summary / dry_run), the approval step, or execute."""
    if mode != "execute":
        return []
    return ["approve"] if require_approval else ["execute"]
