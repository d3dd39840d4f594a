"""Dataset catalog promotion: local catalog (MongoDB ``datasets`` + ``schemas``) -> production catalog.

Schemas are identified by ``module.ClassName`` + version (``schema_ref`` = ``"module.ClassName@1.0.0"``).
A schema production already has with the identical definition is reused, never republished; the
same identity with another definition is an error naming both. Data URLs are kept, or with
``target_bucket`` the S3 objects are copied (each verified by size and ETag/MD5) and the URLs
rewritten. Everything is checked before anything is written; a rerun changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ferry.errors import FerryError

DEFINITION_FIELDS = ("name", "schema_ref", "data_urls", "tags", "description", "license", "metadata")


class CatalogError(FerryError, ValueError):
    """A catalog entry cannot be promoted; the message names the dataset / schema."""


class MissingSchema(CatalogError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class NoDataUrls(CatalogError):
    pass


def schema_ref(doc: dict) -> str:
    return f"{doc['module']}.{doc['class_name']}@{doc['version']}"


def parse_ref(ref: str) -> dict:
    """``"module.ClassName@1.0.0"`` -> ``{"module", "class_name", "version"}``."""
    path, sep, version = (ref or "").rpartition("@")
    module, dot, cls = path.rpartition(".")
    if not (sep and dot and module and cls and version):
        raise CatalogError(f"schema_ref {ref!r} is not 'module.ClassName@version'")
    return {"module": module, "class_name": cls, "version": version}


def _s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise CatalogError(f"copy_data can only copy s3:// URLs, got {url!r}")
    bucket, _, key = url[5:].partition("/")
    if not bucket or not key:
        raise CatalogError(f"data URL {url!r} has no bucket or key")
    return bucket, key


def _target_url(url: str, bucket: str) -> str:
    src_bucket, key = _s3_url(url)
    return f"s3://{bucket}/{src_bucket}/{key}"


def _md5(s3, bucket: str, key: str) -> str:
    from ferry.hashing import stream_md5

    return stream_md5(s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20))


def copy_object(s3, src_url: str, dst_url: str) -> dict:
    """Copy one S3 object (skipped when an identical copy exists); verify size and ETag/MD5."""
    from botocore.exceptions import ClientError

    from ferry import storage

    sb, sk = _s3_url(src_url)
    db, dk = _s3_url(dst_url)
    try:
        src = s3.head_object(Bucket=sb, Key=sk)
    except ClientError as exc:  # the server's answer (404, 403 ...): bad input, not worth a retry
        raise CatalogError(f"data object {src_url} cannot be read: {exc}") from None

    def same(dst) -> bool:
        if dst["ContentLength"] != src["ContentLength"]:
            return False
        if "-" not in src["ETag"] and dst["ETag"] == src["ETag"]:
            return True
        return _md5(s3, sb, sk) == _md5(s3, db, dk)  # multipart ETags are not content hashes

    existing = storage.head(dst_url, s3=s3)
    if existing is not None and same(existing):
        return {"url": dst_url, "bytes": src["ContentLength"], "copied": False}
    s3.copy_object(Bucket=db, Key=dk, CopySource={"Bucket": sb, "Key": sk})
    dst = s3.head_object(Bucket=db, Key=dk)
    if not same(dst):
        raise CatalogError(
            f"copy of {src_url} to {dst_url} does not verify: size {dst['ContentLength']} vs {src['ContentLength']}, "
            f"ETag {dst['ETag']} vs {src['ETag']}"
        )
    return {"url": dst_url, "bytes": src["ContentLength"], "copied": True}


def _definition(doc: dict) -> dict:
    return {k: doc.get(k) for k in DEFINITION_FIELDS}


def _canon(v: Any) -> str:
    return json.dumps(v, default=str, sort_keys=True)


def promote(
    local_db,
    prod_db,
    *,
    names: list[str] | None = None,
    overrides: dict | None = None,
    s3=None,
    target_bucket: str | None = None,
    dry_run: bool = False,
) -> list[dict]:
    """Promote catalog entries ``names`` (all when empty); one result row per dataset. ``dry_run``: check
    everything, write nothing, and report what would be published."""
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "", [])}
    entries = _entries(local_db, names, overrides)
    check = _Check(local_db, prod_db, overrides, target_bucket if s3 is not None else None)
    planned = [p for p in map(check.entry, entries) if p is not None]
    if check.errors:
        raise CatalogError("dataset promotion refused, nothing written:\n- " + "\n- ".join(check.errors))
    if dry_run:
        return _dry_rows(prod_db, planned, check.schemas)
    now = datetime.now(UTC)
    return [_write(local_db, prod_db, p, check.schemas[p[2]], s3 if check.bucket else None, now) for p in planned]


def _entries(local_db, names: list[str] | None, overrides: dict) -> list[dict]:
    """The local entries to promote, sorted by name; refused when a name is missing or nothing is there."""
    bad = set(overrides) - {"name", "description", "tags", "license"}
    if bad:
        raise CatalogError(f"unknown override(s) {sorted(bad)}")
    query = {"name": {"$in": names}} if names else {}
    entries = list(local_db.datasets.find(query).sort("name", 1))
    if names:
        missing = sorted(set(names) - {e.get("name") for e in entries})
        if missing:
            raise CatalogError(f"dataset(s) {missing} not in the local catalog {local_db.name}.datasets")
    if not entries:
        raise CatalogError(f"no datasets to promote in {local_db.name}.datasets")
    if "name" in overrides and len(entries) != 1:
        raise CatalogError(f"the name override needs exactly one dataset, got {len(entries)}")
    return entries


class _Check:
    """Checks every entry before anything is written: its data URLs, its schema against production's (reused
    when identical, refused when the same identity differs), its entry against production's. Collects every
    problem in ``errors``; ``schemas``: ``{ref: {"local", "in_prod"}}``."""

    def __init__(self, local_db, prod_db, overrides: dict, bucket: str | None):
        self.local_db, self.prod_db, self.overrides, self.bucket = local_db, prod_db, overrides, bucket
        self.errors: list[str] = []
        self.schemas: dict[str, dict] = {}

    def entry(self, e: dict) -> tuple[dict, dict, str] | None:
        """``(local entry, target definition, schema ref)``, or ``None`` with the problem in ``errors``."""
        name = e.get("name") or str(e["_id"])
        urls = e.get("data_urls") or []
        if not urls:
            self.errors.append(str(NoDataUrls(f"dataset {name!r} has no data URLs: nothing to promote")))
            return None
        ref = e.get("schema_ref") or ""
        try:
            if ref not in self.schemas and not self._schema(name, ref):
                return None
            if self.bucket:
                urls = [_target_url(u, self.bucket) for u in urls]
        except CatalogError as exc:
            self.errors.append(f"dataset {name!r}: {exc}")
            return None
        target = {**_definition(e), "name": name, "data_urls": urls, **self.overrides}
        existing = self.prod_db.datasets.find_one({"_id": target["name"]})
        if existing is not None and _canon(_definition(existing)) != _canon(target):
            self.errors.append(
                f"dataset {target['name']!r} already exists in production with another definition: "
                f"production {_canon(_definition(existing))} vs local {_canon(target)}"
            )
            return None
        return e, target, ref

    def _schema(self, name: str, ref: str) -> bool:
        local_db, prod_db = self.local_db, self.prod_db
        local_schema = local_db.schemas.find_one(parse_ref(ref))
        if local_schema is None:
            why = f"schema {ref!r} (used by dataset {name!r}) is not in the local catalog {local_db.name}.schemas"
            self.errors.append(str(MissingSchema(why)))
            return False
        prod_schema = prod_db.schemas.find_one({"_id": ref})
        local_definition = _canon(local_schema.get("definition"))
        if prod_schema is not None and _canon(prod_schema.get("definition")) != local_definition:
            self.errors.append(
                f"schema {ref!r} differs: local {local_db.name}.schemas _id={local_schema['_id']!r} "
                f"definition {local_definition} vs production {prod_db.name}.schemas "
                f"_id={ref!r} definition {_canon(prod_schema.get('definition'))}; publish a new version instead"
            )
            return False
        self.schemas[ref] = {"local": local_schema, "in_prod": prod_schema is not None}
        return True


def _dry_rows(prod_db, planned: list[tuple[dict, dict, str]], schemas: dict[str, dict]) -> list[dict]:
    """What a promotion would do: per dataset, its schema new or reused, its URLs, its entry new or existing."""
    seen: set[str] = set()
    out = []
    for _e, target, ref in planned:
        new = not schemas[ref]["in_prod"] and ref not in seen
        seen.add(ref)
        exists = prod_db.datasets.find_one({"_id": target["name"]}) is not None
        out.append(
            {
                "dataset": target["name"],
                "schema": f"{ref} ({'new' if new else 'reused'})",
                "data": f"{len(target['data_urls'])} URL(s)",
                "entry": "exists" if exists else "new",
            }
        )
    return out


def _write(local_db, prod_db, planned: tuple[dict, dict, str], s: dict, s3, now: datetime) -> dict:
    """One dataset: its schema (once), its data copies (with ``s3``), its entry; each write idempotent."""
    e, target, ref = planned
    if s["in_prod"]:
        schema_status = "reused"
    else:
        prod_db.schemas.update_one(
            {"_id": ref},
            {"$setOnInsert": {**{k: v for k, v in s["local"].items() if k != "_id"}, "published_at": now}},
            upsert=True,
        )
        s["in_prod"] = True
        schema_status = "published"
    data = "kept URLs"
    if s3 is not None:
        copies = [copy_object(s3, src, dst) for src, dst in zip(e["data_urls"], target["data_urls"], strict=True)]
        n = sum(c["copied"] for c in copies)
        data = f"{len(copies)} object(s) verified ({n} copied, {sum(c['bytes'] for c in copies)} bytes)"
    res = prod_db.datasets.update_one(
        {"_id": target["name"]},
        {"$setOnInsert": {**target, "promoted_at": now, "source": {"db": local_db.name, "_id": e["_id"]}}},
        upsert=True,
    )
    return {
        "dataset": target["name"],
        "schema": f"{ref} ({schema_status})",
        "data": data,
        "entry": "inserted" if res.upserted_id is not None else "unchanged",
    }


def written_collections(rows: list[dict]) -> list[str]:
    """The production catalog collections that ``promote``'s ``rows`` wrote to (``schemas``, ``datasets``)."""
    out = []
    if any(r["schema"].endswith("(published)") for r in rows):
        out.append("schemas")
    if any(r["entry"] == "inserted" for r in rows):
        out.append("datasets")
    return out
