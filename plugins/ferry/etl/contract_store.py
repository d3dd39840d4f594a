"""Consumer contracts by URL: one immutable folder per contract version and a ``latest.json`` pointer.

Layout under ``$FERRY_STORAGE_URL`` (or a run's ``contract_url``), per target database::

    contracts/<db>/<version>/openapi.json, types.d.ts, zod.ts, jsonschema/<c>.schema.json,
                             mongo/<c>.validator.json, contract.json   (the model; written last = complete)
    contracts/<db>/latest.json                                          {"version", "url", "schema_version"}

A version id is ``s<schema version>-<8 hex of the model>``: the same schema and mapping give the same id, so a
rerun writes the same bytes to the same URLs. ``stage`` writes a version without touching ``latest.json``;
``point`` moves the pointer (the ETL does it after the load is validated and published); a rollback points
``latest.json`` back at the contract of the version it restores.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from ferry import storage
from ferry.errors import FerryError
from ferry.etl import contract

MANIFEST = "contract.json"
LATEST = "latest.json"


class ContractMissing(FerryError, LookupError):
    """A contract version named (by a pointer or a backup) is not where it should be."""


@dataclass(frozen=True)
class Staged:
    version: str
    url: str
    files: dict[str, str]  # file name -> sha256
    shapes: dict[str, contract.Shape]


def base_url(db: str, root: str | None = None) -> str:
    return storage.join(root or storage.root(), "contracts", storage.safe_name(db))


def version_id(eff: dict, snapshot: dict, schema_version: int | None) -> str:
    model = json.dumps(contract.to_json(contract.shapes(eff, snapshot)), sort_keys=True)
    return f"s{schema_version or 0}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def stage(db: str, eff: dict, snapshot: dict, *, schema_version: int | None, root: str | None = None, s3=None):
    """Render and write every artifact of the contract of ``eff`` + ``snapshot`` (idempotent); ``Staged``."""
    version = version_id(eff, snapshot, schema_version)
    url = storage.join(base_url(db, root), version)
    files = contract.render(eff, snapshot, f"Ferry {db}", version)
    shapes = contract.shapes(eff, snapshot)
    sums = {name: storage.put_text(storage.join(url, name), text, s3=s3).sha256 for name, text in files.items()}
    manifest = {"version": version, "schema_version": schema_version, "files": sums, "model": contract.to_json(shapes)}
    storage.put_text(storage.join(url, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True), s3=s3)
    return Staged(version, url, sums, shapes)


def manifest(db: str, version: str, *, root: str | None = None, s3=None) -> dict:
    url = storage.join(base_url(db, root), version, MANIFEST)
    if not storage.exists(url, s3=s3):
        raise ContractMissing(f"contract {version} of {db} is missing: {url} does not exist")
    return json.loads(storage.read_text(url, s3=s3))


def latest(db: str, *, root: str | None = None, s3=None) -> dict | None:
    """The pointer (``{"version", "url", "schema_version", "at"}``), or None before the first contract."""
    url = storage.join(base_url(db, root), LATEST)
    return json.loads(storage.read_text(url, s3=s3)) if storage.exists(url, s3=s3) else None


def point(db: str, version: str, *, root: str | None = None, s3=None) -> dict:
    """Make ``version`` the latest contract of ``db`` (it must be complete: its manifest exists)."""
    man = manifest(db, version, root=root, s3=s3)
    pointer = {
        "version": version,
        "url": storage.join(base_url(db, root), version),
        "schema_version": man.get("schema_version"),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    storage.put_text(storage.join(base_url(db, root), LATEST), json.dumps(pointer, indent=2), s3=s3)
    return pointer


def copy_version(from_db: str, to_db: str, version: str, *, root: str | None = None, s3=None) -> dict:
    """Publish contract ``version`` of ``from_db`` as ``to_db``'s too (a parallel database: same documents,
    same contract): its files copied byte for byte, then ``to_db``'s pointer moved."""
    man = manifest(from_db, version, root=root, s3=s3)
    src, dst = storage.join(base_url(from_db, root), version), storage.join(base_url(to_db, root), version)
    for name in [*man["files"], MANIFEST]:
        storage.put_bytes(storage.join(dst, name), storage.read_bytes(storage.join(src, name), s3=s3), s3=s3)
    return point(to_db, version, root=root, s3=s3)


def versions(db: str, *, root: str | None = None, s3=None) -> list[str]:
    """Complete contract versions of ``db`` (those with a manifest), oldest first by schema version."""
    found = [o["url"] for o in storage.listing(base_url(db, root) + "/", s3=s3) if o["url"].endswith("/" + MANIFEST)]
    names = {u.rsplit("/", 2)[-2] for u in found}
    return sorted(names, key=lambda v: (int(v.split("-")[0][1:] or 0), v))


def compare(previous: dict | None, staged: Staged) -> tuple[list[contract.Impact], list[dict]]:
    """What changes for consumers from the ``previous`` manifest to ``staged``: the field-level impact and
    one row per artifact (changed or not, breaking for consumers or not)."""
    old_shapes = contract.from_json(previous["model"]) if previous else None
    impacts = contract.impact(old_shapes, staged.shapes)
    rows = []
    for name in sorted(staged.files):
        coll = name.split("/", 1)[1].split(".", 1)[0] if "/" in name else None  # None: covers every collection
        touched = [i for i in impacts if coll is None or i.collection == coll]
        rows.append(
            {
                "artifact": name,
                "changed": "yes" if touched else "no",
                "consumers": _verdict(bool(touched), any(i.breaking for i in touched)),
            }
        )
    return impacts, rows


def _verdict(changed: bool, breaking: bool) -> str:
    if not changed:
        return "-"
    return "BREAKING" if breaking else "additive"
