"""docs/time.md's DST table says what the engine does: every row is recomputed here."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from sundial.api.models import AmbiguousTimePolicy, NonexistentTimePolicy
from sundial.api.timestamps import format_local, format_utc
from sundial.timing.wallclock import LocalTimeKind, apply_policy, load_zone, resolve_local

PAGE = Path(__file__).resolve().parents[2] / "docs" / "time.md"
HEADER = "| Zone | Local time | What the clocks do | Policy | Runs at (UTC) | Runs at (local) |"


def table_rows() -> list[list[str]]:
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_table_covers_gaps_and_folds_in_several_zones() -> None:
    rows = table_rows()
    assert len(rows) >= 12
    assert len({row[0] for row in rows}) >= 4
    assert {row[3] for row in rows} >= {"ShiftForward", "Skip", "Reject", "Earlier", "Later"}


@pytest.mark.parametrize("row", table_rows(), ids=lambda row: f"{row[0]}-{row[1]}-{row[3]}")
def test_each_row_is_what_the_engine_does(row: list[str]) -> None:
    zone_name, wall, _, policy, utc, local = row
    zone = load_zone(zone_name)
    resolved = resolve_local(datetime.fromisoformat(wall), zone)
    nonexistent, ambiguous = NonexistentTimePolicy.SHIFT_FORWARD, AmbiguousTimePolicy.EARLIER
    if policy == "any":
        assert resolved.kind is LocalTimeKind.NORMAL
    elif resolved.kind is LocalTimeKind.NONEXISTENT:
        nonexistent = NonexistentTimePolicy(policy)
    else:
        assert resolved.kind is LocalTimeKind.AMBIGUOUS
        ambiguous = AmbiguousTimePolicy(policy)
    resolution = apply_policy(resolved, nonexistent, ambiguous)
    if utc.startswith("invalid"):
        reason = "Nonexistent" if resolved.kind is LocalTimeKind.NONEXISTENT else "Ambiguous"
        assert resolution.rejected and f"({reason}LocalTime)" in utc
    elif utc.startswith("not run"):
        assert resolution.skipped and not resolution.rejected
    else:
        assert not resolution.skipped
        assert format_utc(resolution.instant) == utc
        assert format_local(resolution.instant, zone) == local
