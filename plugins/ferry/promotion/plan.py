"""Promotion planning: what would happen to each local document in production. Reads only.

The decision per document (``decide``) and the reference remapping (``remap``) are pure functions;
``plan_collection`` streams local documents in batches and looks production up by natural key with
one query per chunk of keys (``$in``) or one cursor over production's keys (``scan``), never one
query per document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ferry.promotion.config import CollectionSpec, PromotionConfig

log = logging.getLogger(__name__)

ACTIONS = ("insert", "skip", "update", "overwrite", "reject")
ON_CONFLICT = ("skip", "update_if_newer", "overwrite")


@dataclass
class Action:
    collection: str
    action: str  # one of ACTIONS
    key: dict[str, Any]
    local_id: Any
    target_id: Any = None
    reason: str = ""
    doc: dict | None = None  # what will be written (references remapped, _id = target _id)
    before: dict | None = None  # production's document (update / overwrite)

    def report(self) -> dict:
        """JSON-safe line of the plan report."""
        return {
            "collection": self.collection,
            "action": self.action,
            "key": _jsonable(self.key),
            "local_id": _jsonable(self.local_id),
            "target_id": _jsonable(self.target_id),
            "reason": self.reason,
        }


@dataclass
class CollectionPlan:
    spec: CollectionSpec
    local_total: int = 0
    local_selected: int = 0
    prod_total: int = 0
    lookup: str = "in"
    actions: list[Action] = field(default_factory=list)
    prod_queries: int = 0

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in ACTIONS}
        for a in self.actions:
            out[a.action] += 1
        return out

    def summary_row(self) -> dict:
        c = self.counts()
        return {
            "collection": self.spec.name,
            "local_total": self.local_total,
            "local_selected": self.local_selected,
            "prod_total": self.prod_total,
            "insert": c["insert"],
            "skip": c["skip"],
            "update": c["update"] + c["overwrite"],
            "reject": c["reject"],
        }


@dataclass
class ParentRef:
    """Where a local parent ``_id`` points in production (``prod_id`` None: the child is rejected)."""

    prod_id: Any
    reason: str = ""


# --------------------------------------------------------------------------- pure helpers


def _jsonable(v: Any) -> Any:
    """JSON-safe copy: ObjectId, datetime, Decimal128 ... as strings."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def hashable(v: Any) -> Any:
    """A dict key for a BSON value (documents and arrays by their canonical JSON)."""
    if isinstance(v, (dict, list)):
        return ("json", json.dumps(v, default=str, sort_keys=True))
    return v


_MISSING = object()


def get_field(doc: dict, path: str) -> Any:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return _MISSING
        cur = cur[part]
    return cur


def natural_key(spec: CollectionSpec, doc: dict) -> tuple | str:
    """The key tuple, or an error message naming the missing field."""
    values = []
    for f in spec.key:
        v = get_field(doc, f)
        if v is _MISSING or v is None or v == "":
            return f"missing natural key field {f!r}"
        values.append(hashable(v))
    return tuple(values)


def key_dict(spec: CollectionSpec, doc: dict) -> dict:
    return {f: (None if (v := get_field(doc, f)) is _MISSING else v) for f in spec.key}


def remap(spec: CollectionSpec, doc: dict, parents: dict[str, dict[Any, ParentRef]]) -> tuple[dict, str]:
    """``doc`` with references replaced by production ``_id``s, or ``(doc, reason)`` when a parent is missing."""
    out = doc
    for f, parent in spec.refs.items():
        v = doc.get(f)
        if v is None:
            continue  # a required reference is checked by validation
        ref = parents.get(parent, {}).get(hashable(v))
        if ref is None:
            return doc, f"{f}={v!r}: parent {parent} was not resolved"
        if ref.prod_id is None:
            return doc, f"{f}={v!r}: {ref.reason}"
        if ref.prod_id != v:
            if out is doc:
                out = dict(doc)
            out[f] = ref.prod_id
    return out, ""


def decide(
    spec: CollectionSpec,
    doc: dict,
    prod: dict | None,
    on_conflict: str,
    *,
    full_prod: bool = True,
) -> Action:
    """The action for one local ``doc`` (references already remapped) given production's match ``prod``.

    ``full_prod`` says whether ``prod`` is the whole production document (else only its key fields,
    ``_id`` and ``updated_at``: enough for ``skip``).
    """
    key = key_dict(spec, doc)
    if prod is None:
        return Action(spec.name, "insert", key, doc["_id"], doc["_id"], "new", doc=doc)
    target = prod["_id"]
    new = {**doc, "_id": target}
    if on_conflict == "skip":
        return Action(spec.name, "skip", key, doc["_id"], target, f"duplicate by natural key (production _id {target})")
    if on_conflict == "update_if_newer":
        mine, theirs = doc.get(spec.updated_at), prod.get(spec.updated_at)
        try:
            newer = mine is not None and (theirs is None or mine > theirs)
        except TypeError:
            newer = False
        if not newer:
            return Action(
                spec.name,
                "skip",
                key,
                doc["_id"],
                target,
                f"production {spec.updated_at} {theirs!s} is not older than local {mine!s}",
            )
        merged = {**prod, **new}
        if full_prod and merged == prod:
            return Action(spec.name, "skip", key, doc["_id"], target, "identical")
        return Action(
            spec.name,
            "update",
            key,
            doc["_id"],
            target,
            f"local is newer ({mine!s} > {theirs!s})",
            doc=new,
            before=prod,
        )
    if on_conflict == "overwrite":
        if full_prod and new == prod:
            return Action(spec.name, "skip", key, doc["_id"], target, "identical")
        return Action(
            spec.name, "overwrite", key, doc["_id"], target, "replace production document", doc=new, before=prod
        )
    raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}")


def chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def batches(cursor: Iterable[dict], n: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for doc in cursor:
        batch.append(doc)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------- production lookups


class ProdIndex:
    """Finds production documents by natural key (``$in`` per chunk, or one scan of the keys)."""

    def __init__(self, spec: CollectionSpec, coll, cfg: PromotionConfig, mode: str, full: bool):
        self.spec, self.coll, self.cfg, self.mode, self.full = spec, coll, cfg, mode, full
        self.queries = 0
        self._scan: dict[tuple, dict] | None = None

    def _projection(self) -> dict | None:
        if self.full:
            return None
        return {"_id": 1, self.spec.updated_at: 1, **{f: 1 for f in self.spec.key}}

    def lookup(self, keys: list[tuple]) -> dict[tuple, dict]:
        """Production documents for ``keys`` (full documents when ``full``)."""
        if self.mode == "scan":
            if self._scan is None:
                self._scan = {}
                proj = {"_id": 1, self.spec.updated_at: 1, **{f: 1 for f in self.spec.key}}
                self.queries += 1
                for d in self.coll.find({}, proj).batch_size(self.cfg.batch_size * 5):
                    k = natural_key(self.spec, d)
                    if isinstance(k, tuple):
                        self._scan.setdefault(k, d)
            found = {k: self._scan[k] for k in keys if k in self._scan}
            if self.full and found:
                by_id = {}
                for ids in chunks([d["_id"] for d in found.values()], self.cfg.lookup_chunk):
                    self.queries += 1
                    by_id.update({d["_id"]: d for d in self.coll.find({"_id": {"$in": ids}})})
                found = {k: by_id[d["_id"]] for k, d in found.items() if d["_id"] in by_id}
            return found
        out: dict[tuple, dict] = {}
        for chunk in chunks(keys, self.cfg.lookup_chunk):
            query = {}
            for i, f in enumerate(self.spec.key):
                values = list({k[i]: None for k in chunk if not isinstance(k[i], tuple)})
                values += [json.loads(k[i][1]) for k in chunk if isinstance(k[i], tuple)]
                query[f] = {"$in": values}
            self.queries += 1
            wanted = set(chunk)
            for d in self.coll.find(query, self._projection()):
                k = natural_key(self.spec, d)
                if isinstance(k, tuple) and k in wanted:  # compound keys: $in per field is a superset
                    out.setdefault(k, d)
        return out


def choose_lookup(cfg: PromotionConfig, prod_total: int, local_selected: int, forced: str | None = None) -> str:
    mode = forced or cfg.lookup
    if mode != "auto":
        return mode
    return "scan" if prod_total <= cfg.scan_ratio * max(local_selected, 1) else "in"


# --------------------------------------------------------------------------- parents


def resolve_parents(
    spec: CollectionSpec,
    docs: list[dict],
    parents: dict[str, dict[Any, ParentRef]],
    cfg: PromotionConfig,
    local_db,
    prod_db,
) -> int:
    """Fill ``parents`` for references in ``docs`` not planned in this run; returns queries made.

    A local parent is found in production by its natural key; a reference that is not a local
    parent but is a production ``_id`` is kept; otherwise the parent is missing on both sides.
    """
    queries = 0
    for f, parent in spec.refs.items():
        pmap = parents.setdefault(parent, {})
        missing = list(
            {hashable(d[f]): d[f] for d in docs if d.get(f) is not None and hashable(d[f]) not in pmap}.items()
        )
        if not missing:
            continue
        pspec = cfg.collections[parent]
        for chunk in chunks(missing, cfg.lookup_chunk):
            ids = [v for _, v in chunk]
            queries += 1
            local_parents = {hashable(p["_id"]): p for p in local_db[parent].find({"_id": {"$in": ids}})}
            keyed = {}
            for h, p in local_parents.items():
                k = natural_key(pspec, p)
                if isinstance(k, tuple):
                    keyed[k] = h
                else:
                    pmap[h] = ParentRef(None, f"local parent {parent} {p['_id']!r} has {k}")
            if keyed:
                idx = ProdIndex(pspec, prod_db[parent], cfg, "in", full=False)
                found = idx.lookup(list(keyed))
                queries += idx.queries
                for k, h in keyed.items():
                    if k in found:
                        pmap[h] = ParentRef(found[k]["_id"])
                    else:
                        pmap[h] = ParentRef(
                            None,
                            f"parent {parent} {dict(zip(pspec.key, k, strict=True))} is not in production and not "
                            "promoted in this run",
                        )
            rest = [v for h, v in chunk if h not in local_parents]
            if rest:
                queries += 1
                in_prod = {hashable(p["_id"]) for p in prod_db[parent].find({"_id": {"$in": rest}}, {"_id": 1})}
                for v in rest:
                    h = hashable(v)
                    pmap[h] = (
                        ParentRef(v) if h in in_prod else ParentRef(None, f"parent {parent} missing on both sides")
                    )
    return queries


def parent_refs(plan: CollectionPlan) -> dict[Any, ParentRef]:
    """How children of ``plan``'s collection find their parent after this plan is carried out."""
    out = {}
    for a in plan.actions:
        h = hashable(a.local_id)
        if a.action == "reject":
            out[h] = ParentRef(None, f"parent {a.collection} {a.key} rejected: {a.reason}")
        else:
            out[h] = ParentRef(a.target_id)
    return out


# --------------------------------------------------------------------------- one collection


def plan_collection(
    spec: CollectionSpec,
    cfg: PromotionConfig,
    local_db,
    prod_db,
    query: dict,
    on_conflict: str,
    parents: dict[str, dict[Any, ParentRef]],
    *,
    lookup: str | None = None,
) -> CollectionPlan:
    """Plan ``spec``'s collection: one action per selected local document, in ``_id`` order (progress logged)."""
    from ferry.report import Progress

    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}")
    local, prod = local_db[spec.name], prod_db[spec.name]
    plan = CollectionPlan(spec)
    plan.local_total = local.estimated_document_count()
    plan.local_selected = local.count_documents(query) if query else plan.local_total
    plan.prod_total = prod.estimated_document_count()
    plan.lookup = choose_lookup(cfg, plan.prod_total, plan.local_selected, lookup)
    index = ProdIndex(spec, prod, cfg, plan.lookup, full=on_conflict != "skip")
    seen: dict[tuple, Any] = {}
    progress = Progress(log, f"plan {spec.name}", plan.local_selected)
    for batch in batches(local.find(query).sort("_id", 1).batch_size(cfg.batch_size), cfg.batch_size):
        if spec.refs:
            plan.prod_queries += resolve_parents(spec, batch, parents, cfg, local_db, prod_db)
        ready = _keyed(spec, batch, parents, seen, plan.actions)
        found = index.lookup([k for k, _ in ready]) if ready else {}
        for k, mapped in ready:
            plan.actions.append(decide(spec, mapped, found.get(k), on_conflict, full_prod=index.full))
        progress.add(len(batch))
    progress.log(final=True)
    plan.prod_queries += index.queries
    return plan


def _keyed(spec: CollectionSpec, batch: list[dict], parents, seen: dict[tuple, Any], actions: list) -> list:
    """``(natural key, remapped document)`` of each document of the batch that can be planned; the others
    (a parent that failed, no usable key, a key seen before in the local data) become reject actions."""
    ready: list[tuple[tuple, dict]] = []
    for doc in batch:
        mapped, why = remap(spec, doc, parents)
        k = natural_key(spec, mapped)
        if why or not isinstance(k, tuple):
            actions.append(Action(spec.name, "reject", key_dict(spec, mapped), doc["_id"], reason=why or str(k)))
            continue
        if k in seen:
            why = f"duplicate natural key in local data (also local _id {seen[k]!r})"
            actions.append(Action(spec.name, "reject", key_dict(spec, mapped), doc["_id"], reason=why))
            continue
        seen[k] = doc["_id"]
        ready.append((k, mapped))
    return ready


def plan_all(
    cfg: PromotionConfig,
    local_db,
    prod_db,
    collections: list[str],
    queries: dict[str, dict],
    on_conflict: str,
    *,
    lookup: str | None = None,
) -> list[CollectionPlan]:
    """Plans for ``collections`` in write order; children see their parents' planned outcome."""
    parents: dict[str, dict[Any, ParentRef]] = {}
    plans = []
    for spec in cfg.ordered(collections):
        query = queries.get(spec.name, {})
        plan = plan_collection(spec, cfg, local_db, prod_db, query, on_conflict, parents, lookup=lookup)
        parents.setdefault(spec.name, {}).update(parent_refs(plan))
        plans.append(plan)
    return plans
