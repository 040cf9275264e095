"""Instants as the API writes and reads them: RFC 3339, one formatter and one parser for the whole project."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def format_utc(instant: datetime, *, millis: bool = False) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2027-03-14T07:30:00Z``, or ``...07:30:00.123Z`` with ``millis``.

    Whole seconds for nominal instants (a schedule's), milliseconds for measured ones (when a Job was made).
    """
    utc = instant.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds" if millis else "seconds")
    return text.removesuffix("+00:00") + "Z"


def format_micro_time(instant: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Kubernetes' ``MicroTime`` fields (a Lease's renewTime) hold."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def format_with_offset(instant: datetime) -> str:
    """RFC 3339 with the instant's own offset, whole seconds: a wall-clock time as it was shown."""
    return instant.isoformat(timespec="seconds")


def format_local(instant: datetime, zone: tzinfo) -> str:
    """RFC 3339 with the zone's offset at that instant: ``2027-03-14T03:30:00-04:00``."""
    return format_with_offset(instant.astimezone(zone))


def parse_rfc3339(text: object) -> datetime | None:
    """An aware instant from RFC 3339 text (``Z`` or an offset); None for anything else.

    A naive time (a hand-edited annotation) is as unreadable as garbage: everything downstream holds only
    aware instants.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
