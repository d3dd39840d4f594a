"""Fault-injection suite: seed, N and the per-scenario clean reference (see ferry_dev.faults).

``FERRY_FAULT_N`` trials per scenario and fault kind (default 2: what ``make test`` runs), ``FERRY_FAULT_SEED``
to replay a run (default: a new random seed, printed in the header and in every failure message).
"""

from __future__ import annotations

import os

import pytest

from ferry_dev import faults


@pytest.fixture(scope="session", autouse=True)
def short_lease():
    """A killed writer's lease lock frees itself after its lease: 3 s here (600 s by default) so that a rerun
    does not wait ten minutes. Set before the fork server starts (the children inherit it), for this folder only."""
    old = os.environ.get("FERRY_LOCK_TTL_SECONDS")
    os.environ["FERRY_LOCK_TTL_SECONDS"] = "3"
    yield
    if old is None:
        os.environ.pop("FERRY_LOCK_TTL_SECONDS", None)
    else:
        os.environ["FERRY_LOCK_TTL_SECONDS"] = old


SEED = faults.fault_seed()
N = faults.trials_per_kind()


def pytest_report_header(config):
    return f"ferry faults: FERRY_FAULT_SEED={SEED} FERRY_FAULT_N={N} (results: {faults.results_path()})"


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"ferry faults: replay with FERRY_FAULT_SEED={SEED} FERRY_FAULT_N={N}")
