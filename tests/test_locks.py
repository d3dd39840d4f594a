"""ferry.locks: the lease length comes from the environment at call time."""

from __future__ import annotations

import datetime as dt

from ferry import locks


def test_the_lease_is_ten_minutes_unless_set(monkeypatch):
    monkeypatch.delenv("FERRY_LOCK_TTL_SECONDS", raising=False)
    assert locks.default_ttl() == dt.timedelta(minutes=10)
    monkeypatch.setenv("FERRY_LOCK_TTL_SECONDS", "3")
    assert locks.default_ttl() == dt.timedelta(seconds=3)
