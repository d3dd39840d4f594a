"""Every use of atdata's private API, in one place (atdata 0.7.0b1), each with why the public API does not do.
An atdata upgrade is checked here and by ``tests/catalog/test_atmosphere.py`` against a real PDS.
"""

from __future__ import annotations


def atmosphere(pds_url: str):
    """atdata's ``Atmosphere`` on ``pds_url``, not logged in (``login``)."""
    from atdata.atmosphere import Atmosphere

    class FerryAtmosphere(Atmosphere):
        """Remembers each record's CID: atdata's ``create_record`` returns the AT URI only, and the audit keeps
        both."""

        last_cid: str | None = None

        def create_record(self, collection, record, *, rkey=None, validate=False):
            from atdata.atmosphere._types import AtUri

            self._ensure_authenticated()
            data = {"repo": self.did, "collection": collection, "record": record, "rkey": rkey, "validate": validate}
            res = self._client.com.atproto.repo.create_record(data=data)
            self.last_cid = res.cid
            return AtUri.parse(res.uri)

    return FerryAtmosphere(base_url=pds_url)


def login(atmo, handle: str, password: str) -> None:
    """Log in without the Bluesky profile look-up (``app.bsky.actor.getProfile``), which a PDS without an
    AppView answers with ``502 UpstreamFailure``; ``Atmosphere.login`` always asks for it."""
    atmo._client.login(handle, password, fetch_bsky_profile=False)
    session = atmo._client._session
    atmo._session = {"did": session.did, "handle": session.handle}


def list_records(atmo, collection: str) -> list[dict]:
    """Every record of ``collection`` in the account's repository: ``{"uri", "cid", "value"}`` (paged).
    atdata lists records of its own types only, without their CIDs."""
    from atdata.atmosphere.client import _value_to_dict

    out, cursor = [], None
    while True:
        params = {"repo": atmo.did, "collection": collection, "limit": 100, "cursor": cursor}
        res = atmo._client.com.atproto.repo.list_records(params=params)
        out += [{"uri": r.uri, "cid": r.cid, "value": _value_to_dict(r.value)} for r in res.records]
        cursor = res.cursor
        if not cursor or not res.records:
            return out


def schema_record(atmo, local: dict) -> dict:
    """The schema record atdata would publish for the local index's schema ``local``, without publishing it
    (to compare with what the PDS already has)."""
    from atdata._schema_codec import _schema_to_type
    from atdata.atmosphere.schema import SchemaPublisher

    return (
        SchemaPublisher(atmo)
        ._build_schema_record(
            _schema_to_type(local),
            name=local["name"],
            version=local.get("version", "1.0.0"),
            description=local.get("description"),
            metadata=None,
        )
        .to_record()
    )


def publish_schema(atmo, local: dict, version: str) -> str:
    """Publish the local index's schema ``local``; its AT URI. (``SchemaPublisher`` wants the Python type,
    which only the private codec rebuilds from an index's schema.)"""
    from atdata._schema_codec import _schema_to_type
    from atdata.atmosphere import SchemaPublisher

    uri = SchemaPublisher(atmo).publish(
        _schema_to_type(local), name=local["name"], version=version, description=local.get("description")
    )
    return str(uri)
