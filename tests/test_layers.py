"""Imports point inward only (ARCHITECTURE.md, "Layers"), and the scheduler is pure.

Every module under ``src/axcenter`` is parsed with ``ast``; every import counts, also
those under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = SRC / "axcenter"

#: package -> the other axcenter packages it may import (each may import itself).
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "sched": frozenset({"model"}),
    "store": frozenset({"model"}),
    "executors": frozenset({"model"}),
    "accounting": frozenset({"store", "model"}),
    "sim": frozenset({"sched", "model"}),
    "control": frozenset({"sched", "store", "executors", "model", "accounting"}),
    # the center wires the simulator's forward run into the estimator (sim/forecast.py)
    "service": frozenset(
        {"control", "store", "sched", "sim", "executors", "model", "accounting", "settings"}
    ),
    # the API's application mounts the dashboard's pages
    "api": frozenset({"service", "model", "store", "control", "settings", "web"}),
    "web": frozenset({"service", "model", "store"}),
    # the CLI runs simulations locally (`axc sim`) and the server (`axc up`)
    "cli": frozenset({"client", "api", "service", "settings", "model", "sim"}),
    "client": frozenset(),
    # top-level modules
    "__init__": frozenset(),
    "settings": frozenset(),
}

#: Standard-library modules a pure function has no business with: I/O, clocks,
#: randomness, processes, threads, the environment.
IMPURE_STDLIB = frozenset(
    {
        "asyncio",
        "concurrent",
        "ctypes",
        "fcntl",
        "fileinput",
        "ftplib",
        "glob",
        "http",
        "importlib",
        "io",
        "logging",
        "mmap",
        "multiprocessing",
        "os",
        "pathlib",
        "queue",
        "random",
        "secrets",
        "select",
        "selectors",
        "shutil",
        "signal",
        "smtplib",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib",
        "uuid",
    }
)
#: Calls that read the clock or do I/O, whatever module they come from.
IMPURE_ATTRIBUTES = frozenset({"now", "utcnow", "today", "time_ns", "perf_counter", "monotonic"})
IMPURE_BUILTINS = frozenset({"open", "print", "input", "exec", "eval", "__import__", "breakpoint"})


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. axcenter.sched.plan
    target: str  # what it imports, e.g. axcenter.model.plan
    line: int

    def __str__(self) -> str:
        return f"{self.module} imports {self.target} (line {self.line})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_submodule(dotted: str) -> bool:
    """Whether ``axcenter.x.y`` names a module or package in the source tree."""
    path = SRC.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def imports_of(path: Path) -> list[Import]:
    text = path.read_text(encoding="utf-8")
    return imports_in(text, module_name(path), is_package=path.name == "__init__.py")


def imports_in(text: str, module: str, *, is_package: bool) -> list[Import]:
    """The absolute targets of every import in ``text``, the source of ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(text, filename=module)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from axcenter import sched`` imports the package axcenter.sched.
                full = f"{source}.{alias.name}"
                target = full if _is_submodule(full) else source
                found.append(Import(module, target, node.lineno))
    return found


def layer_of(module: str) -> str:
    """``axcenter.sched.plan`` -> ``sched``; ``axcenter`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(ROOT.rglob("*.py"))
MODULE_IDS = [module_name(p) for p in MODULES]


def test_the_source_tree_is_found() -> None:
    assert "axcenter.sched.plan" in MODULE_IDS
    assert "axcenter.model.jobs" in MODULE_IDS
    assert len(MODULES) > 20


def layer_violations(module: str, imports: list[Import]) -> list[str]:
    layer = layer_of(module)
    if layer not in ALLOWED:
        return [f"{module}: package {layer!r} has no rule in ALLOWED; add one"]
    may_import = ALLOWED[layer] | {layer}
    bad = []
    for imp in imports:
        if imp.target == "axcenter":
            # ``from axcenter import __version__``: the root package, which may import
            # nothing of axcenter itself (checked below), so it is a leaf anyone may read.
            if layer == "__init__":
                bad.append(f"{imp}: axcenter/__init__.py may import nothing of axcenter")
        elif imp.target.startswith("axcenter.") and layer_of(imp.target) not in may_import:
            bad.append(f"{imp}: {layer} may import only {sorted(ALLOWED[layer])}")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=MODULE_IDS)
def test_imports_point_inward(path: Path) -> None:
    bad = layer_violations(module_name(path), imports_of(path))
    assert not bad, "\n".join(bad)


SCHED = [p for p in MODULES if layer_of(module_name(p)) == "sched"]


def _reachable_axcenter_modules(start: list[Path]) -> dict[str, Import]:
    """Every axcenter module imported, directly or not, from ``start``; with the import
    that first reached it."""
    seen: dict[str, Import] = {}
    todo = list(start)
    while todo:
        for imp in imports_of(todo.pop()):
            if not imp.target.startswith("axcenter.") or imp.target in seen:
                continue
            seen[imp.target] = imp
            path = SRC.joinpath(*imp.target.split("."))
            todo.append(path / "__init__.py" if path.is_dir() else path.with_suffix(".py"))
    return seen


@pytest.mark.parametrize("path", SCHED, ids=[module_name(p) for p in SCHED])
def test_sched_imports_only_stdlib_and_model(path: Path) -> None:
    bad = []
    for imp in imports_of(path):
        top = imp.target.split(".")[0]
        if top == "axcenter":
            if layer_of(imp.target) not in {"sched", "model"}:
                bad.append(f"{imp}: sched may import only axcenter.model")
        elif top not in sys.stdlib_module_names:
            bad.append(f"{imp}: not the standard library")
        elif top in IMPURE_STDLIB:
            bad.append(f"{imp}: impure (I/O, clock, randomness or process state)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", SCHED, ids=[module_name(p) for p in SCHED])
def test_sched_calls_no_clock_and_does_no_io(path: Path) -> None:
    bad = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in IMPURE_ATTRIBUTES:
            bad.append(f"{module_name(path)} calls .{func.attr}() (line {node.lineno})")
        if isinstance(func, ast.Name) and func.id in IMPURE_BUILTINS:
            bad.append(f"{module_name(path)} calls {func.id}() (line {node.lineno})")
    assert not bad, "\n".join(bad)


def test_sched_reaches_no_impure_module_through_model() -> None:
    """``sched`` may import ``model``, but not a model module that reads the clock or
    draws random numbers (``model.ids``): purity is transitive."""
    bad = []
    for target, via in _reachable_axcenter_modules(SCHED).items():
        path = SRC.joinpath(*target.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for imp in imports_of(path):
            if imp.target.split(".")[0] in IMPURE_STDLIB:
                bad.append(f"{imp}, reached from sched by: {via}")
    assert not bad, "\n".join(bad)


# --- the checker itself -----------------------------------------------------------


PROBE = """
from __future__ import annotations
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from axcenter.store.db import Store
from ..control import loop
from . import free
from .plan import plan
def f():
    import axcenter.api.app
from axcenter import service, __version__
"""


def test_checker_sees_type_checking_relative_and_nested_imports() -> None:
    """The parser must not miss the forms a violation could hide in."""
    found = imports_in(PROBE, "axcenter.sched.probe", is_package=False)
    assert sorted(i.target for i in found if i.target.startswith("axcenter")) == [
        "axcenter",
        "axcenter.api.app",
        "axcenter.control.loop",
        "axcenter.sched.free",
        "axcenter.sched.plan",
        "axcenter.service",
        "axcenter.store.db",
    ]
    in_package = imports_in("from . import plan", "axcenter.sched", is_package=True)
    assert [i.target for i in in_package] == ["axcenter.sched.plan"]


def test_checker_names_the_module_and_the_import() -> None:
    found = imports_in(PROBE, "axcenter.sched.probe", is_package=False)
    bad = layer_violations("axcenter.sched.probe", found)
    assert len(bad) == 4  # store, control, api, service; not sched itself nor the root
    assert any(m.startswith("axcenter.sched.probe imports axcenter.store.db (line 5)") for m in bad)
    assert layer_violations("axcenter.gui.app", []) == [
        "axcenter.gui.app: package 'gui' has no rule in ALLOWED; add one"
    ]
    root = imports_in("from axcenter import sched", "axcenter", is_package=True)
    assert layer_violations("axcenter", root)
