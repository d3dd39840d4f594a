"""scripts/setup.sh (behind `make setup/demo/test`): bad set-up stops with a message saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferry.devstack import REPO_ROOT

SETUP = REPO_ROOT / "scripts" / "setup.sh"


def _run(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SETUP)], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_missing_python_is_named(tmp_path):
    res = _run(tmp_path, PYTHON="/nonexistent/python3.11", VENV=str(tmp_path / "venv"))
    assert res.returncode == 2
    assert "no '/nonexistent/python3.11' on PATH" in res.stderr and "Python 3.11+" in res.stderr


def test_failed_pip_install_points_at_the_log_and_the_fix(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    pip = venv / "bin" / "pip"
    pip.write_text("#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement x' >&2\nexit 1\n")
    pip.chmod(0o755)
    res = _run(tmp_path, VENV=str(venv))
    assert res.returncode == 2
    assert "pip install failed" in res.stderr and ".ferry/install.log" in res.stderr
    assert "Could not find a version" in res.stderr  # the tail of pip's own error is shown
    assert not (venv / ".ferry-installed").exists()
