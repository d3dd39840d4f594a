"""Ferry's one hashing helper: documents, collections, JSON values and files.

Documents are hashed as their BSON bytes, so field order and BSON types count (``1`` and ``1.0`` differ):
two documents hash equal only if MongoDB stores them byte for byte the same. ``exclude`` leaves out
top-level fields (a document's own stored hash, run-specific bookkeeping).

The ETL stores ``doc_digest(doc, exclude=..., algorithm="sha1")`` inside each document (``_ferry_hash``)
and keeps SHA-1 there so hashes written by earlier releases stay valid; everything else is SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Parts of a multipart S3 upload (its ETag is md5(part md5s)-N); ``ferry.storage`` uploads in these parts.
S3_PART = 64 * 1024 * 1024


def doc_digest(doc: Mapping[str, Any], *, exclude: Iterable[str] = (), algorithm: str = "sha256") -> str:
    """Hex digest of ``doc``'s BSON encoding without the top-level fields in ``exclude``."""
    import bson

    skip = set(exclude)
    body = {k: v for k, v in doc.items() if k not in skip} if skip else doc
    return hashlib.new(algorithm, bson.encode(body)).hexdigest()


def canonical(value: Any) -> Any:
    """``value`` with every document's keys sorted (recursively; arrays keep their order): two documents with
    the same fields and values in another order become equal."""
    if isinstance(value, Mapping):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def content_digest(doc: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> str:
    """SHA-256 of ``doc``'s content regardless of field order (a server may store fields in another order,
    e.g. an upsert puts the query's fields first)."""
    return doc_digest(canonical(doc), exclude=exclude)


def collection_digest(coll, *, query: Mapping[str, Any] | None = None, exclude: Iterable[str] = ()) -> dict:
    """``{"count", "sha256"}`` over the documents of ``coll`` matching ``query``, in ``_id`` order."""
    import bson

    skip = set(exclude)
    h = hashlib.sha256()
    n = 0
    for doc in coll.find(dict(query or {}), sort=[("_id", 1)]):
        h.update(bson.encode({k: v for k, v in doc.items() if k not in skip} if skip else doc))
        n += 1
    return {"count": n, "sha256": h.hexdigest()}


def db_digest(db, names: list[str] | None = None, *, exclude: Iterable[str] = ()) -> dict[str, dict]:
    """``{collection: collection_digest}`` for ``names`` (default: every collection but ``system.*``)."""
    if names is None:
        names = sorted(n for n in db.list_collection_names() if not n.startswith("system."))
    return {name: collection_digest(db[name], exclude=exclude) for name in names}


def json_digest(value: Any, length: int | None = None) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys); optionally shortened to ``length`` hex digits."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest[:length] if length else digest


def file_digests(path: str | Path, part: int = S3_PART) -> tuple[int, str, str]:
    """``(size, sha256, S3 ETag)`` of a file; the ETag as S3 computes it for an upload in ``part``-sized parts."""
    sha, md5_all, part_md5s = hashlib.sha256(), hashlib.md5(), []
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(part):
            size += len(block)
            sha.update(block)
            md5_all.update(block)
            part_md5s.append(hashlib.md5(block).digest())
    if len(part_md5s) <= 1:
        etag = md5_all.hexdigest()
    else:
        etag = f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"
    return size, sha.hexdigest(), etag


def stream_md5(chunks: Iterable[bytes]) -> str:
    """MD5 of a byte stream (comparing an S3 object's content when its ETag is not a plain MD5)."""
    h = hashlib.md5()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()
