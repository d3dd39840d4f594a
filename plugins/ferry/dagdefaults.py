"""Defaults every Ferry DAG shares (imported at DAG-parse time: keep it light)."""

from __future__ import annotations

from datetime import timedelta

import ferry.alerts
import ferry.params

OWNER = "ferry"


def default_args(**overrides) -> dict:
    """Owner, retries with exponential backoff (transient errors; bad data raises AirflowFailException), the
    failure alert, and the refusal of unknown conf keys."""
    args = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": ferry.alerts.on_failure,
        "pre_execute": ferry.params.refuse_unknown_conf,  # a misspelled conf key fails the run, never ignored
    }
    args.update(overrides)
    return args
