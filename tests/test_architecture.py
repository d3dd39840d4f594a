"""The shape the redesign left, kept: short, narrow functions (the ones not yet split are a ratchet that only
shrinks); settings read in one module; no import cycle
inside ``plugins/ferry``; atdata's private parts behind one adapter; no logic in package ``__init__`` files.
(The same figures as ``../shared/tools/codeshape.py``, which a clean clone does not have.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "plugins" / "ferry"
FILES = sorted(PKG.rglob("*.py"))
MAX_LINES, MAX_PARAMS = 60, 8
ATDATA_ADAPTER = PKG / "catalog" / "atdata_adapter.py"

# The functions the redesign (issue 24) has not split yet, with their size today: a ratchet. A function on
# this list may shrink (then lower or drop its entry: the test says so) but never grow; any other function
# over the limit fails. The list only gets shorter.
KNOWN_LONG: dict[str, int] = {}
KNOWN_WIDE: dict[str, int] = {}
# atdata private names still used outside the adapter, per file (the same ratchet).
KNOWN_ATDATA: dict[str, int] = {}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _trees():
    return [(p, ast.parse(p.read_text())) for p in FILES]


def _functions():
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path, node


def _ratchet(measured: dict[str, int], known: dict[str, int], limit: int, what: str) -> list[str]:
    bad = [f"{k}: {v} {what} (limit {known.get(k, limit)})" for k, v in measured.items() if v > known.get(k, limit)]
    bad += [
        f"{k}: now {measured.get(k, 0)} {what}, the list says {v}: lower or drop its entry"
        for k, v in known.items()
        if measured.get(k, 0) < v
    ]
    return bad


def _key(path: Path, node) -> str:
    return f"{path.relative_to(PKG)}:{node.name}"


def test_no_function_over_60_lines():
    sizes = {_key(p, n): n.end_lineno - n.lineno + 1 for p, n in _functions()}
    bad = _ratchet({k: v for k, v in sizes.items() if v > MAX_LINES}, KNOWN_LONG, MAX_LINES, "lines")
    assert not bad, "functions over 60 lines (split them) or a stale KNOWN_LONG:\n" + "\n".join(bad)


def test_no_function_over_8_params():
    widths = {}
    for p, n in _functions():
        a = n.args
        widths[_key(p, n)] = len([x for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")])
    bad = _ratchet({k: v for k, v in widths.items() if v > MAX_PARAMS}, KNOWN_WIDE, MAX_PARAMS, "params")
    assert not bad, "functions over 8 parameters (pass a request or a small dataclass):\n" + "\n".join(bad)


@pytest.mark.parametrize("folder", ["plugins/ferry", "dags"])
def test_environment_read_only_in_settings(folder):
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if path == PKG / "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            env = isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv", "unsetenv")
            env = env and isinstance(node.value, ast.Name) and node.value.id == "os"
            imported = isinstance(node, ast.ImportFrom) and node.module == "os"
            imported = imported and any(x.name in ("environ", "getenv", "putenv") for x in node.names)
            if env or imported:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "environment read outside ferry/settings.py:\n" + "\n".join(found)


def _import_graph() -> dict[str, set[str]]:
    mods = {_module(p) for p in FILES}
    graph: dict[str, set[str]] = {}
    for path, tree in _trees():
        m = _module(path)
        edges = graph.setdefault(m, set())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [x.name for x in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{x.name}" for x in node.names]
            edges.update(t for t in targets if t in mods and t != m)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative enough for a package)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_no_import_cycle_inside_ferry():
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles (function-level imports count):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_atdata_private_names_only_in_the_adapter():
    found = []
    for path, tree in _trees():
        if path == ATDATA_ADAPTER:
            continue
        uses_atdata = "atdata" in path.read_text()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "atdata":
                private = [p for p in node.module.split(".") if p.startswith("_")]
                private += [x.name for x in node.names if x.name.startswith("_")]
                if private:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module} {private}")
            if uses_atdata and isinstance(node, ast.Attribute) and node.attr in ("_login", "_client", "_session"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    per_file: dict[str, int] = {}
    for f in found:
        key = str(Path(f.split(":")[0]).relative_to("plugins/ferry"))
        per_file[key] = per_file.get(key, 0) + 1
    bad = _ratchet(per_file, KNOWN_ATDATA, 0, "private uses")
    assert not bad, "atdata private names outside ferry/catalog/atdata_adapter.py:\n" + "\n".join(bad + found)


def _dunder(target) -> bool:
    return isinstance(target, ast.Name) and target.id.startswith("__")  # __version__ is metadata, not logic


def test_package_init_files_hold_no_logic():
    busy = []
    for path, tree in _trees():
        if path.name != "__init__.py":
            continue
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        body = [n for n in body if not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
        body = [n for n in body if not (isinstance(n, ast.Assign) and all(_dunder(t) for t in n.targets))]
        if body:
            busy.append(f"{path.relative_to(ROOT)} ({len(body)} statements)")
    assert not busy, "package __init__ files with code (move it into a module):\n" + "\n".join(busy)


def test_airflow_params_only_through_the_public_sdk():
    found = [
        f"{p.relative_to(ROOT)}:{n.lineno} {n.module}"
        for p, tree in _trees()
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("airflow.sdk.definitions")
    ]
    assert not found, "Airflow internals imported (use airflow.sdk):\n" + "\n".join(found)


def test_the_ratchet_fails_on_growth_new_entries_and_stale_entries():
    assert _ratchet({"a": 80}, {"a": 80}, 60, "lines") == []
    assert _ratchet({"a": 81}, {"a": 80}, 60, "lines") == ["a: 81 lines (limit 80)"]
    assert _ratchet({"b": 61}, {}, 60, "lines") == ["b: 61 lines (limit 60)"]
    assert _ratchet({}, {"a": 80}, 60, "lines") == ["a: now 0 lines, the list says 80: lower or drop its entry"]
