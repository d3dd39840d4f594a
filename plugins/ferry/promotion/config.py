"""``include/promotion.yaml``: natural keys, references and checks per promoted collection."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry import settings
from ferry.errors import FerryError

DEFAULT_PATH = settings.include("promotion.yaml")
TYPE_NAMES = {"str", "int", "float", "bool", "datetime", "ObjectId", "dict", "list", "Decimal128"}
LOOKUPS = {"auto", "in", "scan"}


class ConfigError(FerryError, ValueError):
    """The promotion config is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    key: tuple[str, ...]
    refs: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    types: dict[str, tuple[str, ...]] = field(default_factory=dict)
    updated_at: str = "updated_at"


@dataclass(frozen=True)
class PromotionConfig:
    collections: dict[str, CollectionSpec]  # in write order (parents first)
    backups_collection: str = "_ferry_promotion_backups"
    audit_collection: str = "_ferry_promotions"
    batch_size: int = 1000
    lookup_chunk: int = 100
    lookup: str = "auto"
    scan_ratio: float = 20.0
    source: str = str(DEFAULT_PATH)

    def ordered(self, names) -> list[CollectionSpec]:
        """Specs of ``names`` in write order; unknown names are an error."""
        names = list(names)
        unknown = [n for n in names if n not in self.collections]
        if unknown:
            raise ConfigError(f"{self.source}: unknown collection(s) {unknown}; configured: {list(self.collections)}")
        return [s for n, s in self.collections.items() if n in names]


def load(path: str | Path | None = None) -> PromotionConfig:
    """Read and check the config (``$FERRY_PROMOTION_CONFIG`` or ``include/promotion.yaml``)."""
    import yaml

    path = Path(path or settings.file_setting("FERRY_PROMOTION_CONFIG"))
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"promotion config {path} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(raw, source=str(path))


def parse(raw: Any, source: str = "<config>") -> PromotionConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    allowed = {
        "collections",
        "backups_collection",
        "audit_collection",
        "batch_size",
        "lookup_chunk",
        "lookup",
        "scan_ratio",
    }
    extra = set(raw) - allowed
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    colls = raw.get("collections")
    if not isinstance(colls, dict) or not colls:
        raise ConfigError(f"{source}: 'collections' must be a non-empty mapping")
    specs: dict[str, CollectionSpec] = {}
    for name, c in colls.items():
        specs[name] = _collection_spec(name, c, f"{source}: collections.{name}", specs)
    lookup = raw.get("lookup", "auto")
    if lookup not in LOOKUPS:
        raise ConfigError(f"{source}: lookup must be one of {sorted(LOOKUPS)}, got {lookup!r}")
    for k in ("batch_size", "lookup_chunk"):
        v = raw.get(k, 1)
        if not isinstance(v, int) or v < 1:
            raise ConfigError(f"{source}: {k} must be a positive integer, got {v!r}")
    return PromotionConfig(
        collections=specs,
        backups_collection=raw.get("backups_collection", "_ferry_promotion_backups"),
        audit_collection=raw.get("audit_collection", "_ferry_promotions"),
        batch_size=raw.get("batch_size", 1000),
        lookup_chunk=raw.get("lookup_chunk", 100),
        lookup=lookup,
        scan_ratio=float(raw.get("scan_ratio", 20)),
        source=source,
    )


def _collection_spec(name: str, c: Any, where: str, parents: dict[str, CollectionSpec]) -> CollectionSpec:
    """One ``collections.<name>`` entry (``parents``: the collections configured before it)."""
    if not isinstance(c, dict):
        raise ConfigError(f"{where} must be a mapping")
    extra = set(c) - {"key", "refs", "required", "types", "updated_at"}
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}")
    key = c.get("key")
    if isinstance(key, str):
        key = [key]
    if not key or not all(isinstance(k, str) and k for k in key):
        raise ConfigError(f"{where}.key must be a non-empty list of field names")
    if "_id" in key:
        raise ConfigError(f"{where}.key: a natural key must not be _id")
    refs = c.get("refs") or {}
    for f, parent in refs.items():
        if parent not in parents:
            raise ConfigError(f"{where}.refs.{f}: parent {parent!r} must be configured before {name!r} (parents first)")
    types = {}
    for f, t in (c.get("types") or {}).items():
        t = [t] if isinstance(t, str) else list(t)
        bad = [x for x in t if x not in TYPE_NAMES]
        if bad:
            raise ConfigError(f"{where}.types.{f}: unknown type(s) {bad}; use {sorted(TYPE_NAMES)}")
        types[f] = tuple(t)
    return CollectionSpec(
        name=name,
        key=tuple(key),
        refs=dict(refs),
        required=tuple(c.get("required") or ()),
        types=types,
        updated_at=c.get("updated_at") or "updated_at",
    )
