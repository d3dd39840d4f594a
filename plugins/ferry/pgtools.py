"""PostgreSQL client tools (``pg_dump``, ``pg_restore``, ``psql``) matching the server's major version."""

from __future__ import annotations

import shutil
from pathlib import Path

from ferry import settings
from ferry.errors import FerryError


def pg_tool(name: str, server_major: int | None = None) -> str:
    """Path of ``name``: ``$FERRY_PG_BINDIR``, then the Debian install of the server's major version, then PATH."""
    candidates = []
    bindir = settings.pg_bindir()
    if bindir:
        candidates.append(bindir / name)
    if server_major:
        candidates.append(Path(f"/usr/lib/postgresql/{server_major}/bin/{name}"))
    for cand in candidates:
        if cand.exists():
            return str(cand)
    found = shutil.which(name)
    if found:
        return found
    raise FerryError(
        f"PostgreSQL client tool {name!r} not found: `apt-get install postgresql-client` "
        "or set FERRY_PG_BINDIR to a folder holding it."
    )
