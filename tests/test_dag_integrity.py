"""Every DAG file imports cleanly, carries the metadata users rely on, and parses without heavy imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from ferry_dev.devstack import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
HEAVY = {"pandas", "pymongo", "great_expectations", "duckdb", "boto3", "psycopg", "bson", "pyarrow"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_dag_folder_is_not_empty():
    assert DAG_FILES, "no DAG files in dags/"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, dagbag.import_errors


def test_every_dag_has_owner_tags_retries_and_docs(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag_id}: no doc_md")
        for t in dag.tasks:
            if not t.owner or t.owner == "airflow":
                problems.append(f"{dag_id}.{t.task_id}: owner {t.owner!r}")
            if t.retries is None:
                problems.append(f"{dag_id}.{t.task_id}: retries unset")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_heavy_imports_at_top_level(path: Path):
    """Heavy libraries load inside tasks, never at parse time (checked statically and at runtime)."""
    tree = ast.parse(path.read_text())
    top = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            top += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.append(node.module.split(".")[0])
    assert not HEAVY & set(top), f"{path.name} imports {HEAVY & set(top)} at top level"

    # Counted over `import airflow.sdk` alone. (An Asset with a provider scheme would load every provider's
    # URI handlers, boto3 included: Ferry's parse-time assets use aliases or the x-duckdb scheme.)
    code = (
        "import sys, runpy; import airflow.sdk;"
        "base = set(sys.modules); runpy.run_path(sys.argv[1]);"
        f"heavy = sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules and m not in base); print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), f"{path.name} loads {out.stdout.strip()} when parsed"


def test_airflow_plugin_loader_does_not_import_the_library_as_loose_files():
    """plugins/.airflowignore keeps Airflow from importing ferry/*.py as top-level modules."""
    from airflow._shared.module_loading import find_path_from_directory

    files = list(find_path_from_directory(str(REPO_ROOT / "plugins"), ".airflowignore", "glob"))
    assert [f for f in files if f.endswith(".py")] == []


def test_every_task_alerts_on_failure_through_the_shared_callback(dagbag):
    from ferry.alerts import on_failure

    missing = []
    for dag_id, dag in dagbag.dags.items():
        for t in dag.tasks:
            cbs = t.on_failure_callback
            cbs = cbs if isinstance(cbs, (list, tuple)) else [cbs]
            if not any(
                getattr(cb, "__name__", None) == on_failure.__name__
                and getattr(cb, "__module__", None) == on_failure.__module__
                for cb in cbs
            ):
                missing.append(f"{dag_id}.{t.task_id}")
    assert not missing, f"tasks without ferry.alerts.on_failure: {missing}"
