"""Durations as people write them and read them back: ``90s``, ``15m``, ``1h30m``, ``7d``.

One grammar for every place Sundial reads a duration (``kubectl sundial timeline --within``, the plugin's
and the deployers' ``--timeout`` and ``--poll-interval``, a dependency's ``leadTime``): whole days, hours,
minutes and seconds, each at most once and in that order, surrounding blanks ignored. It is the union of what
those places accepted before they shared it. Fractions, signs and sub-second units are refused, with a
message that shows the accepted form.

Notes
-----
``leadTime`` is narrower on purpose: the CRD admits only hours, minutes and seconds there (a Go-style
duration, `sundial.api.models.LEAD_TIME_PATTERN`), and `sundial.timing.dependencies` refuses the rest
with the CRD's words before it asks this module for the value.

`DurationError` is also an `argparse.ArgumentTypeError`, so a flag declared ``type=parse_seconds`` prints
the message itself rather than argparse's generic "invalid value".
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_GRAMMAR = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")

FORMS = "such as 90s, 15m, 1h30m or 7d (whole days, hours, minutes and seconds, in that order)"
"""How the accepted form is shown in messages."""


class DurationError(ValueError, argparse.ArgumentTypeError):
    """Text that is not a duration, or not one the caller allows; the message says what to write."""


def parse_duration(text: str, *, positive: bool = False, longest: timedelta = timedelta.max) -> timedelta:
    """The duration ``text`` names; ``0s`` only unless ``positive``, and nothing longer than ``longest``.

    The arithmetic is on integers, so absurdly long input is refused as too long instead of overflowing.
    """
    match = _GRAMMAR.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise DurationError(f"{text!r} is not a duration {FORMS}")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > longest // timedelta(seconds=1):
        raise DurationError(f"{text!r} is longer than {format_duration(longest)}")
    if positive and total == 0:
        raise DurationError(f"{text!r} is not a positive duration; give one longer than 0s")
    return timedelta(seconds=total)


def parse_seconds(text: str) -> float:
    """A positive duration in seconds: the type of flags such as ``--timeout`` and ``--poll-interval``."""
    return parse_duration(text, positive=True).total_seconds()


def format_duration(duration: timedelta) -> str:
    """A short duration for messages: ``47 days``, ``3h05m``, ``15m``, ``90s`` -> ``1m30s``.

    Whole seconds, truncated; below two days the text is one `parse_duration` reads back, and a negative
    duration is written with a leading ``-``.
    """
    if duration < timedelta(0):
        return f"-{format_duration(-duration)}"
    seconds = duration // timedelta(seconds=1)
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"
