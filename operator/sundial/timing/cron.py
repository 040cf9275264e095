"""Cron expressions and runAt texts: how they are read, and the wall times a cron expression produces.

Pure. Wall times are naive: croniter iterates them without any DST logic to get wrong, and
`sundial.timing.schedule` resolves each one in the object's zone under its DST policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

from croniter import CroniterBadDateError, CroniterError, croniter

from sundial.api.models import RUN_AT_PATTERN
from sundial.api.reasons import Reason, SpecError

CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""The descriptors Kubernetes CronJob accepts (``@every`` and ``@reboot`` are not schedules here)."""

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES = {3: {name: index + 1 for index, name in enumerate(_MONTHS)}, 4: {d: i for i, d in enumerate(_DAYS)}}
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
"""Allowed numbers per field; 7 is Sunday, as in Vixie cron."""
_FIELD_TEXT = re.compile(r"[0-9A-Za-z*?,/-]+")
_RANGE = re.compile(r"([0-9A-Za-z]+)-([0-9A-Za-z]+)")
_RUN_AT = re.compile(RUN_AT_PATTERN)
_SCHEDULE_HELP = (
    "use five fields (minute hour day-of-month month day-of-week), e.g. '30 2 * * 1-5', "
    "or @hourly, @daily, @weekly, @monthly or @yearly"
)


def parse_schedule(expression: str) -> str:
    """Check a ``schedule`` and return the five-field cron expression to evaluate (descriptors expanded).

    Accepted: numbers, ``*``, ``,``, ``-``, ``/``, month and day names (``JAN``, ``MON``) and ``?`` for a
    day field, as in Kubernetes CronJob; day-of-month and day-of-week combine with OR, as in Vixie cron.
    Refused, with ``InvalidSchedule``: seconds or year fields, croniter's extensions (``L``, ``#``, ``H``,
    ``R``), reversed ranges, out-of-range values, and expressions that never fire (``0 0 30 2 *``).
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() in CRON_MACROS:
            return CRON_MACROS[text.lower()]
        raise SpecError(
            Reason.INVALID_SCHEDULE, f"schedule {expression!r} is not a known descriptor; {_SCHEDULE_HELP}"
        )
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise SpecError(
            Reason.INVALID_SCHEDULE,
            f"schedule {expression!r} has {len(fields)} fields; {_SCHEDULE_HELP} (seconds and years are not "
            "supported)",
        )
    for index, field in enumerate(fields):
        problem = _field_problem(index, field)
        if problem:
            raise SpecError(
                Reason.INVALID_SCHEDULE,
                f"schedule {expression!r}: the {_FIELDS[index]} field {field!r} {problem}; {_SCHEDULE_HELP}",
            )
    normalized = " ".join(fields)
    try:
        iterator = croniter(normalized, datetime(2000, 1, 1), day_or=True)
    except (CroniterError, ValueError, KeyError) as exc:
        detail = str(exc).replace(f"[{normalized.lower()}] ", "").replace(f"[{normalized}] ", "")
        raise SpecError(
            Reason.INVALID_SCHEDULE, f"schedule {expression!r} is not valid ({detail}); {_SCHEDULE_HELP}"
        ) from exc
    try:
        iterator.get_next(datetime)
    except CroniterBadDateError as exc:
        raise SpecError(
            Reason.INVALID_SCHEDULE,
            f"schedule {expression!r} never fires: no date matches it; check the day of the month and "
            "the month",
        ) from exc
    return normalized


def _field_problem(index: int, field: str) -> str | None:
    """Why one cron field is outside the syntax we accept, or None."""
    if not _FIELD_TEXT.fullmatch(field):
        return "may only contain digits, names, '*', '?', ',', '-' and '/'"
    if "?" in field and (index not in (2, 4) or field != "?"):
        return "uses '?', which is only allowed alone in the day-of-month and day-of-week fields"
    names = _NAMES.get(index, {})
    low_bound, high_bound = _BOUNDS[index]
    for part in field.split(","):
        values = part.split("/", 1)[0]
        for number in re.findall(r"[0-9]+", values):
            if not low_bound <= int(number) <= high_bound:
                return f"has {number}, outside {low_bound}-{high_bound}"
        step = part.split("/", 1)[1] if "/" in part else None
        if step is not None and (not step.isdigit() or int(step) == 0):
            return f"has the step {step!r}; a step must be a whole number from 1"
    for word in re.findall(r"[A-Za-z]+", field):
        if word.upper() not in names:
            allowed = (
                "month names (JAN-DEC)" if index == 3 else "day names (SUN-SAT)" if index == 4 else "no names"
            )
            return f"contains {word!r}; this field allows {allowed}"
    for start, end in _RANGE.findall(field):
        low = names.get(start.upper()) if start.isalpha() else int(start)
        high = names.get(end.upper()) if end.isalpha() else int(end)
        if low is not None and high is not None and low > high:
            return f"has the reversed range {start}-{end}; write it from low to high"
    return None


def parse_run_at(text: str) -> datetime:
    """Parse ``runAt``: a naive local date-time, or an aware instant when it carries ``Z`` or an offset."""
    if not _RUN_AT.fullmatch(text):
        raise SpecError(
            Reason.INVALID_RUN_AT,
            f"runAt {text!r} is not a date-time; write YYYY-MM-DDTHH:MM[:SS] for a local time in timeZone "
            "(e.g. 2027-03-14T02:30), or add Z or an offset for an absolute instant (2027-03-14T07:30:00Z)",
        )
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment.astimezone(UTC)  # an offset that pushes the instant out of range
    except (ValueError, OverflowError) as exc:
        raise SpecError(
            Reason.INVALID_RUN_AT,
            f"runAt {text!r} is not a real date-time ({exc}); check the day of the month, hours 00-23, "
            "minutes and seconds 00-59",
        ) from exc
    return moment


def walls(expression: str, start: datetime, *, forward: bool) -> Iterator[datetime]:
    """Naive wall times matching ``expression`` strictly after (or before) the naive ``start``."""
    iterator = croniter(expression, start, day_or=True)
    step = iterator.get_next if forward else iterator.get_prev
    while True:
        try:
            yield cast(datetime, step(datetime))
        except CroniterBadDateError:
            return
