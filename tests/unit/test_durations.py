"""The one duration grammar of every flag and lead time; its formatter."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from sundial.api.durations import DurationError, format_duration, parse_duration, parse_seconds


@pytest.mark.parametrize(
    ("text", "duration"),
    [
        ("90m", timedelta(minutes=90)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(minutes=90)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        (" 15m ", timedelta(minutes=15)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_are_whole_days_hours_minutes_and_seconds_in_that_order(
    text: str, duration: timedelta
) -> None:
    assert parse_duration(text) == duration


@pytest.mark.parametrize(
    "text", ["", " ", "tomorrow", "1w", "-1h", "15", "15 minutes", "1.5h", "30m1h", "500ms", "1h 30m"]
)
def test_anything_else_is_refused_with_the_accepted_form(text: str) -> None:
    with pytest.raises(DurationError, match=r"is not a duration such as 90s, 15m, 1h30m or 7d"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "0m", "0d0h0m0s", "tomorrow", "1w", "-1h"])
def test_within_refuses_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text, positive=True)


def test_a_duration_longer_than_allowed_is_refused_rather_than_overflowing() -> None:
    with pytest.raises(DurationError, match="is longer than 31 days"):
        parse_duration("745h", longest=timedelta(days=31))
    with pytest.raises(DurationError, match="is longer than 999999999 days"):
        parse_duration("99999999999999999999999d")
    assert parse_duration("744h", longest=timedelta(days=31)) == timedelta(days=31)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("90s", 90), ("1h30m", 5400), ("2h", 7200), ("1d", 86400)]
)
def test_timeouts_read_as_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"), [("forever", "is not a duration"), ("0s", "is not a positive duration")]
)
def test_a_flag_of_this_type_prints_the_reason_not_a_generic_invalid_value(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="deploy")
    parser.add_argument("--timeout", type=parse_seconds)
    with pytest.raises(SystemExit):
        parser.parse_args(["--timeout", text])
    assert f"argument --timeout: {text!r} {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (5, "5s"), (90, "1m30s"), (900, "15m"), (3600, "1h"), (3900, "1h05m"), (3 * 86400, "3 days")],
)
def test_durations_in_messages_are_short(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_durations_read_like_the_flags_that_set_them() -> None:
    for text in ("15m", "1m30s", "5s", "1h", "0s", "1h05m", "47h59m"):
        assert format_duration(parse_duration(text)) == text
    assert format_duration(timedelta(seconds=-90)) == "-1m30s"
