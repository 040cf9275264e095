"""The default peering priority: the replica that started first wins, to the millisecond."""

from __future__ import annotations

import pytest

from sundial.cli.run import oldest_first_priority

START = 1_796_000_000.3  # a moment in 2026, 0.3 s into its second


@pytest.mark.parametrize(
    ("older", "younger"),
    [
        (
            (START, 999),
            (START + 0.6, 0),
        ),  # the same whole second, a tie-breaker against the older: older wins
        ((START, 0), (START + 0.002, 999)),
        ((START, 0), (START + 3600, 999)),
    ],
)
def test_an_earlier_start_wins_whatever_the_tie_breakers(
    older: tuple[float, int], younger: tuple[float, int]
) -> None:
    assert oldest_first_priority(*older) > oldest_first_priority(*younger)


def test_the_tie_breaker_parts_replicas_started_in_the_same_millisecond() -> None:
    assert oldest_first_priority(START, 7) != oldest_first_priority(START + 0.0001, 8)


def test_priorities_stay_exact_as_json_numbers_until_long_after_we_are_gone() -> None:
    for started_at in (0.0, START, 4_102_444_800.0):  # 1970, 2026, 2100
        assert 0 < oldest_first_priority(started_at, 999) < 2**53
