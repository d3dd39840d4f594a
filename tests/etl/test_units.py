"""Pure logic: mapping validation (with line numbers), schema diff classification, policy, conversions, key
spans, lookup chunks, an incremental check's written ids."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128

from ferry.etl import acquire, checks, load, mapping, policy, schema, transform


def _col(typ="text", nullable=True, default=None, pos=1):
    return {"type": typ, "nullable": nullable, "default": default, "position": pos}


def _snap(**tables):
    return {"schema": "public", "tables": tables}


def _table(cols, pk=("id",), fks=(), unique=(), indexes=None):
    return {
        "columns": cols,
        "primary_key": list(pk),
        "foreign_keys": list(fks),
        "unique": [list(u) for u in unique],
        "indexes": indexes or {},
    }


BASE = _snap(
    accounts=_table(
        {
            "id": _col("bigint", False),
            "name": _col("text", False),
            "legacy": _col("jsonb"),
            "rate": _col("numeric(10,2)"),
            "note": _col("text"),
            "old_name": _col("character varying(20)"),
        }
    ),
    campaigns=_table(
        {"id": _col("bigint", False), "account_id": _col("bigint", False)},
        fks=[{"columns": ["account_id"], "ref_table": "accounts", "ref_columns": ["id"]}],
    ),
    gone=_table({"id": _col("bigint", False)}),
)


def _kinds(changes):
    return {(c["kind"], c["table"], c["column"]): c["class"] for c in changes}


def test_every_change_class_is_detected_and_classified():
    new = copy.deepcopy(BASE)
    t = new["tables"]
    del t["gone"]
    t["budgets"] = _table({"id": _col("bigint", False)})
    a = t["accounts"]["columns"]
    a["region"] = _col("text")  # new nullable column
    a["tier"] = _col("integer", False)  # new required column
    a["score"] = _col("integer", False, default="0")  # NOT NULL with default: safe
    del a["legacy"]  # dropped (no same-type partner left)
    a["rate"] = _col("double precision")  # type change
    a["note"] = _col("text", False)  # nullable -> not null
    a["name"] = _col("text", True)  # not null -> nullable
    del a["old_name"]
    a["new_name"] = _col("character varying(20)")  # likely rename
    t["accounts"]["indexes"] = {
        "accounts_region_idx": "CREATE INDEX accounts_region_idx ON public.accounts USING btree (region)"
    }
    t["accounts"]["unique"] = [["name"]]
    t["campaigns"]["foreign_keys"] = []  # FK dropped
    t["campaigns"]["columns"]["owner_id"] = _col("bigint")
    t["campaigns"]["foreign_keys"] = [{"columns": ["owner_id"], "ref_table": "accounts", "ref_columns": ["id"]}]

    got = _kinds(schema.diff(BASE, new))
    assert got == {
        ("table_added", "budgets", None): "safe",
        ("table_dropped", "gone", None): "breaking",
        ("column_added", "accounts", "region"): "safe",
        ("column_added", "accounts", "score"): "safe",
        ("column_added_required", "accounts", "tier"): "breaking",
        ("column_dropped", "accounts", "legacy"): "breaking",
        ("column_renamed_likely", "accounts", "new_name"): "breaking",
        ("type_changed", "accounts", "rate"): "breaking",
        ("nullable_to_not_null", "accounts", "note"): "breaking",
        ("not_null_to_nullable", "accounts", "name"): "safe",
        ("index_added", "accounts", None): "safe",
        ("unique_added", "accounts", None): "safe",
        ("column_added", "campaigns", "owner_id"): "safe",
        ("foreign_key_added", "campaigns", None): "breaking",
        ("foreign_key_dropped", "campaigns", None): "breaking",
    }
    rename = next(c for c in schema.diff(BASE, new) if c["kind"] == "column_renamed_likely")
    assert (rename["old"], rename["new"]) == ("old_name", "new_name")
    assert schema.diff(BASE, copy.deepcopy(BASE)) == []
    md = schema.markdown(schema.diff(BASE, new))
    assert md.splitlines()[0].startswith("| class") and "column_renamed_likely" in md


def test_renamed_index_is_not_a_change_but_a_new_definition_is():
    a = _snap(t=_table({"id": _col()}, indexes={"i1": "CREATE INDEX i1 ON public.t USING btree (id)"}))
    b = _snap(t=_table({"id": _col()}, indexes={"i2": "CREATE INDEX i2 ON public.t USING btree (id)"}))
    assert schema.diff(a, b) == []
    c = _snap(t=_table({"id": _col()}, indexes={"i1": "CREATE INDEX i1 ON public.t USING hash (id)"}))
    assert {x["kind"] for x in schema.diff(a, c)} == {"index_added", "index_dropped"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("collections: []\n", "x.yaml:1: collections: a non-empty list"),
        ("collections:\n  - name: a\n    table: t\n", "x.yaml:2: collections[0]: 'id' is required"),
        (
            "collections:\n  - name: a\n    table: t\n    id: id\n    bogus: 1\n",
            "x.yaml:5: collections[0].bogus: unknown key",
        ),
        (
            "collections:\n  - name: a\n    table: t\n    id: id\n    fields:\n      c: {type: money}\n",
            "x.yaml:6: collections[0].fields.c.type: 'money' is not one of",
        ),
        (
            "collections:\n  - name: a\n    table: t\n    id: id\n    relations:\n      - kind: reference\n        column: x\n"
            "        collection: nope\n",
            "x.yaml:8: collections[0].relations[0].collection: unknown collection 'nope'",
        ),
        (
            "defaults: {numeric: float}\ncollections:\n  - {name: a, table: t, id: id}\n",
            "x.yaml:1: defaults.numeric: 'float' is not one of decimal128, double",
        ),
        (
            "collections:\n  - {name: a, table: t, id: id}\n  - {name: a, table: u, id: id}\n",
            "x.yaml:3: collections[1].name: collection 'a' is already defined",
        ),
        ("collections: [\n", "x.yaml:2: invalid YAML"),
    ],
)
def test_mapping_errors_name_line_and_field(text, expected):
    with pytest.raises(mapping.MappingError) as exc:
        mapping.parse(text, "x.yaml")
    assert str(exc.value).startswith(expected), str(exc.value)


def test_resolve_checks_columns_and_evolve_extends_the_mapping():
    m = mapping.parse(
        "collections:\n"
        "  - name: accounts\n    table: accounts\n    id: id\n    new_columns: include\n"
        "    fields: {name: accountName, old_name: label}\n"
        "  - name: campaigns\n    table: campaigns\n    id: id\n"
        "    relations:\n      - {kind: reference, column: account_id, collection: accounts, as: accountId}\n",
        "m.yaml",
    )
    eff = mapping.resolve(m, BASE)
    assert eff["collections"][1]["fields"] == {}  # id and the reference column are not plain fields
    bad = copy.deepcopy(BASE)
    del bad["tables"]["accounts"]["columns"]["name"]
    with pytest.raises(mapping.MappingError, match=r"mapping line 2: accounts: fields column 'name' not in the source"):
        mapping.resolve(m, bad)
    changes = [
        {"kind": "column_added", "class": "safe", "table": "accounts", "column": "region"},
        {
            "kind": "column_renamed_likely",
            "class": "breaking",
            "table": "accounts",
            "column": "new_name",
            "old": "old_name",
            "new": "new_name",
        },
    ]
    safe, applied = mapping.evolve(eff, changes, apply_breaking=False)
    assert safe["collections"][0]["fields"]["region"] == {"name": "region", "type": "auto"}
    assert "old_name" in safe["collections"][0]["fields"] and len(applied) == 1
    full, _ = mapping.evolve(eff, changes, apply_breaking=True)
    listed = copy.deepcopy(eff)
    listed["collections"][0]["new_columns"] = "ignore"  # the default when `fields` is listed
    assert "region" not in mapping.evolve(listed, changes, apply_breaking=False)[0]["collections"][0]["fields"]
    assert full["collections"][0]["fields"]["new_name"]["name"] == "label"  # documents keep their field name


def test_policy_decisions():
    safe = [{"kind": "column_added", "class": "safe", "table": "t", "column": "c"}]
    brk = safe + [{"kind": "column_dropped", "class": "breaking", "table": "t", "column": "d"}]
    d = policy.decide
    assert d("auto_safe", [])["action"] == "none"
    assert d("auto_safe", safe)["action"] == "apply_safe"
    assert d("auto_safe", brk)["action"] == "abort" and "column_dropped t.d" in d("auto_safe", brk)["reason"]
    assert d("apply_all", brk)["action"] == "apply_all"
    assert d("abort", safe)["action"] == "abort"
    assert (
        policy.needs_human("ask", brk)
        and not policy.needs_human("ask", [])
        and not policy.needs_human("auto_safe", brk)
    )
    assert d("ask", brk, None)["action"] == "abort"  # no answer (timeout/marked) never writes
    assert d("ask", brk, ["Apply all"], "ana") == {
        "policy": "ask",
        "by": "ana",
        "action": "apply_all",
        "reason": "reviewer chose 'Apply all'",
    }
    assert d("ask", brk, ["Skip schema updates"])["action"] == "skip"
    assert d("ask", brk, ["Abort"])["action"] == "abort"
    with pytest.raises(ValueError):
        d("ask", brk, ["Maybe"])
    with pytest.raises(ValueError):
        d("sometimes", brk)


def test_conversions():
    tz = dt.timezone(dt.timedelta(hours=2))
    assert transform.convert(Decimal("12.50")) == Decimal128("12.50")
    assert transform.convert(Decimal("12.50"), numeric="double") == 12.5
    assert transform.convert(dt.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=tz)) == dt.datetime(
        2026, 1, 1, 10, 0, 0, 123000, tzinfo=dt.UTC
    )
    assert transform.convert(dt.date(2026, 2, 3)) == dt.datetime(2026, 2, 3, tzinfo=dt.UTC)
    assert transform.convert({"a": [Decimal("1.5")]}, numeric="double") == {"a": [1.5]}
    assert transform.convert("7", "int") == 7
    with pytest.raises(transform.RowError):
        transform.convert(Decimal("NaN"))
    with pytest.raises(transform.RowError):
        transform.convert(Decimal("1.5"), "int")


@pytest.mark.parametrize(
    ("a", "b", "union"),
    [
        (None, None, None),
        ([], (), None),
        ([3, 9], None, [3, 9]),
        ((), (3, 9), [3, 9]),
        ([3, 9], (1, 5), [1, 9]),
        ([3, 9], [4, 12], [3, 12]),
    ],
)
def test_span_union(a, b, union):
    assert load._span_union(a, b) == union
    assert load._span_union(b, a) == union


def test_chunked_is_lazy_and_keeps_order():
    assert list(acquire.chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(acquire.chunked([], 3)) == []
    endless = acquire.chunked(iter(int, 1), 2)  # never ends: taken a chunk at a time
    assert next(endless) == [0, 0]


def test_changed_streams_the_delta_once():
    """``usable`` looks at the first ids; ``written`` goes on from there instead of reading the parts again."""
    reads = []

    def ids(name):
        reads.append(name)
        yield from range(2500)

    changed = checks.Changed(ids)
    assert changed.usable("c") and changed.usable("c")
    assert list(changed.written("c")) == list(range(2500))
    assert reads == ["c"]
    assert list(changed.written("c")) == list(range(2500))  # asked again: read again
    assert reads == ["c", "c"]
    odd = checks.Changed(lambda name: iter([1, 2.5]))
    assert not odd.usable("c")
