"""Dataset promotion to the ATProto atmosphere: an atdata local ``Index`` (and its S3 data) -> a PDS.

The original workflow (``atdata.promote.promote_to_atmosphere``) with what it lacks added:

- **Schema de-duplication** by identity = the local schema's name (``module.Class`` when the index keeps the
  module; atdata 0.7's local index keeps the class name only) + version. A schema record with that
  ``name`` and ``version`` already in the repository is reused; the same identity with another definition
  (JSON-schema body) is an error naming both. (atdata 0.7 looks up ``module.Class`` but publishes the class
  name, so its own look-up never matches, and it never compares definitions.)
- **Idempotent**: an entry record with the same name, schema and data URLs is reported (its AT URI), never
  published twice; the same name with another schema or other URLs is an error naming both.
- **Checked first**: every dataset's schema, data URLs and existing records are checked before anything is
  written; a dry run stops there and reports the plan.
- **Failures mid-way** (PDS down, session lost) raise ``PublishFailed`` carrying exactly what was published.

The PDS is reached with the ``atproto`` client logged in *without* the Bluesky profile look-up
(``app.bsky.actor.getProfile``), which a PDS without an AppView answers with ``502 UpstreamFailure``;
atdata's ``Atmosphere.login`` always asks for it, and offers no switch (``_client=`` takes a client but its
login still fetches the profile).
"""

from __future__ import annotations

import json
from typing import Any

from ferry.catalog import atdata_adapter
from ferry.catalog.atdata_adapter import list_records
from ferry.catalog.promote import CatalogError, MissingSchema, NoDataUrls, _target_url, copy_object

NS = "science.alt.dataset"
SCHEMA_COLLECTION = f"{NS}.schema"
ENTRY_COLLECTION = f"{NS}.entry"
OVERRIDES = ("name", "description", "tags", "license")


class AtmosphereError(CatalogError):
    """The PDS cannot be reached or refused us; the message says which PDS and what to check."""


class PublishFailed(AtmosphereError):
    """Publishing stopped part-way; ``published`` lists exactly the records that were created."""

    def __init__(self, message: str, published: list[dict]):
        super().__init__(message)
        self.published = published


# --------------------------------------------------------------------------- the PDS


def login(pds_url: str, handle: str, password: str):
    """An authenticated atdata ``Atmosphere`` on ``pds_url``; a clear error when unreachable or refused.
    The password never appears in a message."""
    if not pds_url or not handle or not password:
        raise AtmosphereError("connection ferry_atproto needs host (PDS URL), login (handle) and password")
    atmo = atdata_adapter.atmosphere(pds_url)
    try:
        atdata_adapter.login(atmo, handle, password)
    except Exception as exc:  # noqa: BLE001 - atproto raises its own tree, httpx its own
        raise _pds_error(exc, pds_url, f"log in as {handle!r}") from None
    return atmo


def _pds_error(exc: Exception, pds_url: str, doing: str) -> AtmosphereError:
    from atproto_client.exceptions import NetworkError, RequestException, UnauthorizedError

    if isinstance(exc, UnauthorizedError) or "AuthenticationRequired" in repr(exc) or "InvalidToken" in repr(exc):
        why = "bad credentials (check the handle and app password of connection ferry_atproto)"
    elif isinstance(exc, NetworkError) or isinstance(exc.__cause__, OSError):
        why = f"PDS unreachable ({type(exc).__name__}: {exc.__cause__ or exc})"
    elif isinstance(exc, RequestException) and getattr(exc, "response", None) is not None:
        content = exc.response.content
        why = f"PDS answered {exc.response.status_code}: {getattr(content, 'message', None) or content}"
    else:
        why = f"{type(exc).__name__}: {exc}"
    return AtmosphereError(f"cannot {doing} on PDS {pds_url}: {why}")


# --------------------------------------------------------------------------- plan, then publish


def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _definition(schema_record: dict) -> dict:
    """What makes two schema records the same schema: the JSON-schema body (``createdAt`` etc. excluded)."""
    return schema_record.get("schema") or {}


def _entry_urls(value: dict) -> list[str]:
    storage = value.get("storage") or {}
    return [s.get("url") for s in storage.get("shards", [])] or list(storage.get("urls") or [])


def _local_entries(index, names: list[str]) -> list:
    entries = sorted(index.list_entries(), key=lambda e: e.name)
    if names:
        missing = sorted(set(names) - {e.name for e in entries})
        if missing:
            raise CatalogError(f"dataset(s) {missing} not in the local atdata index")
        entries = [e for e in entries if e.name in names]
    if not entries:
        raise CatalogError("no datasets to promote in the local atdata index")
    return entries


def plan(index, atmo, *, names=None, overrides=None, target_bucket: str | None = None) -> dict:
    """Check everything, write nothing: ``{"schemas": {identity: {...}}, "datasets": [...]}``.

    Raises ``CatalogError`` listing every problem (missing schema, no data URLs, conflicts)."""
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "", [])}
    bad = set(overrides) - set(OVERRIDES)
    if bad:
        raise CatalogError(f"unknown override(s) {sorted(bad)}")
    entries = _local_entries(index, list(names or []))
    if "name" in overrides and len(entries) != 1:
        raise CatalogError(f"the name override needs exactly one dataset, got {len(entries)}")
    check = _Check(index, atmo, target_bucket)
    datasets = [d for d in (check.dataset(e, overrides.get("name") or e.name) for e in entries) if d is not None]
    if check.errors:
        raise CatalogError("atmosphere promotion refused, nothing written:\n- " + "\n- ".join(check.errors))
    return {"schemas": check.schemas, "datasets": datasets, "overrides": overrides}


class _Check:
    """Checks each local entry against the PDS before anything is written; every problem goes to ``errors``."""

    def __init__(self, index, atmo, target_bucket: str | None):
        self.index, self.atmo, self.bucket = index, atmo, target_bucket
        self.remote_schemas = list_records(atmo, SCHEMA_COLLECTION)
        self.remote_entries = list_records(atmo, ENTRY_COLLECTION)
        self.errors: list[str] = []
        self.schemas: dict[str, dict] = {}

    def dataset(self, e, name: str) -> dict | None:
        """The plan of one entry (published as ``name``), or ``None`` with its problem in ``errors``."""
        if not e.data_urls:
            self.errors.append(str(NoDataUrls(f"dataset {e.name!r} has no data URLs: nothing to promote")))
            return None
        ident = self._schema(e)
        if ident is None:
            return None
        urls = list(e.data_urls)
        if self.bucket:
            try:
                urls = [_target_url(u, self.bucket) for u in urls]
            except CatalogError as exc:
                self.errors.append(f"dataset {e.name!r}: {exc}")
                return None
        s = self.schemas[ident]
        existing = [r for r in self.remote_entries if r["value"].get("name") == name]
        found = None
        for r in existing:
            same_schema = s["uri"] is not None and r["value"].get("schemaRef") == s["uri"]
            if same_schema and _entry_urls(r["value"]) == urls:
                found = r
            else:
                self.errors.append(
                    f"dataset {name!r} is already on the PDS as {r['uri']} with schema {r['value'].get('schemaRef')} "
                    f"and URLs {_entry_urls(r['value'])}, not schema {s['uri'] or ident + ' (new)'} and URLs {urls}"
                )
        if existing and found is None:
            return None
        return {"entry": e, "name": name, "schema": ident, "urls": urls, "existing": found}

    def _schema(self, e) -> str | None:
        """The identity of the entry's schema, planned as reused (same name, version and definition on the PDS)
        or new; ``None`` when it is missing locally or the PDS has the same identity with another definition."""
        try:
            local = self.index.get_schema(e.schema_ref)
        except (KeyError, ValueError):
            why = f"schema {e.schema_ref!r} (used by dataset {e.name!r}) is not in the local index"
            self.errors.append(str(MissingSchema(why)))
            return None
        ident = f"{local['name']}@{local.get('version', '1.0.0')}"
        if ident in self.schemas:
            return ident
        record = atdata_adapter.schema_record(self.atmo, local)
        same = [
            r
            for r in self.remote_schemas
            if (r["value"].get("name"), r["value"].get("version")) == (local["name"], record["version"])
        ]
        differ = [r for r in same if _canon(_definition(r["value"])) != _canon(_definition(record))]
        if differ:
            self.errors.append(
                f"schema {ident} differs: local {e.schema_ref} definition {_canon(_definition(record))} vs "
                f"PDS {differ[0]['uri']} definition {_canon(_definition(differ[0]['value']))}; publish a new version"
            )
            return None
        self.schemas[ident] = {
            "local_ref": e.schema_ref,
            "record": record,
            "uri": same[0]["uri"] if same else None,
            "cid": same[0]["cid"] if same else None,
            "status": "reused" if same else "new",
        }
        return ident


def plan_rows(p: dict) -> list[dict]:
    """What a promotion of plan ``p`` would do, one row per dataset."""
    return [
        {
            "dataset": d["name"],
            "schema": f"{d['schema']} ({'reused' if p['schemas'][d['schema']]['status'] == 'reused' else 'new'})",
            "entry": f"exists {d['existing']['uri']}" if d["existing"] else "new",
            "data": f"{len(d['urls'])} URL(s)",
        }
        for d in p["datasets"]
    ]


def promote(index, atmo, *, names=None, overrides=None, s3=None, target_bucket=None, dry_run=True, pds_url="") -> dict:
    """Promote local entries ``names`` (all when empty) to the PDS of ``atmo``.

    Returns ``{"rows": [...], "published": [...]}``: one row per dataset (schema reused/published, entry
    published/exists with its AT URI and CID); ``published`` lists the records this call created."""
    if target_bucket and s3 is None and not dry_run:
        raise CatalogError("copy_data needs an S3 client for the target bucket")
    p = plan(index, atmo, names=names, overrides=overrides, target_bucket=target_bucket)
    if dry_run:
        return {"rows": plan_rows(p), "published": []}
    published: list[dict] = []
    rows: list[dict] = []
    for d in p["datasets"]:
        s = p["schemas"][d["schema"]]
        try:
            rows.append(_publish(index, atmo, d, s, p["overrides"], s3 if target_bucket else None, published))
        except CatalogError:
            raise
        except Exception as exc:  # noqa: BLE001 - the PDS went away or refused: say what was published
            err = _pds_error(exc, pds_url or "(ferry_atproto)", f"publish dataset {d['name']!r}")
            done = ", ".join(f"{x['kind']} {x['uri']}" for x in published) or "nothing"
            raise PublishFailed(f"{err}. Published before the failure: {done}", published) from None
        if s["status"] == "published":
            s["status"] = "reused"  # the next dataset with this schema reuses it
    return {"rows": rows, "published": published}


def _publish(index, atmo, d: dict, s: dict, o: dict, s3, published: list[dict]) -> dict:
    """One planned dataset: its schema when new, its data copies (with ``s3``), its entry when new; each record
    created goes to ``published`` as soon as the PDS has it."""
    from atdata.atmosphere import DatasetPublisher

    if s["uri"] is None:
        local = index.get_schema(s["local_ref"])
        s.update(uri=atdata_adapter.publish_schema(atmo, local, s["record"]["version"]), cid=atmo.last_cid)
        s["status"] = "published"
        published.append({"kind": "schema", "identity": d["schema"], "uri": s["uri"], "cid": s["cid"]})
    data = "kept URLs"
    if s3 is not None:
        copies = [copy_object(s3, src, dst) for src, dst in zip(d["entry"].data_urls, d["urls"], strict=True)]
        data = f"{len(copies)} object(s) verified ({sum(c['copied'] for c in copies)} copied)"
    if d["existing"]:
        entry = {"status": "exists", "uri": d["existing"]["uri"], "cid": d["existing"]["cid"]}
    else:
        uri = DatasetPublisher(atmo).publish_with_urls(
            urls=d["urls"],
            schema_uri=s["uri"],
            name=d["name"],
            description=o.get("description"),
            tags=o.get("tags"),
            license=o.get("license"),
            metadata=d["entry"].metadata,
        )
        entry = {"status": "published", "uri": str(uri), "cid": atmo.last_cid}
        published.append({"kind": "entry", "dataset": d["name"], "uri": entry["uri"], "cid": entry["cid"]})
    return {
        "dataset": d["name"],
        "schema": f"{d['schema']} ({'reused' if s['status'] == 'reused' else s['status']})",
        "schema_uri": s["uri"],
        "schema_cid": s["cid"],
        "entry": entry["status"],
        "uri": entry["uri"],
        "cid": entry["cid"],
        "data": data,
    }
