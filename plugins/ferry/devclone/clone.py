"""Clone a MongoDB database's structure (no documents): plan, guards, apply.

``plan_clone(source, target, ...)`` compares two structures (``ferry.devclone.structure``) and
returns one row per object with an action:

- ``create``   – collection / view / index / search index missing on the target,
- ``exists``   – already there and identical (nothing sent),
- ``collMod``  – validator / validation level / action differ (changed in place),
- ``recreate`` – an EMPTY target collection whose other options differ (for example one a server crash
  left half made): dropped and created again with the source's options, then its indexes (no document
  can be lost: only collections ``empty`` lists qualify),
- ``differs``  – there but different in a way Ferry will not change by itself (index with the
  same name and another spec, keys in another order included: dropped and re-created only with
  ``drop_extra_indexes``, or by the drift check's ``repair``),
- ``extra``    – only on the target (indexes dropped only with ``drop_extra_indexes``),
- ``drop``     – an extra or differing index that ``drop_extra_indexes`` removes,
- ``unsupported`` – a source index the target's server version cannot build (``geoHaystack`` on
  MongoDB ≥ 5.0): never sent; ``note`` says why and what to use instead.

Index rows whose source key held legacy values (``true``, ``0``, ``""``) say in ``note`` how each
was converted (``ferry.mongo.legacy_key``, as mongorestore does). In a collection with a default collation,
an index without one is sent with ``collation: {locale: "simple"}`` (``structure.spec_to_send``), and its
note says so.

``apply_plan(target_db, rows)`` sends ``create`` for collections (views after their sources),
then ONE ``createIndexes`` per collection with its indexes ordered regular → text → geo →
TTL/partial. When a batch fails, that collection's indexes are retried one at a time so every
rejected index is reported with the server's error; the run continues and the caller fails at
the end listing every failure (``CloneFailed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.devclone import search_indexes, structure
from ferry.errors import FerryError

log = logging.getLogger(__name__)


class GuardError(FerryError, ValueError):
    """The clone would touch something it must not (prod database, non-empty target, bad name)."""


class CloneFailed(FerryError):
    """Some objects could not be created; ``failures`` lists each with the server's error."""

    def __init__(self, failures: list[dict]):
        lines = [f"{f['database']}.{f['collection']} {f['object']}: {f['error']}" for f in failures]
        super().__init__(f"{len(failures)} object(s) could not be cloned:\n" + "\n".join(lines))
        self.failures = failures


#: Plan actions, in the order the summary lists them.
ACTIONS = ("create", "exists", "collMod", "recreate", "differs", "extra", "drop", "unsupported")


@dataclass
class CloneOptions:
    target_suffix: str = "_dev"
    dry_run: bool = True
    drop_extra_indexes: bool = False
    include_search_indexes: bool = True
    allow_nonempty_target: bool = False
    search_timeout: float = 600.0
    verify_vector_search: bool = False


@dataclass
class CloneResult:
    source: str
    target: str
    rows: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    write_commands: int = 0
    search_report: str | None = None

    def summary(self) -> dict:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r["action"]] = counts.get(r["action"], 0) + 1
        return {
            "source": self.source,
            "target": self.target,
            **{k: counts.get(k, 0) for k in ACTIONS},
            "failures": len(self.failures),
            "write_commands": self.write_commands,
            "search_report": self.search_report or "",
        }


# --------------------------------------------------------------------------- guards


def target_name(source: str, suffix: str) -> str:
    return f"{source}{suffix}"


def check_names(source: str, target: str, suffix: str, *, same_server: bool = True) -> None:
    """Refuse an empty suffix, a target equal to the source, or a target not ending with the suffix."""
    if not suffix:
        raise GuardError("target_suffix is empty: the clone would write into the source database")
    if target == source:
        raise GuardError(f"target database {target!r} is the source database: refusing to clone onto it")
    if not target.endswith(suffix):
        raise GuardError(f"target database {target!r} does not end with the suffix {suffix!r}")
    if source.endswith(suffix):
        raise GuardError(f"source database {source!r} already ends with {suffix!r}: is it a clone itself?")


def nonempty_collections(target_db, names: list[str] | None = None) -> list[str]:
    """Collections of ``target_db`` (or those of ``names``) holding at least one document: one ``find``
    with limit 1 each (after a ``listCollections`` when ``names`` is not given)."""
    if names is None:
        names = [
            i["name"]
            for i in target_db.list_collections()
            if not i["name"].startswith("system.") and i.get("type") != "view"
        ]
    return sorted(n for n in names if target_db[n].find_one({}, projection={"_id": 1}) is not None)


# --------------------------------------------------------------------------- plan


def _row(coll: str, obj: str, action: str, detail: Any = "", spec: Any = None, kind: str = "", note: str = "") -> dict:
    return {
        "collection": coll,
        "object": obj,
        "kind": kind,
        "action": action,
        "detail": detail,
        "spec": spec,
        "note": note,
    }


def plan_clone(
    source: dict,
    target: dict,
    *,
    drop_extra_indexes: bool = False,
    recreate_indexes: bool | None = None,
    source_search: dict[str, list[dict]] | None = None,
    target_search: dict[str, list[dict]] | None = None,
    empty: set[str] | frozenset[str] = frozenset(),
    target_version: tuple[int, ...] | None = None,
) -> list[dict]:
    """Rows (see module doc) turning ``target`` into ``source``; drops only an empty collection of
    ``empty`` whose options cannot be changed in place (``recreate``). ``target_version``: the target server's
    version (``None``: a current one), for the index types it can no longer build.

    ``recreate_indexes`` (default: ``drop_extra_indexes``) drops and re-creates same-named indexes
    whose spec differs; ``drop_extra_indexes`` also drops indexes only the target has.
    """
    recreate = drop_extra_indexes if recreate_indexes is None else recreate_indexes
    policy = _IndexPolicy(recreate, drop_extra_indexes, target_version)
    rows: list[dict] = []
    s_colls, t_colls = source["collections"], target["collections"]
    for name in structure.creation_order(s_colls):
        s, t = s_colls[name], t_colls.get(name)
        t = _collection_rows(rows, name, s, t, name in empty)
        if s["type"] == "view":
            continue
        _index_rows(rows, name, s, t["indexes"] if t else {}, policy)
        existing = {x["name"]: x for x in (target_search or {}).get(name, [])}
        for d in (source_search or {}).get(name, []):
            have, kind_s = existing.get(d["name"]), f"search/{d['type']}"
            if have is None:
                rows.append(_row(name, d["name"], "create", d["type"], d, kind_s))
            elif have == d:
                rows.append(_row(name, d["name"], "exists", d["type"], d, kind_s))
            else:
                rows.append(_row(name, d["name"], "differs", {"source": d, "target": have}, kind=kind_s))
    for name in sorted(set(t_colls) - set(s_colls)):
        rows.append(_row(name, name, "extra", "only on the target (never dropped)", kind=t_colls[name]["type"]))
    return rows


def _collection_rows(rows: list[dict], name: str, s: dict, t: dict | None, empty: bool) -> dict | None:
    """The collection's own rows (create, collMod, recreate, differs, exists); the target collection whose
    indexes are compared next (``None`` when it is created or re-created)."""
    kind = s["type"]
    if t is None:
        rows.append(_row(name, name, "create", s["options"] or "", s["options"], kind))
        return None
    if t["type"] != kind:
        rows.append(_row(name, name, "differs", f"{kind} on source, {t['type']} on target", kind=kind))
        return t
    changed = structure.changed_options(s["options"], t["options"])
    fixable = {o for o in changed if o in structure.COLLMOD_OPTIONS}
    if kind == "view" and changed & {"viewOn", "pipeline"}:
        fixable |= {"viewOn", "pipeline"}  # collMod takes both together
    if changed - fixable and kind != "view" and empty:
        why = f"empty, and {sorted(changed - fixable)} differ: dropped and created with the source's options"
        rows.append(_row(name, name, "recreate", why, s["options"], kind))
        t = None  # its indexes go with it: every source index is created below
    elif fixable:
        spec = {o: s["options"].get(o, structure.COLLMOD_DEFAULTS.get(o)) for o in sorted(fixable)}
        rows.append(_row(name, f"{name} options", "collMod", sorted(fixable), spec, "options"))
    if changed - fixable and t is not None:
        why = f"{sorted(changed - fixable)} differ (drop and re-create the collection to change)"
        rows.append(_row(name, f"{name} options", "differs", why, kind="options"))
    if not changed:
        rows.append(_row(name, name, "exists", kind=kind))
    return t


@dataclass(frozen=True)
class _IndexPolicy:
    recreate: bool  # drop and re-create a same-named index whose spec differs
    drop_extra: bool  # drop indexes only the target has
    target_version: tuple[int, ...] | None  # None: a current server


def _index_rows(rows: list[dict], name: str, s: dict, t_idx: dict, policy: _IndexPolicy) -> None:
    """The collection's index rows: each source index created, existing, re-created, differing or unsupported
    (in creation order), then the target's extra indexes (dropped with ``drop_extra``)."""
    converted = s.get("legacy_keys", {})
    for iname, spec in sorted(s["indexes"].items(), key=lambda kv: _index_sort_key(kv[1])):
        if iname == "_id_":
            continue
        kind_i = f"index/{structure.index_group(spec)}"
        send, collation_note = structure.spec_to_send(spec, s["options"])
        notes = [collation_note] if collation_note else []
        if iname in converted:
            notes.insert(0, "legacy key values converted as mongorestore does: " + "; ".join(converted[iname]))
        note = "; ".join(notes)
        have = t_idx.get(iname)
        why_not = structure.unsupported_index(spec, policy.target_version)
        if why_not and have is None:
            rows.append(_row(name, iname, "unsupported", _spec_detail(spec), spec, kind_i, why_not))
        elif have is None:
            rows.append(_row(name, iname, "create", _spec_detail(spec), send, kind_i, note))
        elif structure.comparable_index(have) == structure.comparable_index(spec):
            rows.append(_row(name, iname, "exists", _spec_detail(spec), spec, kind_i, note))
        elif policy.recreate:
            how = structure.index_changes(spec, have)
            rows.append(_row(name, iname, "drop", f"re-created with the source's spec ({how})", have, kind_i))
            rows.append(_row(name, iname, "create", _spec_detail(spec), send, kind_i, note))
        else:
            detail = {"differs": structure.index_changes(spec, have), "source": spec, "target": have}
            rows.append(_row(name, iname, "differs", detail, kind=kind_i, note=note))
    for iname, have in sorted(t_idx.items()):
        if iname == "_id_" or iname in s["indexes"]:
            continue
        rows.append(_row(name, iname, "drop" if policy.drop_extra else "extra", _spec_detail(have), have, "index"))


def _spec_detail(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "name"}


def _index_sort_key(spec: dict) -> tuple[int, str]:
    return structure.INDEX_GROUPS.index(structure.index_group(spec)), spec["name"]


def create_indexes_command(collection: str, specs: list[dict]) -> dict:
    """ONE ``createIndexes`` command for ``specs`` (already normalised), in regular → text → geo → TTL/partial order."""
    ordered = sorted(specs, key=_index_sort_key)
    return {"createIndexes": collection, "indexes": [dict(s) for s in ordered]}


def create_collection_command(name: str, options: dict) -> dict:
    return {"create": name, **options}


# --------------------------------------------------------------------------- apply


def apply_plan(target_db, rows: list[dict], *, database: str | None = None) -> tuple[list[dict], int]:
    """Execute ``rows`` on ``target_db``; returns ``(failures, write_commands_sent)``.

    Each row gets ``status``: ``created`` / ``dropped`` / ``modified`` / ``failed`` (with ``error``).
    Search-index rows are left to ``apply_search``.
    """
    from pymongo.errors import OperationFailure

    ap = _Applier(target_db, database or target_db.name)
    failed_colls: set[str] = set()
    for row in rows:  # collections and views, already in creation order
        if row["kind"] in ("collection", "view", "timeseries") and row["action"] in ("create", "recreate"):
            if not ap.create_collection(row):
                failed_colls.add(row["collection"])
        elif row["action"] == "collMod" and ap.run(row, {"collMod": row["collection"], **row["spec"]}):
            row["status"] = "modified"
    by_coll: dict[str, list[dict]] = {}
    for row in rows:
        if not row["kind"].startswith("index"):
            continue
        if row["action"] == "drop":
            if ap.run(row, {"dropIndexes": row["collection"], "index": row["object"]}):
                row["status"] = "dropped"
        elif row["action"] == "create":
            by_coll.setdefault(row["collection"], []).append(row)
    for coll, idx_rows in by_coll.items():
        if coll in failed_colls:
            for row in idx_rows:
                row["status"], row["error"] = "skipped", "collection could not be created"
            continue
        try:
            ap.sent += 1
            target_db.command(create_indexes_command(coll, [r["spec"] for r in idx_rows]))
            for row in idx_rows:
                row["status"] = "created"
        except OperationFailure:
            # find which ones the server rejects: one command per index (an index the batch
            # did create answers "already exists", which is fine)
            for row in sorted(idx_rows, key=lambda r: _index_sort_key(r["spec"])):
                if ap.run(row, create_indexes_command(coll, [row["spec"]])):
                    row["status"] = "created"
    return ap.failures, ap.sent


class _Applier:
    """Sends write commands to a clone, counting them; a refused command marks its row ``failed``."""

    def __init__(self, target_db, dbname: str):
        self.target_db, self.dbname = target_db, dbname
        self.failures: list[dict] = []
        self.sent = 0

    def fail(self, row: dict, exc: BaseException) -> None:
        row["status"], row["error"] = "failed", search_indexes._errmsg(exc)
        self.failures.append(
            {"database": self.dbname, "collection": row["collection"], "object": row["object"], "error": row["error"]}
        )

    def run(self, row: dict, command: dict) -> bool:
        from pymongo.errors import PyMongoError

        try:
            self.sent += 1
            self.target_db.command(command)
            return True
        except PyMongoError as exc:
            self.fail(row, exc)
            return False

    def create_collection(self, row: dict) -> bool:
        """Create (or drop, if still empty, and create) the row's collection or view."""
        from pymongo.errors import PyMongoError

        try:
            if row["action"] == "recreate":
                if self.target_db[row["collection"]].find_one({}, projection={"_id": 1}) is not None:
                    raise GuardError(f"{row['collection']!r} is no longer empty: not dropped")
                self.sent += 1
                self.target_db.command({"drop": row["collection"]})
            self.sent += 1
            self.target_db.command(create_collection_command(row["collection"], row["spec"]))
            row["status"] = "created"
            return True
        except (PyMongoError, GuardError) as exc:
            self.fail(row, exc)
            return False


def apply_search(
    target_db,
    rows: list[dict],
    *,
    report_url: str | Path | None,
    timeout: float = 600,
    verify_vector_search: bool = False,
    sleep: Callable[[float], None] | None = None,
    unsupported: str | None = None,
) -> tuple[list[dict], str | None, int]:
    """Create the search indexes of ``rows`` (one ``createSearchIndexes`` per collection).

    Where the target has no search support the definitions and instructions go to
    ``<report_url>/SEARCH_INDEXES.md`` (rows get status ``manual``). ``unsupported``: the target already
    said it cannot list search indexes (why): nothing is sent, the rows go to the report (a rerun onto the
    same target sends no search command). Returns ``(failures, report_path, commands_sent)``.
    """
    from pymongo.errors import PyMongoError

    dbname = target_db.name
    by_coll: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"].startswith("search/") and row["action"] == "create":
            by_coll.setdefault(row["collection"], []).append(row)
    failures: list[dict] = []
    manual: dict[str, list[dict]] = {}
    reason = ""
    sent = 0
    for coll, srows in sorted(by_coll.items()):
        defs = [r["spec"] for r in srows]
        try:
            if unsupported:
                res: dict[str, Any] = {"status": "unsupported", "error": unsupported, "pending": []}
            else:
                sent += 1
                res = search_indexes.create(target_db, coll, defs, timeout=timeout, sleep=sleep)
        except PyMongoError as exc:
            res = {"status": "failed", "error": search_indexes._errmsg(exc), "pending": [d["name"] for d in defs]}
        for r in srows:
            if res["status"] == "created":
                r["status"] = "created"
                if verify_vector_search and r["spec"]["type"] == "vectorSearch":
                    probe = search_indexes.vector_probe(target_db[coll], r["spec"])
                    r["status"] = f"created, $vectorSearch probe: {probe}"
            elif res["status"] == "unsupported":
                r["status"], r["error"] = "manual", res["error"]
            elif r["object"] in res["pending"]:
                r["status"], r["error"] = "failed", res["error"]
                failures.append({"database": dbname, "collection": coll, "object": r["object"], "error": res["error"]})
            else:
                r["status"] = "created"
        if res["status"] == "unsupported":
            manual[coll] = defs
            reason = res["error"]
    report = None
    if manual and report_url is not None:
        report = search_indexes.write_manual_report(report_url, dbname, manual, reason)
    return failures, report, sent


# --------------------------------------------------------------------------- one database


def read_search(
    db, collections: dict[str, dict], reader=search_indexes.read
) -> tuple[dict[str, list[dict]], str | None]:
    """Search-index definitions per collection of ``db`` (``{}`` and the reason where unsupported)."""
    out: dict[str, list[dict]] = {}
    for name, c in collections.items():
        if c["type"] == "view":
            continue
        defs, reason = reader(db[name])
        if reason is not None:
            return {}, reason
        if defs:
            out[name] = defs
    return out, None


_LEFT_AS_IS = (
    "differs from the source and was left as is (indexes: rerun with drop_extra_indexes=true; "
    "collection options: drop the collection in the clone and rerun)"
)


def _searches(source_db, target_db, src: dict, tgt: dict, opts: CloneOptions, reader, logger):
    """The source's and the target's search index definitions (``None`` where not wanted or not listable),
    and why the target cannot list them (``None``: it can, or it has no collection to ask yet)."""
    if not opts.include_search_indexes:
        return None, None, None
    s_search, why = read_search(source_db, src["collections"], reader)
    if why:
        logger.info("source %s: no search indexes read (%s)", source_db.name, why)
    t_search, why_t = None, None
    if s_search:
        t_search, why_t = read_search(target_db, tgt["collections"], reader)
        if why_t:
            logger.info("target %s: search indexes cannot be listed (%s)", target_db.name, why_t)
    return s_search, t_search, why_t


def _empty_collections(target_db, tgt: dict, opts: CloneOptions, emptiness_checked: bool) -> set[str]:
    """The target's collections without documents; refused when some hold documents (unless allowed)."""
    colls = [n for n, c in tgt["collections"].items() if c["type"] != "view"]
    full = [] if emptiness_checked and not opts.allow_nonempty_target else nonempty_collections(target_db, colls)
    if full and not opts.allow_nonempty_target:
        raise GuardError(
            f"target database {target_db.name!r} already holds documents in {full}: refusing to clone onto "
            "it (set allow_nonempty_target=true to add missing collections and indexes anyway)"
        )
    return set(colls) - set(full)


def server_version(db) -> tuple[int, ...] | None:
    """``(major, minor)`` of the server holding ``db`` (``None`` when it does not say)."""
    from pymongo.errors import PyMongoError

    try:
        return tuple(int(x) for x in db.client.server_info()["versionArray"][:2])
    except (KeyError, TypeError, ValueError, PyMongoError):
        return None


def check_source(source_db) -> None:
    """Refuse a source database that does not exist (no collections), before anything is written anywhere."""
    if not [n for n in source_db.list_collection_names() if not n.startswith("system.")]:
        raise GuardError(f"source database {source_db.name!r} has no collections (does it exist?)")


def clone_database(
    source_db,
    target_db,
    opts: CloneOptions,
    *,
    report_url: str | Path | None = None,
    search_reader=search_indexes.read,
    logger: logging.Logger = log,
    emptiness_checked: bool = False,
) -> CloneResult:
    """Guards, plan, and (unless ``opts.dry_run``) apply, for one source database.

    Raises ``GuardError`` before anything is written. Failures are returned in the result (the
    caller raises ``CloneFailed`` after every database was processed). ``emptiness_checked``: the
    caller's ``preflight`` already found the target without documents (one check per database).
    """
    check_names(source_db.name, target_db.name, opts.target_suffix)
    src = structure.read_structure(source_db)
    if not src["collections"]:
        raise GuardError(f"source database {source_db.name!r} has no collections (does it exist?)")
    tgt = structure.read_structure(target_db)
    empty = _empty_collections(target_db, tgt, opts, emptiness_checked)
    result = CloneResult(source=source_db.name, target=target_db.name)
    s_search, t_search, t_unsupported = _searches(source_db, target_db, src, tgt, opts, search_reader, logger)
    rows = plan_clone(
        src,
        tgt,
        drop_extra_indexes=opts.drop_extra_indexes,
        source_search=s_search,
        target_search=t_search,
        empty=empty,
        target_version=server_version(target_db),
    )
    for r in rows:
        if r["note"]:
            level = logging.WARNING if r["action"] == "unsupported" else logging.INFO
            logger.log(level, "%s.%s index %s: %s", source_db.name, r["collection"], r["object"], r["note"])
    result.rows = rows
    if opts.dry_run:
        for r in rows:
            r["status"] = "dry run"
        return result
    failures, sent = apply_plan(target_db, rows)
    s_fail, report, s_sent = apply_search(
        target_db,
        rows,
        report_url=report_url,
        timeout=opts.search_timeout,
        verify_vector_search=opts.verify_vector_search,
        unsupported=t_unsupported,
    )
    differs = [
        {"database": target_db.name, "collection": r["collection"], "object": r["object"], "error": _LEFT_AS_IS}
        for r in rows
        if r["action"] == "differs"
    ]
    result.failures = failures + s_fail + differs
    result.write_commands = sent + s_sent
    result.search_report = report
    return result


#: Row statuses that mean the target was written (``created`` may carry a vector search probe's outcome).
WRITTEN = ("created", "modified", "dropped")


def changed_collections(rows: list[dict]) -> list[str]:
    """The collections (and views) that plan ``rows`` wrote to: created, modified, an index created or dropped."""
    return sorted({r["collection"] for r in rows if str(r.get("status", "")).startswith(WRITTEN)})


def report_rows(result: CloneResult) -> list[dict]:
    """Plan/outcome rows for a markdown table (BSON values rendered as JSON)."""
    out = []
    for r in result.rows:
        detail = r["detail"]
        if not isinstance(detail, str):
            detail = structure.json_text(detail)  # keeps key order (compound indexes)
        out.append(
            {
                "database": result.target,
                "collection": r["collection"],
                "object": r["object"],
                "kind": r["kind"],
                "action": r["action"],
                "status": r.get("status", ""),
                "detail": detail,
                "note": r.get("note", ""),
                "error": r.get("error", ""),
            }
        )
    return out


def preflight(source_client, target_client, databases: list[str], opts: CloneOptions) -> list[tuple[str, str]]:
    """Check every database before anything is written.

    Returns ``[(source, target)]``, or raises ``GuardError`` listing every problem found.
    """
    if not databases:
        raise GuardError("source_databases is empty: name at least one database to clone")
    pairs, problems = [], []
    for name in databases:
        if not isinstance(name, str) or not name.strip():
            problems.append(f"source_databases: {name!r} is not a database name")
            continue
        target = target_name(name, opts.target_suffix)
        try:
            check_names(name, target, opts.target_suffix)
            check_source(source_client[name])
            if not opts.allow_nonempty_target:
                full = nonempty_collections(target_client[target])
                if full:
                    raise GuardError(
                        f"target database {target!r} already holds documents in {full} "
                        "(set allow_nonempty_target=true to clone into it anyway)"
                    )
        except GuardError as exc:
            problems.append(str(exc))
            continue
        pairs.append((name, target))
    if problems:
        raise GuardError("refusing to clone:\n" + "\n".join(f"- {p}" for p in problems))
    return pairs
