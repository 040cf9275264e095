"""The layers stay layers: api, timing and decide are pure, and imports point one way.

``sundial.api`` (the models and the formats of the API) imports nothing else of Sundial's; ``sundial.timing``
(the time engine) only ``api``; ``sundial.decide`` (validation and the reconcile) only ``api`` and
``timing``. None of them reads the clock, talks to Kubernetes or opens a socket: every module found in those
packages is checked, so a new module is covered the day it is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sundial

PACKAGE = Path(sundial.__file__).resolve().parent
MAY_IMPORT = {
    "api": {"api"},
    "timing": {"api", "timing"},
    "decide": {"api", "timing", "decide"},
}
"""For each pure package, the packages of Sundial's its modules may import."""
PURE_MODULES = sorted(
    path.relative_to(PACKAGE).with_suffix("").as_posix()
    for layer in MAY_IMPORT
    for path in (PACKAGE / layer).glob("*.py")
)
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
FORBIDDEN_IMPORTS = {"kopf", "kubernetes", "aiohttp", "requests", "socket", "urllib", "urllib3", "boto3"}


def parse(module: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))


def imported_modules(tree: ast.Module) -> set[str]:
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "sundial":  # ``from sundial import timing``
                names |= {f"sundial.{alias.name}" for alias in node.names}
    return names


def test_every_layer_has_modules() -> None:
    assert {module.split("/")[0] for module in PURE_MODULES} == set(MAY_IMPORT)
    assert "decide/reconcile" in PURE_MODULES or any(m.startswith("decide/") for m in PURE_MODULES)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_take_now_as_an_argument_and_talk_to_no_api(module: str) -> None:
    tree = parse(module)
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    imports = {name.split(".")[0] for name in imported_modules(tree)}
    assert not calls & CLOCK_CALLS, f"sundial.{module} reads the clock"
    assert not imports & FORBIDDEN_IMPORTS, f"sundial.{module} imports an API client"


@pytest.mark.parametrize("module", PURE_MODULES)
def test_imports_point_from_decide_to_timing_to_api_and_never_back(module: str) -> None:
    layer = module.split("/")[0]
    sundial_imports = {name for name in imported_modules(parse(module)) if name.startswith("sundial.")}
    layers = {name.split(".")[1] for name in sundial_imports}
    assert layers <= MAY_IMPORT[layer], f"sundial.{module} imports {sorted(sundial_imports)}"


def test_preview_reads_the_clock_only_for_the_default_of_now() -> None:
    readers = {
        function.name
        for function in ast.walk(parse("cli/preview"))
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    }
    assert readers == {"_system_clock"}
