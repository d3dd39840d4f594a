"""The real TypeScript compiler and Zod (npm, pinned by ``ferry_dev/contracts/package-lock.json``), to check
the consumer contracts production_etl generates: ``tsc --noEmit --strict`` on the ``.d.ts`` and Zod files, and
Zod's ``safeParse`` of documents read back from a loaded target, on the machine's Node.

Installed once per lockfile into ``$FERRY_NODE_TOOLS_DIR`` (default ``.ferry/node-tools``) with ``npm ci``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ferry_dev.devstack import REPO_ROOT, SetupError, _run_logged

SOURCE = REPO_ROOT / "ferry_dev" / "contracts"
TSC_FLAGS = ["--strict", "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022"]


def tools_dir() -> Path:
    return Path(os.environ.get("FERRY_NODE_TOOLS_DIR") or REPO_ROOT / ".ferry" / "node-tools")


def ensure_installed() -> Path:
    """``npm ci`` the pinned typescript + zod unless this lockfile is installed already; returns the folder."""
    folder = tools_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(b"".join((SOURCE / n).read_bytes() for n in ("package.json", "package-lock.json")))
    marker = folder / ".ferry-installed"
    with open(folder / ".ferry-install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == digest.hexdigest():
            return folder
        npm = shutil.which("npm")
        if npm is None:
            raise SetupError("npm not found: the contract checks install typescript and zod from the npm registry")
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(SOURCE / name, folder / name)
        _run_logged([npm, "ci", "--no-audit", "--no-fund"], folder, "npm ci (ferry_dev/contracts)")
        marker.write_text(digest.hexdigest() + "\n")
    return folder


@dataclass
class Workspace:
    """A temporary folder where generated ``.ts`` files see the pinned ``node_modules``."""

    path: Path

    @classmethod
    def create(cls, files: dict[str, str]) -> Workspace:
        folder = ensure_installed()
        path = Path(tempfile.mkdtemp(prefix="ferry-contract-"))
        (path / "node_modules").symlink_to(folder / "node_modules")
        (path / "package.json").write_text('{"type": "module"}\n')
        for name, text in files.items():
            (path / name).write_text(text)
        return cls(path)

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=self.path, capture_output=True, text=True, timeout=300)

    def tsc(self, *names: str, emit: bool = False) -> subprocess.CompletedProcess:
        """The real ``tsc`` on ``names`` (``--noEmit`` unless ``emit``: then into ``out/``)."""
        flags = ["--outDir", "out"] if emit else ["--noEmit"]
        return self.run([str(self.path / "node_modules" / ".bin" / "tsc"), *flags, *TSC_FLAGS, *names])

    def zod_parse(self, zod_ts: str, docs: list[tuple[str, dict]]) -> list[dict]:
        """Zod's ``safeParse`` of each ``(schema name, relaxed-Extended-JSON document)``."""
        res = self.tsc(zod_ts, emit=True)
        if res.returncode:
            raise AssertionError(f"tsc failed on {zod_ts}:\n{res.stdout}{res.stderr}")
        lines = "".join(json.dumps({"type": t, "doc": d}) + "\n" for t, d in docs)
        (self.path / "docs.jsonl").write_text(lines)
        shutil.copy2(SOURCE / "check.mjs", self.path / "check.mjs")
        js = "out/" + Path(zod_ts).with_suffix(".js").name
        out = self.run(["node", "check.mjs", js, "docs.jsonl"])
        if out.returncode:
            raise AssertionError(f"node check.mjs failed:\n{out.stdout}{out.stderr}")
        return json.loads(out.stdout)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
