"""What the dev-clone operators do (``MongoIndexCloneOperator``, ``MongoDriftCheckOperator``; ``dags/devclone.py``
only declares them): guards for every database first, then one database at a time, a table per database in
the log and in the run's reports, an audit record per run next to each clone (``<clone>__ferry``), and a
failure at the end listing everything the target rejected or that still differs.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from ferry import audit, lineage, locks, report
from ferry.devclone import clone, drift
from ferry.errors import FerryError
from ferry.mongo import meta_db

log = logging.getLogger("ferry.devclone")

FAMILY = "devclone"
RUNS = "_ferry_clone_runs"
#: Asset alias of both DAGs' outlets: the clone collections a structure clone or a drift repair changed.
TARGET_ALIAS = "ferry_devclone_target"


def _audit(target_client, tgt: str, run: audit.Run, *, outcome: str, **fields) -> None:
    rec = run.record(id=f"{run.run_id}:{tgt}", family=FAMILY, outcome=outcome, target=tgt, **fields)
    audit.to_mongo(target_client[meta_db(tgt)][RUNS], rec)


def _writer(target_client, tgt: str, run: audit.Run, writes: bool):
    """One writer per clone: a structure clone and a drift repair of ``tgt`` (two DAGs) never interleave.
    The lease lock sits next to the clone's audit records; a dry run or a check without repair takes none."""
    if not writes:
        return contextlib.nullcontext()
    return locks.hold(
        target_client[meta_db(tgt)], f"devclone:{tgt}", owner=run.run_id, dag_id=run.dag_id, release_at_end=True
    )


def clone_structure(
    source,
    target,
    names: list[str],
    opts: clone.CloneOptions,
    *,
    run: audit.Run,
    logger=log,
    context=None,
) -> list[dict]:
    """Clone ``names`` from the ``source`` client to ``<name><suffix>`` on ``target``; summary rows. With the
    task's ``context``, asset events name the clone collections it changed."""
    pairs = clone.preflight(source, target, names, opts)
    progress = report.Progress(logger, "databases cloned", total=len(pairs))
    results = []
    for src_name, tgt_name in pairs:
        with _writer(target, tgt_name, run, not opts.dry_run):
            res = clone.clone_database(
                source[src_name],
                target[tgt_name],
                opts,
                report_url=report.location(FAMILY, run.run_id, tgt_name),
                logger=logger,
                emptiness_checked=True,  # preflight did, for every database
            )
        results.append(res)
        title = f"{'Plan (dry run)' if opts.dry_run else 'Clone'} {src_name} → {tgt_name}"
        rows = [{k: v for k, v in r.items() if k != "database"} for r in clone.report_rows(res)]
        report.log_table(logger, title, rows)
        report.publish(FAMILY, run.run_id, f"{tgt_name}.md", f"# {title}\n\n{report.table(rows)}\n")
        if res.search_report:
            logger.info("search indexes need manual steps: %s", res.search_report)
        if not opts.dry_run:  # a dry run writes nothing, not even its audit record
            _audit(
                target,
                tgt_name,
                run,
                outcome="failed" if res.failures else "success",
                params=vars(opts),
                counts=res.summary(),
                failures=res.failures[:200],
            )
            changed = clone.changed_collections(res.rows)
            lineage.mongo_written(context, TARGET_ALIAS, source, src_name, target, tgt_name, changed)
        progress.add(1)
    progress.log(final=True)
    summary = [r.summary() for r in results]
    report.log_table(logger, "Structure clone summary", summary)
    failures = [f for r in results for f in r.failures]
    if failures:
        report.log_table(logger, "Objects the target rejected", failures)
        raise clone.CloneFailed(failures)
    return summary


@dataclass(frozen=True)
class DriftOptions:
    """What ``dev_db_drift_check`` compares and whether it repairs."""

    suffix: str = "_dev"
    repair: bool = False
    include_search: bool = True


def drift_check(
    source, target, names: list[str], opts: DriftOptions, *, run: audit.Run, logger=log, context=None
) -> list[dict]:
    """Compare each source database with its clone (and repair: see ``drift.check``); summary rows; fails on drift.
    With the task's ``context``, asset events name the clone collections a repair changed."""
    summary, drifted, failures, remaining = [], [], [], []
    for name in names:
        tgt = clone.target_name(name, opts.suffix)
        clone.check_names(name, tgt, opts.suffix)
        clone.check_source(source[name])  # before the lock: a refused run writes nothing, not even the lock
        with _writer(target, tgt, run, opts.repair):
            res = drift.check(
                source[name],
                target[tgt],
                repair=opts.repair,
                include_search=opts.include_search,
                report_url=report.location(FAMILY, run.run_id, tgt),
            )
        _publish_drift(res, name, tgt, run, logger)
        row = {
            "source": name,
            "target": tgt,
            "differences": len(res.rows),
            "repaired": len([r for r in res.repaired if r.get("status") in ("created", "modified")]),
            "remaining": len(res.remaining),
        }
        summary.append(row)
        if opts.repair and res.repaired:
            outcome = "failed" if res.failures else "success"
            _audit(target, tgt, run, outcome=outcome, params={"repair": True}, counts=row, failures=res.failures[:200])
            changed = clone.changed_collections(res.repaired)
            lineage.mongo_written(context, TARGET_ALIAS, source, name, target, tgt, changed)
        drifted += [f"{tgt}.{r['collection']} {r['item']}: {r['change']}" for r in res.remaining]
        remaining += res.remaining
        failures += res.failures
    report.log_table(logger, "Drift summary", summary)
    if drifted or failures:
        raise FerryError(
            f"{len(drifted)} structural difference(s) between production and its clone"
            + (" remain after repair" if opts.repair else "")
            + f" ({drift.fix_hint(remaining, opts.repair)}):\n"
            + "\n".join(drifted[:50])
            + "".join(f"\nrepair failed: {f}" for f in failures)
        )
    return summary


def _publish_drift(res: drift.DriftResult, name: str, tgt: str, run: audit.Run, logger) -> None:
    """One database's drift (and repair) as tables in the log and as ``drift-<clone>.md`` in the run's reports."""
    text = report.log_table(logger, f"Drift {name} → {tgt}", drift.table_rows(res))
    if res.repaired:
        keep = ("collection", "object", "action", "status", "error")
        repaired = [{k: v for k, v in r.items() if k in keep} for r in res.repaired]
        text += "\n\n" + report.log_table(logger, f"Repair of {tgt}", repaired)
        text += "\n\n" + report.log_table(
            logger, f"Drift left after repair in {tgt}", drift.table_rows(res, res.remaining)
        )
    for note in res.notes:
        logger.warning("%s", note)
        text += f"\n\nNote: {note}"
    if res.search_report:
        text += f"\n\nSearch indexes to create by hand: {res.search_report}"
    report.publish(FAMILY, run.run_id, f"drift-{tgt}.md", text + "\n")
