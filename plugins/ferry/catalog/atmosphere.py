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


def _atmosphere_class():
    from atdata.atmosphere import Atmosphere

    class FerryAtmosphere(Atmosphere):
        """atdata's client, logged in without the Bluesky profile look-up, remembering each record's CID."""

        last_cid: str | None = None

        def _login(self, handle: str, password: str) -> None:
            self._client.login(handle, password, fetch_bsky_profile=False)
            session = self._client._session
            self._session = {"did": session.did, "handle": session.handle}

        def create_record(self, collection, record, *, rkey=None, validate=False):
            from atdata.atmosphere._types import AtUri

            self._ensure_authenticated()
            data = {"repo": self.did, "collection": collection, "record": record, "rkey": rkey, "validate": validate}
            res = self._client.com.atproto.repo.create_record(data=data)
            self.last_cid = res.cid
            return AtUri.parse(res.uri)

    return FerryAtmosphere


def login(pds_url: str, handle: str, password: str):
    """An authenticated atdata ``Atmosphere`` on ``pds_url``; a clear error when unreachable or refused.
    The password never appears in a message."""
    if not pds_url or not handle or not password:
        raise AtmosphereError("connection ferry_atproto needs host (PDS URL), login (handle) and password")
    atmo = _atmosphere_class()(base_url=pds_url)
    try:
        atmo._login(handle, password)
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


def list_records(atmo, collection: str) -> list[dict]:
    """Every record of ``collection`` in the account's repository: ``{"uri", "cid", "value"}`` (paged)."""
    from atdata.atmosphere.client import _value_to_dict

    out, cursor = [], None
    while True:
        params = {"repo": atmo.did, "collection": collection, "limit": 100, "cursor": cursor}
        res = atmo._client.com.atproto.repo.list_records(params=params)
        out += [{"uri": r.uri, "cid": r.cid, "value": _value_to_dict(r.value)} for r in res.records]
        cursor = res.cursor
        if not cursor or not res.records:
            return out


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
    from atdata._schema_codec import _schema_to_type
    from atdata.atmosphere.schema import SchemaPublisher

    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "", [])}
    bad = set(overrides) - set(OVERRIDES)
    if bad:
        raise CatalogError(f"unknown override(s) {sorted(bad)}")
    entries = _local_entries(index, list(names or []))
    if "name" in overrides and len(entries) != 1:
        raise CatalogError(f"the name override needs exactly one dataset, got {len(entries)}")
    remote_schemas = list_records(atmo, SCHEMA_COLLECTION)
    remote_entries = list_records(atmo, ENTRY_COLLECTION)

    errors: list[str] = []
    schemas: dict[str, dict] = {}
    datasets: list[dict] = []
    for e in entries:
        if not e.data_urls:
            errors.append(str(NoDataUrls(f"dataset {e.name!r} has no data URLs: nothing to promote")))
            continue
        try:
            local = index.get_schema(e.schema_ref)
        except (KeyError, ValueError):
            errors.append(
                str(MissingSchema(f"schema {e.schema_ref!r} (used by dataset {e.name!r}) is not in the local index"))
            )
            continue
        ident = f"{local['name']}@{local.get('version', '1.0.0')}"
        if ident not in schemas:
            sample_type = _schema_to_type(local)
            record = (
                SchemaPublisher(atmo)
                ._build_schema_record(
                    sample_type,
                    name=local["name"],
                    version=local.get("version", "1.0.0"),
                    description=local.get("description"),
                    metadata=None,
                )
                .to_record()
            )
            same = [
                r
                for r in remote_schemas
                if (r["value"].get("name"), r["value"].get("version")) == (local["name"], record["version"])
            ]
            differ = [r for r in same if _canon(_definition(r["value"])) != _canon(_definition(record))]
            if differ:
                errors.append(
                    f"schema {ident} differs: local {e.schema_ref} definition {_canon(_definition(record))} vs "
                    f"PDS {differ[0]['uri']} definition {_canon(_definition(differ[0]['value']))}; "
                    "publish a new version"
                )
                continue
            schemas[ident] = {
                "local_ref": e.schema_ref,
                "record": record,
                "uri": same[0]["uri"] if same else None,
                "cid": same[0]["cid"] if same else None,
                "status": "reused" if same else "new",
            }
        s = schemas[ident]
        urls = list(e.data_urls)
        if target_bucket:
            try:
                urls = [_target_url(u, target_bucket) for u in urls]
            except CatalogError as exc:
                errors.append(f"dataset {e.name!r}: {exc}")
                continue
        name = overrides.get("name") or e.name
        existing = [r for r in remote_entries if r["value"].get("name") == name]
        found = None
        for r in existing:
            same_schema = s["uri"] is not None and r["value"].get("schemaRef") == s["uri"]
            if same_schema and _entry_urls(r["value"]) == urls:
                found = r
            else:
                errors.append(
                    f"dataset {name!r} is already on the PDS as {r['uri']} with schema {r['value'].get('schemaRef')} "
                    f"and URLs {_entry_urls(r['value'])}, not schema {s['uri'] or ident + ' (new)'} and URLs {urls}"
                )
        if existing and found is None:
            continue
        datasets.append({"entry": e, "name": name, "schema": ident, "urls": urls, "existing": found})
    if errors:
        raise CatalogError("atmosphere promotion refused, nothing written:\n- " + "\n- ".join(errors))
    return {"schemas": schemas, "datasets": datasets, "overrides": overrides}


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
    from atdata.atmosphere import DatasetPublisher, SchemaPublisher

    copy = bool(target_bucket)
    if copy and s3 is None and not dry_run:
        raise CatalogError("copy_data needs an S3 client for the target bucket")
    p = plan(index, atmo, names=names, overrides=overrides, target_bucket=target_bucket)
    if dry_run:
        return {"rows": plan_rows(p), "published": []}
    published: list[dict] = []
    rows: list[dict] = []
    o = p["overrides"]
    for d in p["datasets"]:
        s = p["schemas"][d["schema"]]
        try:
            if s["uri"] is None:
                from atdata._schema_codec import _schema_to_type

                local = index.get_schema(s["local_ref"])
                uri = SchemaPublisher(atmo).publish(
                    _schema_to_type(local),
                    name=local["name"],
                    version=s["record"]["version"],
                    description=local.get("description"),
                )
                s.update(uri=str(uri), cid=atmo.last_cid, status="published")
                published.append({"kind": "schema", "identity": d["schema"], "uri": s["uri"], "cid": s["cid"]})
            data = "kept URLs"
            if copy:
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
        except CatalogError:
            raise
        except Exception as exc:  # noqa: BLE001 - the PDS went away or refused: say what was published
            err = _pds_error(exc, pds_url or "(ferry_atproto)", f"publish dataset {d['name']!r}")
            done = ", ".join(f"{x['kind']} {x['uri']}" for x in published) or "nothing"
            raise PublishFailed(f"{err}. Published before the failure: {done}", published) from None
        rows.append(
            {
                "dataset": d["name"],
                "schema": f"{d['schema']} ({'reused' if s['status'] == 'reused' else s['status']})",
                "schema_uri": s["uri"],
                "schema_cid": s["cid"],
                "entry": entry["status"],
                "uri": entry["uri"],
                "cid": entry["cid"],
                "data": data,
            }
        )
        if s["status"] == "published":
            s["status"] = "reused"  # the next dataset with this schema reuses it
    return {"rows": rows, "published": published}
