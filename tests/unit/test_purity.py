"""The time engine and the API modules never read the clock and never talk to Kubernetes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sundial

PACKAGE = Path(sundial.__file__).resolve().parent
PURE = [
    "reasons",
    "wallclock",
    "models",
    "schedule",
    "dependencies",
    "names",
    "conditions",
    "validation",
    "crd",
]
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
FORBIDDEN_IMPORTS = {"kopf", "kubernetes", "aiohttp", "requests", "socket", "urllib"}


def calls_and_imports(module: str) -> tuple[set[str], set[str]]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imports |= {
        (node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    return calls, imports


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_take_now_as_an_argument(module: str) -> None:
    calls, imports = calls_and_imports(module)
    assert not calls & CLOCK_CALLS, f"sundial.{module} reads the clock"
    assert not imports & FORBIDDEN_IMPORTS, f"sundial.{module} imports an API client"


def test_preview_reads_the_clock_only_for_the_default_of_now() -> None:
    tree = ast.parse((PACKAGE / "preview.py").read_text(encoding="utf-8"))
    readers = {
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    }
    assert readers == {"_system_clock"}
