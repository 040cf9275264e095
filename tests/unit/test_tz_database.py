"""The engine against an independent implementation, for every zone and every transition from 1970 to 2037.

The engine resolves wall times with zoneinfo; the reference is pytz's ``localize``, which classifies a wall
time (NonExistentTimeError, AmbiguousTimeError) and computes its interpretations by its own algorithm.

Both must read the same tz database: zoneinfo prefers the system's /usr/share/zoneinfo, pytz ships its own.
So the zoneinfo side is built here from the ``tzdata`` package (``ZoneInfo.from_file``), not from the
system, and the two releases are compared. Zones whose transition data still disagree are not compared but
reported as a warning in the test summary; with equal releases only the known rounding difference is
tolerated (zoneinfo rounds offsets to whole minutes, pytz keeps Monrovia's -0:44:30).

Sample points per transition: the minute before the gap or fold, its middle, and the first wall time
after it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import warnings
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
import pytz
import tzdata

from sundial.api.models import AmbiguousTimePolicy, NonexistentTimePolicy
from sundial.timing.wallclock import LocalTimeKind, apply_policy, resolve_local

START, END = datetime(1970, 1, 1), datetime(2038, 1, 1)
ROUNDED_ZONES = {"Africa/Monrovia"}
"""Zones with sub-minute offsets in the period, which zoneinfo rounds to whole minutes."""


def tzdata_zone(name: str) -> zoneinfo.ZoneInfo:
    with importlib.resources.files(tzdata).joinpath("zoneinfo", *name.split("/")).open("rb") as file:
        return zoneinfo.ZoneInfo.from_file(file, key=name)


def tzdata_bytes(name: str) -> bytes:
    return importlib.resources.files(tzdata).joinpath("zoneinfo", *name.split("/")).read_bytes()


@dataclass(frozen=True)
class Change:
    at: datetime  # naive UTC
    before: timedelta
    after: timedelta


def pytz_changes(zone: Any) -> list[Change]:
    """Offset changes from pytz's own transition table (its private attributes; there is no public API)."""
    times = getattr(zone, "_utc_transition_times", [])
    infos = getattr(zone, "_transition_info", [])
    return [
        Change(times[i], infos[i - 1][0], infos[i][0])
        for i in range(1, len(times))
        if START <= times[i] < END and infos[i - 1][0] != infos[i][0]
    ]


def sample_walls(change: Change) -> Iterator[datetime]:
    low = change.at + min(change.before, change.after)
    high = change.at + max(change.before, change.after)
    yield low - timedelta(minutes=1)
    yield low + (high - low) // 2
    yield high


def pytz_expectation(zone: Any, wall: datetime) -> tuple[LocalTimeKind, datetime, datetime]:
    """Kind, ShiftForward-or-Earlier instant, and Later instant, computed by pytz alone."""
    try:
        instant = zone.localize(wall, is_dst=None).astimezone(UTC)
        return LocalTimeKind.NORMAL, instant, instant
    except pytz.NonExistentTimeError:
        # is_dst=False in a gap: pytz applies the offset from before the change, as ShiftForward does.
        instant = zone.localize(wall, is_dst=False).astimezone(UTC)
        return LocalTimeKind.NONEXISTENT, instant, instant
    except pytz.AmbiguousTimeError:
        both = sorted({zone.localize(wall, is_dst=flag).astimezone(UTC) for flag in (True, False)})
        return LocalTimeKind.AMBIGUOUS, both[0], both[-1]


def data_agree(changes: list[Change], zone: tzinfo) -> bool:
    """Whether zoneinfo has the same offsets as pytz on both sides of every change."""
    for change in changes:
        at = change.at.replace(tzinfo=UTC)
        if (at - timedelta(seconds=1)).astimezone(zone).utcoffset() != change.before:
            return False
        if at.astimezone(zone).utcoffset() != change.after:
            return False
    return True


def engine_result(wall: datetime, zone: tzinfo) -> tuple[LocalTimeKind, datetime, datetime]:
    local = resolve_local(wall, zone)
    earlier = apply_policy(local, NonexistentTimePolicy.SHIFT_FORWARD, AmbiguousTimePolicy.EARLIER).instant
    later = apply_policy(local, NonexistentTimePolicy.SHIFT_FORWARD, AmbiguousTimePolicy.LATER).instant
    return local.kind, earlier, later


def test_zoneinfo_and_pytz_list_the_same_zones() -> None:
    zoneinfo_names = {
        str(path).split("zoneinfo/", 1)[1]
        for path in _walk(importlib.resources.files(tzdata).joinpath("zoneinfo"))
        if path.name
        not in {"__init__.py", "tzdata.zi", "zones", "leapseconds", "iso3166.tab", "zone1970.tab"}
    }
    missing = set(pytz.all_timezones) - zoneinfo_names
    assert not missing, f"zones pytz has but the tzdata package lacks: {sorted(missing)}"


def _walk(root: Any) -> Iterator[Any]:
    for entry in root.iterdir():
        if entry.is_dir():
            if entry.name != "__pycache__":
                yield from _walk(entry)
        elif not entry.name.endswith((".py", ".pyc", ".tab", ".zi")):
            yield entry


@pytest.mark.filterwarnings("always::UserWarning")
def test_every_transition_of_every_zone_resolves_like_pytz() -> None:
    # Links (US/Eastern -> America/New_York) carry byte-identical data on both sides: check each once.
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name in pytz.all_timezones:
        reference = pytz.timezone(name)
        key = (
            tuple(getattr(reference, "_utc_transition_times", ())),
            tuple(getattr(reference, "_transition_info", ())),
            hashlib.sha256(tzdata_bytes(name)).hexdigest(),
        )
        groups.setdefault(key, []).append(name)

    counts = {kind: 0 for kind in LocalTimeKind}
    transitions_checked = zones_checked = 0
    differing: list[str] = []
    mismatches: dict[str, list[str]] = {}
    for names in groups.values():
        name = names[0]
        reference, zone = pytz.timezone(name), tzdata_zone(name)
        changes = pytz_changes(reference)
        if not data_agree(changes, zone) and name not in ROUNDED_ZONES:
            differing.extend(names)
            continue
        zones_checked += len(names)
        transitions_checked += len(changes) * len(names)
        for change in changes:
            for wall in sample_walls(change):
                expected = pytz_expectation(reference, wall)
                got = engine_result(wall, zone)
                counts[got[0]] += 1
                if got != expected:
                    mismatches.setdefault(name, []).append(f"{wall}: expected {expected}, got {got}")

    if differing:
        warnings.warn(
            f"pytz {pytz.OLSON_VERSION} and tzdata {tzdata.IANA_VERSION} disagree on {len(differing)} zones, "
            f"which were not compared: {', '.join(sorted(differing))}",
            UserWarning,
            stacklevel=1,
        )
    if pytz.OLSON_VERSION == tzdata.IANA_VERSION:
        assert not differing, "same tz release, yet the data differ"
    assert len(differing) < len(pytz.all_timezones) // 20, (
        "most zones were not compared; align pytz and tzdata"
    )
    # Not vacuous: hundreds of zones, thousands of gaps and folds.
    assert zones_checked > 550
    assert transitions_checked > 25_000
    assert counts[LocalTimeKind.NONEXISTENT] > 5_000
    assert counts[LocalTimeKind.AMBIGUOUS] > 5_000
    unexplained = {name: problems for name, problems in mismatches.items() if name not in ROUNDED_ZONES}
    assert not unexplained, "\n".join(f"{name}: {problems[:3]}" for name, problems in unexplained.items())
    assert set(mismatches) == ROUNDED_ZONES, "the rounding exception no longer applies; remove it"


def test_the_rounding_exception_is_only_sub_minute() -> None:
    # Monrovia was at -0:44:30 until 1972; zoneinfo says -0:44. Anything bigger would be a real disagreement.
    reference, zone = pytz.timezone("Africa/Monrovia"), tzdata_zone("Africa/Monrovia")
    wall = datetime(1971, 6, 1, 12, 0)
    pytz_instant = reference.localize(wall, is_dst=None).astimezone(UTC)
    engine_instant = engine_result(wall, zone)[1]
    assert timedelta(0) < abs(engine_instant - pytz_instant) < timedelta(minutes=1)
