"""MongoDB pieces every family shares: the application database name, and index specs as mongorestore sends them."""

from __future__ import annotations

from typing import Any

#: A target database's bookkeeping (snapshots, versions, audit records) lives in ``<db>__ferry`` beside it.
META_SUFFIX = "__ferry"

#: Index fields mongorestore removes before ``createIndexes`` (``mongorestore/metadata.go``): the format
#: version and namespace the server fills in, and ``background`` which modern servers ignore.
SERVER_INDEX_FIELDS = ("v", "ns", "background")


def use_dev_db() -> bool:
    """``USE_DEV_MONGO_DB``: false by default; true/1/yes or false/0/no (any case); anything else an error."""
    from ferry import settings

    return settings.use_dev_db()


def db_name(base: str, suffix: str = "_dev") -> str:
    """The application database to open: ``<base>_dev`` when ``USE_DEV_MONGO_DB`` is true, else ``base``."""
    return f"{base}{suffix}" if use_dev_db() and not base.endswith(suffix) else base


def meta_db(name: str) -> str:
    """The bookkeeping database of ``name`` (same server)."""
    return name + META_SUFFIX


def index_spec(raw: Any) -> dict:
    """A ``listIndexes`` entry as ``createIndexes`` takes it: every option kept, ``v``/``ns``/``background``
    dropped, the key an ordered document (a compound key's order is part of the index)."""
    from bson.son import SON

    spec = {k: v for k, v in dict(raw).items() if k not in SERVER_INDEX_FIELDS}
    key = spec["key"]
    spec["key"] = SON([(str(k), v) for k, v in (key.items() if hasattr(key, "items") else key)])
    return spec


#: ``ConvertLegacyIndexKeyValue`` treats a double within this of zero as zero.
_LEGACY_EPSILON = 1e-9


def legacy_key_value(value: Any) -> tuple[Any, bool]:
    """An index key value as mongorestore's ``ConvertLegacyIndexKeyValue`` (``mongodb/mongo-tools``
    ``common/bsonutil/indexes.go``) turns it into one a 3.4+ server accepts: ``(value, converted)``.

    Before 3.4 any key value that was not a negative number or a string meant ascending: ``0``,
    ``Int64(0)``, ``Decimal128("0")``, ``""``, ``true``/``false``, ``null``, documents... become
    int32 ``1``; a double within 1e-9 of zero becomes ``1`` (or ``-1`` when negative). Every
    other value (``1.0``, ``Decimal128("-1")``, ``"2dsphere"``) is returned unchanged, type included.
    """
    from bson.decimal128 import Decimal128

    if isinstance(value, bool):  # before int: True is an int in Python, a boolean in BSON
        return 1, True
    if isinstance(value, int):  # int32, bson.Int64
        return (1, True) if value == 0 else (value, False)
    if isinstance(value, float):
        return ((1 if value >= 0 else -1), True) if abs(value) < _LEGACY_EPSILON else (value, False)
    if isinstance(value, Decimal128):
        return (1, True) if value.to_decimal().is_zero() else (value, False)
    if isinstance(value, str):
        return (1, True) if value == "" else (value, False)
    return 1, True


def legacy_key(key: Any) -> tuple[Any, list[tuple[str, Any, Any]]]:
    """``key`` (a document or pairs) with ``legacy_key_value`` applied to each value, order kept, and
    ``[(field, old, new)]`` for each value converted (mongorestore logs the same)."""
    from bson.son import SON

    out: SON[str, Any] = SON()
    changed: list[tuple[str, Any, Any]] = []
    for field, value in key.items() if hasattr(key, "items") else key:
        new, converted = legacy_key_value(value)
        out[str(field)] = new
        if converted:
            changed.append((str(field), value, new))
    return out, changed


def index_specs(coll) -> list[dict]:
    """``index_spec`` of every index of ``coll`` but ``_id_``, in the server's order."""
    return [index_spec(i) for i in coll.list_indexes() if i.get("name") != "_id_"]


def create_indexes(coll, specs: list[dict]) -> None:
    """ONE ``createIndexes`` command for ``specs`` (keys given as documents or as lists of pairs)."""
    if specs:
        coll.database.command({"createIndexes": coll.name, "indexes": [index_spec(s) for s in specs]})


#: Write concern of the commands that replace what readers see: acknowledged by a majority, in the journal.
DURABLE = {"w": "majority", "j": True}


def swap_in(client, src_db: str, dst_db: str, names: list[str]) -> None:
    """Move each ``src_db.<name>`` over ``dst_db.<name>`` (``renameCollection`` with ``dropTarget``, durable).

    A target that does not exist yet is created first, so the rename always *replaces* a namespace: on
    the bundled server a SIGKILL in the middle of a rename can leave rows under a namespace that is no
    longer listed, which a rename onto a missing target would keep beside the new ones (seen: every
    campaign twice after a restart and a rerun) but a rename onto an existing one removes. Harmless on mongod.
    """
    from pymongo.errors import CollectionInvalid

    current = set(client[dst_db].list_collection_names())
    for name in names:
        if name not in current:
            try:
                client[dst_db].create_collection(name)
            except CollectionInvalid:
                pass  # created meanwhile: the rename replaces it all the same
        client.admin.command(
            "renameCollection", f"{src_db}.{name}", to=f"{dst_db}.{name}", dropTarget=True, writeConcern=DURABLE
        )
