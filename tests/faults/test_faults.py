"""Randomized fault injection on every write path: N trials per scenario and fault kind (``FERRY_FAULT_N``,
default 2), fault points drawn from ``FERRY_FAULT_SEED`` (new each run unless set; printed on failure).

A trial: fresh state -> the operation in a child process -> one fault at a random moment (SIGKILL of the
child, or SIGKILL + restart of the MongoDB server) -> the user's rerun, to completion -> compared with a
clean run (counts and content hash), checked for duplicates by natural key, and data promised untouched
compared byte for byte with its state before the trial.
"""

from __future__ import annotations

import time

import pytest

from ferry_dev import faults
from tests.faults import conftest as fc
from tests.faults.scenarios import NAMES, all_scenarios

pytestmark = [pytest.mark.integration, pytest.mark.faults]

_REFERENCE: dict[str, tuple[dict, float]] = {}


@pytest.fixture(scope="session")
def scenarios(stack, tmp_path_factory):
    return all_scenarios(stack, tmp_path_factory.mktemp("faults"))


def reference(sc, log) -> tuple[dict, float]:
    """The clean run's outcome, and its duration in a child (from READY): the range of fault delays."""
    if sc.name not in _REFERENCE:
        spec = sc.setup()
        try:
            duration = faults.measure(sc.op, spec, log)
            _REFERENCE[sc.name] = (sc.outcome(spec), duration)
        finally:
            sc.cleanup(spec)
    return _REFERENCE[sc.name]


@pytest.mark.parametrize("index", range(fc.N))
@pytest.mark.parametrize("kind", faults.KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_fault(name, kind, index, scenarios, tmp_path):
    sc = scenarios[name]
    log = tmp_path / "child.log"
    expected, duration = reference(sc, log)
    trial = faults.Trial(name, kind, index, fc.SEED)
    t0 = time.monotonic()
    spec = sc.setup()
    sc.settle()
    error = ""
    try:
        before = sc.untouched(spec)
        restart = sc.restart if (kind == "restart" and sc.restart_role) else None
        faults.inject(trial, sc.op, spec, duration, log, restart=restart, late=kind == "restart" and sc.late_restart)
        faults.run_op(sc.op, sc.rerun_spec(spec))  # the user's rerun
        problems = list(sc.problems(spec))
        got = sc.outcome(spec)
        if got != expected:
            problems.append(f"outcome differs from a clean run:\n  got      {got}\n  expected {expected}")
        after = sc.untouched(spec)
        problems += [f"{k} changed (promised untouched)" for k in before if before[k] != after.get(k)]
        error = "\n".join(problems)
    except Exception as exc:  # noqa: BLE001 - the rerun itself failed: a failed trial
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        faults.record(trial, not error, error, time.monotonic() - t0)
        if not error:
            sc.cleanup(spec)
    child = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert not error, (
        f"{trial.replay()}\ndelay {trial.delay}s of {duration:.2f}s, notes {trial.notes}\n{error}\nchild log tail:\n{child}"
    )
