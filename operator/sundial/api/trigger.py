"""Manual trigger requests: ``kubectl sundial trigger NAME`` asks the operator to run an object now.

The request is the user's action, so it lives where the user's actions live: an annotation on the object,
``sundial.dev/trigger``, whose value is the RFC 3339 instant the request was made
(``2026-11-27T08:39:00.123Z``). The operator never writes it; it remembers the last request it served in
``status.lastTrigger`` and in the run's record (``status.runs[].trigger``), and names the Job after the
request (`sundial.timing.names.manual_job_name`), so a request runs at most once however often it is seen.

Notes
-----
The value is a time rather than an opaque id so that the operator can refuse a stale request: an object
copied with its annotations, or restored from a backup, must not deploy because somebody once triggered
its original. A request older than ``startingDeadlineSeconds`` is recorded ``Missed``. Any RFC 3339 instant
with an offset works, so ``kubectl annotate sdep api sundial.dev/trigger=$(date -u +%FT%TZ) --overwrite``
is the same request as the plugin's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sundial.api.keys import ANNOTATION_TRIGGER
from sundial.api.timestamps import format_utc

MAX_LENGTH = 64
FUTURE_TOLERANCE = timedelta(minutes=5)
"""How far ahead of the operator's clock a request may be dated (clock skew between laptop and cluster)."""


@dataclass(frozen=True)
class TriggerRequest:
    """A well-formed request: its text (the id) and the instant it names."""

    request: str
    requested_at: datetime


class BadTrigger(ValueError):
    """The annotation's value is not a request the operator can serve; the message says what to write."""


def format_request(instant: datetime) -> str:
    """The request for ``instant``: RFC 3339 in UTC with milliseconds, as the plugin writes it."""
    if instant.tzinfo is None:
        raise ValueError("a trigger request needs a timezone-aware instant")
    return format_utc(instant, millis=True)


def parse_request(text: str) -> TriggerRequest:
    """Read an annotation value; raises `BadTrigger` with a message that says what to write instead."""
    value = text.strip()
    hint = (
        f"set {ANNOTATION_TRIGGER} to the time of the request as an RFC 3339 instant, "
        "such as 2027-03-14T07:30:00Z"
    )
    if not value or len(value) > MAX_LENGTH:
        raise BadTrigger(f"{ANNOTATION_TRIGGER} {shown(text)} is not a trigger request; {hint}")
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadTrigger(f"{ANNOTATION_TRIGGER} {shown(value)} is not a trigger request; {hint}") from None
    if instant.tzinfo is None:
        raise BadTrigger(f"{ANNOTATION_TRIGGER} {shown(value)} has no offset; {hint}")
    try:
        return TriggerRequest(value, instant.astimezone(UTC))
    except OverflowError:
        # 0001-01-01T00:00+01:00 is a valid RFC 3339 text whose UTC instant is before year 1.
        raise BadTrigger(f"{ANNOTATION_TRIGGER} {shown(value)} is outside the years 1-9999; {hint}") from None


def request_key(value: str) -> str:
    """The identity of a request, as remembered in status (at most `MAX_LENGTH` characters).

    A well-formed request is its own key. Anything longer is a malformed request that is still remembered,
    so that it is refused once rather than on every reconcile: its key is a digest of the whole value.
    """
    if len(value) <= MAX_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", errors="replace")).hexdigest()
    return f"sha256:{digest}"[:MAX_LENGTH]


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for a message, cut short: an annotation can hold 256 KiB, a message should not."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


def pending_request(annotations: object) -> str | None:
    """The trigger annotation's value, if the object has one (served or not)."""
    if not isinstance(annotations, Mapping):
        return None
    value = annotations.get(ANNOTATION_TRIGGER)
    return value.strip() or None if isinstance(value, str) else None
