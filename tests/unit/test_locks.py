"""The lock files agree with pyproject.toml, with each other and with what the requirements pull in.

``requirements/dev.lock`` is what ``make venv`` (so ``make test`` and CI) installs, with
``--require-hashes``; ``requirements/runtime.lock`` is what the Dockerfile installs;
``requirements/build.lock`` pins pip and the build backend both use. All are written by
``make lock``; these tests fail when pyproject.toml changed and the locks were not regenerated, or when a
lock was edited by hand into disagreement.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DEV_LOCK = REPO / "requirements" / "dev.lock"
RUNTIME_LOCK = REPO / "requirements" / "runtime.lock"
BUILD_LOCK = REPO / "requirements" / "build.lock"
BUILD_IN = REPO / "requirements" / "build.in"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
SELF = canonicalize_name(PROJECT["name"])
REGENERATE = "run `make lock` and commit requirements/"


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: frozenset[str]


def read_lock(text: str) -> dict[NormalizedName, Pin]:
    """``name==version`` entries and their ``--hash`` options; comments and annotations are skipped."""
    pins: dict[NormalizedName, Pin] = {}
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split("#", 1)[0].strip()
        if not entry or entry.startswith("-"):
            continue
        requirement, *options = entry.split(" --hash=")
        name, _, version = requirement.strip().partition("==")
        assert version, f"{entry!r} is not pinned with =="
        pins[canonicalize_name(name)] = Pin(Version(version), frozenset(o.strip() for o in options))
    return pins


DEV = read_lock(DEV_LOCK.read_text(encoding="utf-8"))
RUNTIME = read_lock(RUNTIME_LOCK.read_text(encoding="utf-8"))
BUILD = read_lock(BUILD_LOCK.read_text(encoding="utf-8"))


def project_requirements(*extras: str) -> list[Requirement]:
    """The base dependencies and those of ``extras``, the project's own ``sundial[...]`` expanded."""
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if canonicalize_name(requirement.name) == SELF:
                pending.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def closure(requirements: Iterable[Requirement]) -> set[NormalizedName]:
    """Every distribution the requirements pull in, read from the installed packages' metadata."""
    names: set[NormalizedName] = set()
    pending = [(requirement, frozenset(requirement.extras)) for requirement in requirements]
    visited: set[tuple[NormalizedName, frozenset[str]]] = set()
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, extras) in visited:
            continue
        visited.add((name, extras))
        names.add(name)
        for text in importlib.metadata.requires(name) or []:
            needed = Requirement(text)
            applies = needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if applies:
                pending.append((needed, frozenset(needed.extras)))
    return names


@pytest.mark.parametrize(
    ("lock", "extras"), [(DEV, ("dev",)), (RUNTIME, ())], ids=["dev.lock", "runtime.lock"]
)
def test_every_requirement_in_pyproject_is_locked_at_a_version_it_allows(
    lock: dict[NormalizedName, Pin], extras: tuple[str, ...]
) -> None:
    for requirement in project_requirements(*extras):
        pin = lock.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in the lock: {REGENERATE}"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"pyproject.toml wants {requirement}, the lock has {pin.version}: {REGENERATE}"
        )


@pytest.mark.parametrize(
    ("lock", "extras"), [(DEV, ("dev",)), (RUNTIME, ())], ids=["dev.lock", "runtime.lock"]
)
def test_each_lock_holds_exactly_the_closure_of_its_requirements(
    lock: dict[NormalizedName, Pin], extras: tuple[str, ...]
) -> None:
    wanted = closure(project_requirements(*extras))
    assert not wanted - lock.keys(), f"pulled in but not locked: {sorted(wanted - lock.keys())}; {REGENERATE}"
    assert not lock.keys() - wanted, f"locked but not needed: {sorted(lock.keys() - wanted)}; {REGENERATE}"


def test_the_runtime_lock_pins_what_the_dev_lock_pins_with_the_same_hashes() -> None:
    for name, pin in RUNTIME.items():
        assert DEV.get(name) == pin, f"{name}: the image and the tests would install different files"


def test_every_pin_carries_hashes() -> None:
    assert DEV and RUNTIME and BUILD
    for name, pin in {**DEV, **RUNTIME, **BUILD}.items():
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), name


def test_pytz_and_tzdata_are_locked_at_the_same_tz_release() -> None:
    """tests/unit/test_tz_database.py compares zoneinfo (reading tzdata) with pytz zone by zone; at equal
    releases every difference is a bug, at unequal ones the changed zones are skipped."""
    assert DEV[canonicalize_name("pytz")].version == DEV[canonicalize_name("tzdata")].version


def test_croniter_is_capped_below_the_major_after_the_locked_one() -> None:
    """A croniter major may change what an expression means (5.0 moved day-of-week); adopt it on purpose."""
    [croniter] = [r for r in project_requirements() if canonicalize_name(r.name) == "croniter"]
    locked = DEV[canonicalize_name("croniter")].version
    assert croniter.specifier.contains(locked)
    assert not croniter.specifier.contains(Version(f"{locked.major + 1}.0.0"), prereleases=True)


def test_the_optional_kind_backend_stays_out_of_the_locked_install() -> None:
    assert "pytest-kind" not in DEV and "pytest-kind" not in RUNTIME


def test_the_build_lock_pins_pip_and_every_build_requirement_in_pyproject() -> None:
    """``make venv`` and the Dockerfile build with ``--no-build-isolation``: the backend pyproject.toml names
    must be the locked one, and build.in must ask for exactly what pyproject.toml does (plus pip)."""
    wanted = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]
    asked = [
        Requirement(line)
        for line in (
            raw.split("#", 1)[0].strip() for raw in BUILD_IN.read_text(encoding="utf-8").splitlines()
        )
        if line
    ]
    assert sorted(map(str, asked)) == sorted(map(str, [*wanted, Requirement("pip")])), REGENERATE
    for requirement in wanted:
        pin = BUILD.get(canonicalize_name(requirement.name))
        assert pin is not None and requirement.specifier.contains(pin.version), f"{requirement}: {REGENERATE}"
    assert BUILD.keys() == {canonicalize_name(r.name) for r in asked}, (
        f"locked: {sorted(BUILD)}; {REGENERATE}"
    )
