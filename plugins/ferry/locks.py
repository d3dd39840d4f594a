"""One writer per target: a lease-based lock in MongoDB, held by a DAG run across its writing tasks.

A lock is a document ``{_id: target, owner, dag_id, acquired_at, expires_at}`` in ``<bookkeeping db>._ferry_locks``.
The owner is the Airflow run id: every task of that run may take the lock again (that renews it), a task of
another run waits until it is released or its lease has expired. While a task works, a background thread
renews the lease; if the worker dies, nobody renews it and the lock frees itself after ``ttl``. The last
task of the run (a teardown) releases it.

    with locks.hold(meta_db, "clausea@prod", owner=run_id, dag_id="prod_promotion"):
        ...  # writes to the target
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ferry import settings
from ferry.errors import FerryError

log = logging.getLogger(__name__)

LOCKS = "_ferry_locks"
TTL = dt.timedelta(minutes=10)


def default_ttl() -> dt.timedelta:
    """The lease: ``$FERRY_LOCK_TTL_SECONDS`` (default 600 s). A crashed holder blocks the target this long;
    a live holder renews it every quarter of it."""
    return settings.lock_ttl()


def default_wait() -> float:
    """How long a writer waits for a busy target: ``$FERRY_LOCK_WAIT_SECONDS`` (default 600 s)."""
    return settings.lock_wait_seconds()


class Locked(FerryError):
    """Another run holds the target and did not release it in time; the message names it."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _coll(db):
    from pymongo import WriteConcern

    return db[LOCKS].with_options(write_concern=WriteConcern(w="majority", j=True))


def try_acquire(db, target: str, *, owner: str, dag_id: str = "", ttl: dt.timedelta | None = None) -> dict | None:
    """Take (or renew) the lock on ``target`` for ``owner``; ``None`` when another owner holds a live lease."""
    from pymongo import ReturnDocument
    from pymongo.errors import DuplicateKeyError

    ttl = ttl or default_ttl()
    now = _now()
    try:
        return _coll(db).find_one_and_update(
            {"_id": target, "$or": [{"owner": owner}, {"expires_at": {"$lt": now}}]},
            {
                "$set": {"owner": owner, "dag_id": dag_id, "expires_at": now + ttl, "renewed_at": now},
                "$setOnInsert": {"acquired_at": now},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError:  # the document exists, held by someone else whose lease is live
        return None


def holder(db, target: str) -> dict | None:
    return db[LOCKS].find_one({"_id": target})


def acquire(
    db,
    target: str,
    *,
    owner: str,
    dag_id: str = "",
    ttl: dt.timedelta | None = None,
    wait: float | None = None,
    poll: float = 2.0,
) -> dict:
    """``try_acquire`` until it succeeds or ``wait`` seconds passed (then ``Locked`` naming the holder)."""
    wait = default_wait() if wait is None else wait
    ttl = ttl or default_ttl()
    deadline = time.monotonic() + wait
    logged = False
    while True:
        got = try_acquire(db, target, owner=owner, dag_id=dag_id, ttl=ttl)
        if got is not None:
            if got.get("acquired_at") and got["acquired_at"] != got.get("renewed_at"):
                log.debug("lock %s renewed by %s", target, owner)
            return got
        current = holder(db, target) or {}
        if time.monotonic() >= deadline:
            raise Locked(
                f"{target} is being written by {current.get('dag_id')} run {current.get('owner')} "
                f"(lease until {current.get('expires_at')}); waited {wait:.0f}s. Retry when it has "
                "finished; a crashed holder's lease expires by itself."
            )
        if not logged:
            log.warning(
                "waiting for %s: held by %s run %s until %s",
                target,
                current.get("dag_id"),
                current.get("owner"),
                current.get("expires_at"),
            )
            logged = True
        time.sleep(poll)


def release(db, target: str, *, owner: str) -> bool:
    """Release ``target`` if ``owner`` holds it; True if it did."""
    return _coll(db).delete_one({"_id": target, "owner": owner}).deleted_count == 1


@contextmanager
def hold(
    db,
    target: str,
    *,
    owner: str,
    dag_id: str = "",
    ttl: dt.timedelta | None = None,
    wait: float | None = None,
    release_at_end: bool = False,
) -> Iterator[dict]:
    """Hold the lock while the block runs, renewing the lease every ``ttl / 4`` from a background thread.

    ``release_at_end=False`` (default) keeps it for the run's next tasks; the run's teardown releases it.
    """
    ttl = ttl or default_ttl()
    lock = acquire(db, target, owner=owner, dag_id=dag_id, ttl=ttl, wait=wait)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl.total_seconds() / 4):
            try:
                if try_acquire(db, target, owner=owner, dag_id=dag_id, ttl=ttl) is None:
                    log.error("lost the lock on %s (lease expired and another run took it)", target)
                    return
            except Exception:  # noqa: BLE001 - a transient server error: try again next period
                log.warning("could not renew the lock on %s", target, exc_info=True)

    thread = threading.Thread(target=renew, name=f"ferry-lock-{target}", daemon=True)
    thread.start()
    try:
        yield lock
    finally:
        stop.set()
        thread.join(timeout=5)
        if release_at_end:
            release(db, target, owner=owner)
