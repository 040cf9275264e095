"""The release-freeze API (``sundial.dev/v1alpha1``): ReleaseFreeze and ClusterReleaseFreeze.

A freeze names periods in which ScheduledDeployments must not deploy, and what happens to a run that falls
due in one (``Hold`` or ``Defer``). Its CRDs are generated from these models, as the ScheduledDeployment's
are from `sundial.api.models`; the docstrings become ``kubectl explain`` text.

Only shapes live here. When a window starts and ends, across DST, is `sundial.timing.freezes`'s; which
ScheduledDeployments a freeze selects is `sundial.decide.freezes`'s.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, model_validator

from sundial.api.models import (
    LEAD_TIME_PATTERN,
    RUN_AT_PATTERN,
    ApiModel,
    Condition,
    StatusModel,
    UtcTime,
    _cel,
)

FREEZE_KIND = "ReleaseFreeze"
FREEZE_PLURAL = "releasefreezes"
FREEZE_SINGULAR = "releasefreeze"
FREEZE_SHORT_NAME = "rfz"
CLUSTER_FREEZE_KIND = "ClusterReleaseFreeze"
CLUSTER_FREEZE_PLURAL = "clusterreleasefreezes"
CLUSTER_FREEZE_SINGULAR = "clusterreleasefreeze"
CLUSTER_FREEZE_SHORT_NAME = "crfz"

CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
"""A wall-clock time of day, ``HH:MM``, 00:00 to 23:59."""
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MAX_RECURRING_DURATION_HOURS = 31 * 24
"""A recurring window lasts at most 31 days: longer is a one-off window or a list of dates."""


class FreezeAction(StrEnum):
    """What a freeze does to a run that falls due in it."""

    HOLD = "Hold"
    DEFER = "Defer"


class FreezeAmbiguousTime(StrEnum):
    """Which occurrence of a repeated wall time a window's start or end is."""

    EARLIER = "Earlier"
    LATER = "Later"


class Weekday(StrEnum):
    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"

    @property
    def number(self) -> int:
        """Monday 0 to Sunday 6, as `datetime.date.weekday`."""
        return list(Weekday).index(self)


Clock = Annotated[
    str,
    Field(
        max_length=5,
        json_schema_extra=_cel(f"self.matches('{CLOCK_PATTERN}')", "a time of day must be HH:MM, e.g. 18:00"),
    ),
]

FreezeDuration = Annotated[
    str,
    Field(
        max_length=32,
        json_schema_extra=_cel(
            f"self.matches('{LEAD_TIME_PATTERN}') && self != '' && self != '0s'",
            "duration must be a duration such as 4h, 62h or 90m",
        ),
    ),
]

LocalDateTime = Annotated[
    str,
    Field(
        max_length=64,
        json_schema_extra=_cel(
            f"self.matches('{RUN_AT_PATTERN}')",
            "a window bound must look like 2027-12-24T00:00 (local time in timeZone) or "
            "2027-12-24T00:00:00Z (an absolute instant)",
        ),
    ),
]


def _check_date(value: str) -> str:
    if not re.fullmatch(DATE_PATTERN, value):
        raise ValueError(f"dates must be YYYY-MM-DD, e.g. 2027-12-24 (got {value!r})")
    try:
        date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a date on the calendar ({error})") from error
    return value


FreezeDate = Annotated[
    str,
    Field(
        max_length=10,
        json_schema_extra=_cel(
            f"self.matches('{DATE_PATTERN}')", "dates must be YYYY-MM-DD, e.g. 2027-12-24"
        ),
    ),
    AfterValidator(_check_date),
]


class WeeklyWindow(ApiModel):
    """A window that repeats every week, from one day and time of day to another, on the wall clock of
    timeZone: Friday 18:00 to Monday 08:00 is 62 hours in most weeks, 61 or 63 in a week whose weekend
    has a DST change."""

    start_day: Weekday
    """The day the window opens, Monday to Sunday."""

    start_time: Clock
    """The time of day it opens, HH:MM."""

    end_day: Weekday
    """The day it closes: the first such day at endTime after the start (the same day if endTime is later
    than startTime)."""

    end_time: Clock
    """The time of day it closes, HH:MM; the window is open up to, not including, this time."""


class RecurringWindow(ApiModel):
    """A window that opens on a cron schedule in timeZone and lasts a fixed elapsed time."""

    schedule: str = Field(min_length=1, max_length=256)
    """When the window opens: a five-field cron expression read in timeZone, e.g. "0 22 * * 1-5"."""

    duration: FreezeDuration
    """How long each window lasts, in elapsed time (a 4h window across a DST change is still 4 real
    hours), e.g. 4h or 90m; at most 744h (31 days)."""


class OneOffWindow(ApiModel):
    """A single window from one date-time to another."""

    from_: LocalDateTime = Field(alias="from")
    """When it opens: a local date-time in timeZone, e.g. 2027-12-20T18:00, or with Z or an offset an
    absolute instant."""

    to: LocalDateTime
    """When it closes (not included), in the same form; after from."""


class LabelSelectorRequirement(ApiModel):
    """One requirement of a label selector, as in metav1.LabelSelectorRequirement."""

    key: str = Field(min_length=1, max_length=317)
    """The label key."""

    operator: Annotated[
        str,
        Field(
            max_length=12,
            json_schema_extra=_cel(
                "self in ['In', 'NotIn', 'Exists', 'DoesNotExist']",
                "operator must be In, NotIn, Exists or DoesNotExist",
            ),
        ),
    ]
    """In, NotIn, Exists or DoesNotExist."""

    values: list[Annotated[str, Field(max_length=63)]] | None = Field(None, max_length=64)
    """For In and NotIn, the values (at least one); for Exists and DoesNotExist, none."""

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        if self.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"operator must be In, NotIn, Exists or DoesNotExist (got {self.operator!r})")
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value for key {self.key!r}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values (key {self.key!r})")
        return self


class LabelSelector(ApiModel):
    """A label selector, as in metav1.LabelSelector: every matchLabels pair and every matchExpressions
    requirement must hold; an empty selector selects everything."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] | None = None
    """Labels that must be present with exactly these values."""

    match_expressions: list[LabelSelectorRequirement] | None = Field(None, max_length=32)
    """Requirements on labels."""


class FreezeCalendar(ApiModel):
    """An iCalendar (RFC 5545) file kept in a ConfigMap: its events are freeze windows, all-day events whole
    days in timeZone (docs/freezes.md)."""

    config_map_name: str = Field(min_length=1, max_length=253)
    """The ConfigMap's name."""

    key: str = Field("calendar.ics", min_length=1, max_length=253)
    """The key in its data that holds the .ics file's text."""

    namespace: str | None = Field(None, min_length=1, max_length=63)
    """For a ClusterReleaseFreeze, the ConfigMap's namespace (required there); a ReleaseFreeze reads only
    ConfigMaps of its own namespace."""


WHEN_MESSAGE = "a freeze needs at least one of weekly, recurring, windows, dates or calendar"
_FREEZE_RULES: list[JsonValue] = [
    {
        "rule": "has(self.weekly) || has(self.recurring) || has(self.windows) || has(self.dates) "
        "|| has(self.calendar)",
        "message": WHEN_MESSAGE,
    }
]


class ReleaseFreezeSpec(ApiModel):
    """When ScheduledDeployments in this namespace must not deploy, why, and what happens to a run that
    falls due then. At least one of weekly, recurring, windows, dates and calendar."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _FREEZE_RULES})

    reason: str = Field(min_length=1, max_length=1024)
    """Why deploys are frozen, shown to people in the runs it holds, e.g. "year-end freeze" or
    "incident 4711"."""

    action: FreezeAction = FreezeAction.HOLD
    """What happens to a run that falls due while the freeze is on. Hold (default): the run is recorded as
    Held (reason Frozen) and nothing deploys. Defer: the run waits and starts when the freeze ends, if that
    is within its startingDeadlineSeconds; otherwise it is recorded as Missed (reason FrozenPastDeadline).
    A run whose scheduled time is in a Hold freeze is held even if it would start after the freeze."""

    time_zone: str = Field("UTC", min_length=1, max_length=64)
    """The IANA time zone the windows' dates and times are read in, e.g. Europe/Berlin."""

    ambiguous_time: FreezeAmbiguousTime = FreezeAmbiguousTime.EARLIER
    """For a start or end at a wall time the clocks show twice (01:30 when they go back from 02:00 to
    01:00): Earlier (default) is the first, Later the second. A start or end at a wall time the clocks skip
    (02:30 when they jump from 02:00 to 03:00) is the moment of the jump: the freeze covers exactly the
    instants whose wall clock reads inside the window."""

    weekly: list[WeeklyWindow] | None = Field(None, max_length=32)
    """Windows repeating every week, e.g. Friday 18:00 to Monday 08:00."""

    recurring: list[RecurringWindow] | None = Field(None, max_length=32)
    """Windows opening on a cron schedule, each lasting a fixed duration."""

    windows: list[OneOffWindow] | None = Field(None, max_length=64)
    """Single windows, from one local date-time to another."""

    dates: list[FreezeDate] | None = Field(None, max_length=400)
    """Whole days, YYYY-MM-DD, each from 00:00 to 24:00 on the wall clock of timeZone (23 or 25 hours on a
    day with a DST change)."""

    calendar: FreezeCalendar | None = None
    """Windows from a holiday calendar (.ics) in a ConfigMap; the operator reads it again within a minute
    of a change."""

    selector: LabelSelector | None = None
    """Which ScheduledDeployments the freeze applies to, by their labels; all of them when unset."""

    exempt_selector: LabelSelector | None = None
    """ScheduledDeployments that the freeze lets through even though selector selects them, e.g.
    matchLabels {sundial.dev/hotfix: "true"}; none when unset."""

    @model_validator(mode="after")
    def _check_some_window(self) -> Self:
        if not (self.weekly or self.recurring or self.windows or self.dates or self.calendar):
            raise ValueError(WHEN_MESSAGE)
        return self


class ClusterReleaseFreezeSpec(ReleaseFreezeSpec):
    """A freeze for ScheduledDeployments in every namespace, or in those listed."""

    namespaces: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(None, max_length=256)
    """The namespaces it applies to; every namespace when unset."""


class FreezeConditionType(StrEnum):
    READY = "Ready"
    """True when the freeze is valid and its windows are computed; False with the reason otherwise."""


class ReleaseFreezeStatus(StatusModel):
    """Whether the freeze is on, and its next window, as the operator computed them."""

    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation this status describes."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready: the freeze is valid (False with the reason, e.g. InvalidTimeZone, when not)."""

    active: bool | None = None
    """Whether the freeze is on now."""

    active_until: UtcTime | None = None
    """While it is on: when the current window ends, in UTC."""

    next_start: UtcTime | None = None
    """When the next window opens, in UTC (within the next 400 days)."""

    next_end: UtcTime | None = None
    """When that window closes, in UTC."""


def is_cluster_kind(kind: object) -> bool:
    return kind == CLUSTER_FREEZE_KIND


__all__ = [
    "CLUSTER_FREEZE_KIND",
    "FREEZE_KIND",
    "ClusterReleaseFreezeSpec",
    "FreezeAction",
    "ReleaseFreezeSpec",
    "ReleaseFreezeStatus",
]
