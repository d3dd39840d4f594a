"""dataset_promotion's run request: the form's values as the task reads them, bad ones named before any I/O."""

from __future__ import annotations

import pytest

from ferry.catalog.request import CatalogRequest
from ferry.request import RequestError


def test_defaults_and_derived_values():
    r = CatalogRequest.of({})
    assert (r.target, r.dry_run, r.source, r.target_database) == ("catalog", True, "ferry_catalog", "ferry_catalog")
    assert (r.names, r.overrides, r.bucket) == ([], {}, None)
    r = CatalogRequest.of(
        {"dry_run": "false", "datasets": ["a"], "name": "A", "tags": [], "copy_data": True, "target_bucket": "ferry-x"}
    )
    assert (r.dry_run, r.names, r.overrides, r.bucket) == (False, ["a"], {"name": "A"}, "ferry-x")
    # a bucket given without copy_data is not used: the URLs are kept
    assert CatalogRequest.of({"target_bucket": "ferry-x"}).bucket is None


@pytest.mark.parametrize(
    "conf,named",
    [
        ({"copy_data": True}, "copy_data=true needs target_bucket"),
        ({"copy_data": True, "target_bucket": "someone-elses"}, "bucket 'someone-elses' is not allowed"),
        ({"target": "pds"}, "param target"),
        ({"target_db": "config"}, "'config' is a MongoDB system database"),
        ({"datasets": "feat-a"}, "param datasets"),
        ({"dryrun": False}, "unknown param(s) dryrun: CatalogRequest accepts target, dry_run"),
    ],
)
def test_bad_params_are_named(conf, named):
    with pytest.raises(RequestError) as err:
        CatalogRequest.of(conf)
    assert named in str(err.value)
