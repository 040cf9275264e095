"""The Events a decision posts: one per transition, found by comparing the old status with the new.

A status that did not change posts nothing, so reconciling an object at rest is silent however often it
happens (client-go's recorder would fold repeats; not making them is cheaper still).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sundial.api.conditions import ConditionType, find_condition
from sundial.api.keys import API_VERSION, KIND
from sundial.api.models import Condition, RunRecord, RunResult, RunRole, ScheduledDeploymentStatus
from sundial.api.reasons import Invalid
from sundial.api.timestamps import format_local, format_utc


@dataclass(frozen=True)
class Event:
    type: str
    """Normal or Warning."""
    reason: str
    message: str


def describe(instant: datetime, zone: tzinfo) -> str:
    """An instant in UTC and on the object's wall clock, as Events and conditions show it."""
    return f"{format_utc(instant)} ({format_local(instant, zone)})"


_EVENT_OF_RESULT = {
    RunResult.SUCCEEDED: ("Normal", "Succeeded"),
    RunResult.FAILED: ("Warning", "Failed"),
    RunResult.MISSED: ("Warning", "Missed"),
    RunResult.HELD: ("Warning", "Held"),
    RunResult.SKIPPED: ("Normal", "Skipped"),
    RunResult.CANCELLED: ("Normal", "Replaced"),
}


def status_events(
    old: ScheduledDeploymentStatus,
    new: ScheduledDeploymentStatus,
    extra: Iterable[Event],
    zone: tzinfo,
    *,
    missing_account: bool,
) -> list[Event]:
    """The Events of a valid object's new status: its transitions, ``extra``, and a missing service account
    when Ready first says so."""
    events = _transition_events(old, new, extra, zone)
    old_ready = find_condition(old.conditions, ConditionType.READY)
    new_ready = find_condition(new.conditions, ConditionType.READY)
    if (
        missing_account
        and new_ready is not None
        and new_ready.reason == "ServiceAccountNotFound"
        and (old_ready is None or old_ready.reason != new_ready.reason)
    ):
        events.append(Event("Warning", "ServiceAccountNotFound", new_ready.message))
    return events


def invalid_events(old_conditions: list[Condition], invalid: Invalid, extra: Iterable[Event]) -> list[Event]:
    """A Warning when the object turns invalid or its reason or message changes; then ``extra``."""
    previous = find_condition(old_conditions, ConditionType.READY)
    events: list[Event] = []
    if previous is None or previous.reason != invalid.reason.value or previous.message != invalid.message:
        events.append(Event("Warning", invalid.reason.value, invalid.message))
    events.extend(extra)
    return events


def _transition_events(
    old: ScheduledDeploymentStatus, new: ScheduledDeploymentStatus, extra: Iterable[Event], zone: tzinfo
) -> list[Event]:
    """One Event per transition, found by comparing the old status with the new."""
    events: list[Event] = []
    if new.next_run_time is not None and new.next_run_time != old.next_run_time:
        dependency = (
            f"; its dependency runs at {format_utc(new.next_dependency_run_time)}"
            if new.next_dependency_run_time
            else ""
        )
        events.append(
            Event("Normal", "Armed", f"next run at {describe(new.next_run_time, zone)}{dependency}")
        )
    before = {(record.scheduled_time, record.trigger): record for record in old.runs}
    for record in new.runs:
        previous = before.get((record.scheduled_time, record.trigger))
        if record.trigger is not None:
            events.extend(_manual_run_events(previous, record))
            continue
        if record.fired_time is not None and (previous is None or previous.fired_time is None):
            lateness = (record.fired_time - record.scheduled_time) / timedelta(milliseconds=1)
            reason = "DependencyStarted" if record.role is RunRole.DEPENDENCY else "Fired"
            events.append(
                Event(
                    "Normal",
                    reason,
                    f"created Job {record.job_name} for "
                    f"{describe(record.scheduled_time, zone)}, {lateness:.0f} ms after the instant",
                )
            )
        if record.result in _EVENT_OF_RESULT and (previous is None or previous.result != record.result):
            kind, reason = _EVENT_OF_RESULT[record.result]
            what = f"{record.role.value.lower()} run for {format_utc(record.scheduled_time)}"
            events.append(
                Event(kind, reason, f"{what}: {record.message or record.reason or record.result.value}")
            )
    events.extend(extra)
    return events


def _manual_run_events(previous: RunRecord | None, record: RunRecord) -> list[Event]:
    """Triggered when its Job is created; TriggerRefused when it is not run; then the outcome."""
    events: list[Event] = []
    what = f"manual run for trigger {record.trigger}"
    if record.fired_time is not None and (previous is None or previous.fired_time is None):
        events.append(
            Event(
                "Normal",
                "Triggered",
                f"created Job {record.job_name} for trigger {record.trigger} (a manual run, requested "
                f"{format_utc(record.scheduled_time)}); dependencies are not run for a manual run",
            )
        )
    if previous is not None and previous.result == record.result:
        return events
    detail = record.message or record.reason or record.result.value
    if record.result is RunResult.SKIPPED:
        events.append(Event("Warning", "TriggerRefused", detail))
    elif record.result in _EVENT_OF_RESULT:
        kind, reason = _EVENT_OF_RESULT[record.result]
        events.append(Event(kind, reason, f"{what}: {detail}"))
    return events


EVENT_MESSAGE_LIMIT = 1024
"""Event messages are cut to this many characters: an Event is a line in ``kubectl describe``."""


def build_event(body: Mapping[str, Any], event: Event, now: datetime, *, unique: str) -> dict[str, Any]:
    """The core/v1 Event that reports ``event`` on the object ``body``, built here and posted elsewhere.

    ``unique`` makes the Event's name unique (the caller draws it at random); the name keeps a prefix of
    the object's so that ``kubectl get events`` sorts them together.
    """
    metadata = body["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{metadata['name'][:200]}.{unique}", "namespace": metadata["namespace"]},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:EVENT_MESSAGE_LIMIT],
        "source": {"component": "sundial"},
        "reportingComponent": "sundial.dev/operator",
        "reportingInstance": "sundial",
        "firstTimestamp": format_utc(now),
        "lastTimestamp": format_utc(now),
        "count": 1,
    }
