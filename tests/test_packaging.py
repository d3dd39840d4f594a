"""The runtime library installs as a distribution, and never depends on the dev tooling."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile

from ferry_dev.devstack import REPO_ROOT

RUNTIME = REPO_ROOT / "plugins" / "ferry"


def test_no_runtime_module_imports_the_dev_tooling():
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")) + sorted((REPO_ROOT / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(REPO_ROOT)}: {n}" for n in names if n.split(".")[0] in ("ferry_dev", "tests")
            ]
    assert offenders == []


def test_the_library_builds_as_a_wheel_with_its_dependencies(tmp_path):
    src = tmp_path / "src"  # a copy: a build writes build/ and *.egg-info next to the sources
    shutil.copytree(REPO_ROOT / "plugins", src / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO_ROOT / name, src / name)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = tmp_path.glob("ferry-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "ferry/etl/runs.py" in names and "ferry/storage.py" in names
    assert not [n for n in names if n.startswith(("ferry_dev/", "tests/", "dags/"))]
    assert "Requires-Dist: apache-airflow==3.3.2" in meta and "Requires-Python: >=3.12" in meta
