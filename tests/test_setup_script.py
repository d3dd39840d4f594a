"""scripts/setup.sh (behind `make setup/demo/test`): bad set-up stops with a message saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferry_dev.devstack import REPO_ROOT

SETUP = REPO_ROOT / "scripts" / "setup.sh"


def _run(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, env={**os.environ, **env}, timeout=60)


def test_missing_python_is_named(tmp_path):
    res = _run(tmp_path, PYTHON="/nonexistent/python3.12", VENV=str(tmp_path / "venv"))
    assert res.returncode == 2
    assert "no '/nonexistent/python3.12' on PATH" in res.stderr and "Python 3.12+" in res.stderr


def test_python_older_than_3_12_is_refused_with_the_fix(tmp_path):
    old = tmp_path / "python3.11"
    old.write_text(
        "#!/bin/sh\nif [ \"$1\" = -V ]; then echo 'Python 3.11.7'; exit 0; fi\nexit 1\n"
    )  # fails the 3.12 check
    old.chmod(0o755)
    res = _run(tmp_path, PYTHON=str(old), VENV=str(tmp_path / "venv"))
    assert res.returncode == 2
    assert "Python 3.11.7 is too old" in res.stderr and "make PYTHON=python3.12" in res.stderr


def test_the_venv_is_python_3_12_or_newer():
    assert sys.version_info >= (3, 12), sys.version


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
