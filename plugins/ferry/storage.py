"""Storage by URL: every file Ferry writes for a later task, another run or a person goes through here.

A location is a URL: ``s3://bucket/key`` (the ``ferry_s3`` connection, or any boto3 client passed in) or a
local path (``/var/lib/ferry/...`` or ``file:///var/lib/ferry/...``). Writes are verified before they count:

- S3: the object's size and ETag are compared with the local file's (MD5, or the multipart ETag computed
  the same way S3 computes it); its SHA-256 travels in the object's metadata and is checked on download.
- local: written to a temporary file in the destination folder, fsynced, compared (size + SHA-256), then
  renamed into place, so a reader never sees half a file.

The default root for Ferry's own files (backups, plans, reports) is ``$FERRY_STORAGE_URL``, else
``s3://ferry-artifacts``: object storage, so every Celery worker and every later run sees the same files.
Single-machine users may set it to a local folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.errors import FerryError
from ferry.hashing import S3_PART as CHUNK
from ferry.hashing import file_digests

DEFAULT_ROOT = "s3://ferry-artifacts"


class StorageError(FerryError):
    """A file could not be written or read back intact; the message names the URL."""


@dataclass(frozen=True)
class Stored:
    url: str
    bytes: int
    sha256: str


def root() -> str:
    """Where Ferry keeps its own files: ``$FERRY_STORAGE_URL`` or ``s3://ferry-artifacts``."""
    from ferry import settings

    return settings.storage_root()


def join(base: str, *parts: str) -> str:
    """``base`` + ``/part/...`` (parts are cleaned of slashes at their ends)."""
    tail = "/".join(p.strip("/") for p in parts if p and p.strip("/"))
    return f"{base.rstrip('/')}/{tail}" if tail else base.rstrip("/")


def safe_name(text: str) -> str:
    """A run id or other label as one path segment (``:`` and ``+`` of run ids are not safe everywhere)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(text))


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise StorageError(f"{url!r} names no bucket")
    return bucket, key


def local_path(url: str) -> Path:
    return Path(url[7:] if url.startswith("file://") else url)


def _client(s3):
    if s3 is not None:
        return s3
    from ferry import conns

    return conns.s3_client()


def ensure_bucket(s3, bucket: str) -> None:
    """Create ``bucket`` if it does not exist (a 404 on ``head_bucket``); other errors, e.g. 403, propagate."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
        s3.create_bucket(Bucket=bucket)


# --------------------------------------------------------------------------- write


def put_file(url: str, path: str | Path, *, s3=None) -> Stored:
    """Copy the local file ``path`` to ``url`` and verify it landed intact."""
    path = Path(path)
    size, sha, etag = file_digests(path)
    if is_s3(url):
        from boto3.s3.transfer import TransferConfig

        client = _client(s3)
        bucket, key = split_s3(url)
        ensure_bucket(client, bucket)
        client.upload_file(
            str(path),
            bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": sha}},
            Config=TransferConfig(multipart_threshold=CHUNK, multipart_chunksize=CHUNK),
        )
        head = client.head_object(Bucket=bucket, Key=key)
        got_etag = head["ETag"].strip('"')
        if head["ContentLength"] != size or got_etag != etag:
            raise StorageError(
                f"{url}: upload does not verify (size {head['ContentLength']} vs {size}, ETag {got_etag} vs {etag})"
            )
        return Stored(url, size, sha)
    dest = local_path(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        got = file_digests(Path(tmp))
        if got[:2] != (size, sha):
            raise StorageError(f"{url}: copy does not verify (size {got[0]} vs {size}, sha256 {got[1]} vs {sha})")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Stored(str(dest), size, sha)


def put_bytes(url: str, data: bytes, *, s3=None) -> Stored:
    with tempfile.TemporaryDirectory(prefix="ferry-put-") as tmp:
        path = Path(tmp) / "blob"
        path.write_bytes(data)
        return put_file(url, path, s3=s3)


def put_text(url: str, text: str, *, s3=None) -> Stored:
    return put_bytes(url, text.encode("utf-8"), s3=s3)


# --------------------------------------------------------------------------- read


def get_file(url: str, dest: str | Path, *, s3=None, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (S3) or return the local path; checks SHA-256 (given, or from metadata)."""
    if is_s3(url):
        client = _client(s3)
        bucket, key = split_s3(url)
        dest = Path(dest)
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore ClientError, re-raised with the URL
            raise StorageError(f"{url}: cannot be read ({exc})") from exc
        client.download_file(bucket, key, str(dest))
        expected = sha256 or head.get("Metadata", {}).get("sha256")
        path = dest
    else:
        path = local_path(url)
        if not path.is_file():
            raise StorageError(f"{url}: no such file")
        expected = sha256
    if expected:
        got = file_digests(path)[1]
        if got != expected:
            raise StorageError(f"{url} is corrupt: sha256 {got}, expected {expected}")
    return path


def read_bytes(url: str, *, s3=None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ferry-get-") as tmp:
        return get_file(url, Path(tmp) / "blob", s3=s3).read_bytes()


def read_text(url: str, *, s3=None) -> str:
    return read_bytes(url, s3=s3).decode("utf-8")


def head(url: str, *, s3=None) -> dict[str, Any] | None:
    """``head_object`` of the S3 object ``url``; ``None`` if it (or its bucket) does not exist, other errors raise."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3(url)
    try:
        return _client(s3).head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NoSuchBucket"):
            return None
        raise


def exists(url: str, *, s3=None) -> bool:
    if is_s3(url):
        return head(url, s3=s3) is not None
    return local_path(url).exists()


def listing(prefix: str, *, s3=None) -> list[dict[str, Any]]:
    """Objects under ``prefix``: ``[{"url", "bytes", "modified"}]`` sorted by URL."""
    out: list[dict[str, Any]] = []
    if is_s3(prefix):
        from botocore.exceptions import ClientError

        client = _client(s3)
        bucket, key = split_s3(prefix)
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                out += [
                    {"url": f"s3://{bucket}/{o['Key']}", "bytes": o["Size"], "modified": o["LastModified"]}
                    for o in page.get("Contents", [])
                ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
        return sorted(out, key=lambda o: o["url"])
    import datetime as dt

    base = local_path(prefix)
    if base.is_dir():
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                st = p.stat()
                out.append(
                    {"url": str(p), "bytes": st.st_size, "modified": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)}
                )
    return out


def delete_prefix(prefix: str, *, s3=None) -> int:
    """Delete every object under ``prefix`` (a folder locally); returns how many files were removed."""
    found = listing(prefix, s3=s3)
    if is_s3(prefix):
        client = _client(s3)
        bucket, _ = split_s3(prefix)
        keys = [split_s3(o["url"])[1] for o in found]
        for i in range(0, len(keys), 1000):
            client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})
        return len(keys)
    shutil.rmtree(local_path(prefix), ignore_errors=True)
    return len(found)
