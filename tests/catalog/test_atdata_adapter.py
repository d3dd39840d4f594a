"""The atdata internals Ferry's adapter (``ferry/catalog/atdata_adapter.py``) leans on still exist with the
shape it uses: an atdata upgrade that moves one fails here, by name, before a promotion does."""

from __future__ import annotations

import inspect


def test_the_private_names_the_adapter_uses_are_still_there():
    from atdata._schema_codec import _schema_to_type
    from atdata.atmosphere import Atmosphere, SchemaPublisher
    from atdata.atmosphere._types import AtUri
    from atdata.atmosphere.client import _value_to_dict

    assert callable(_schema_to_type) and callable(_value_to_dict) and callable(AtUri.parse)
    assert callable(Atmosphere._ensure_authenticated) and callable(Atmosphere.create_record)
    params = inspect.signature(SchemaPublisher._build_schema_record).parameters
    assert {"name", "version", "description", "metadata"} <= set(params), list(params)
    assert {"name", "version", "description"} <= set(inspect.signature(SchemaPublisher.publish).parameters)
    assert list(inspect.signature(Atmosphere.create_record).parameters)[:3] == ["self", "collection", "record"]


def test_an_atmosphere_instance_has_the_client_and_session_slots_the_login_sets():
    from ferry.catalog import atdata_adapter

    atmo = atdata_adapter.atmosphere("http://127.0.0.1:9")  # no request is made before login
    assert hasattr(atmo, "_client") and hasattr(atmo._client, "login")
    assert "fetch_bsky_profile" in inspect.signature(atmo._client.login).parameters
    assert atmo.last_cid is None
