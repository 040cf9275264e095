"""Release freezes in the decision: which freezes apply to a run, and what they do to it.

A freeze (`sundial.api.freezes`) is read once per change into a `Freeze` (`read_freeze`), with its windows
compiled by `sundial.timing.freezes`; the controller hands the valid ones that can concern a namespace to
every plan there (`sundial.decide.observe.World.freezes`). `freeze_verdict` then says, for one run:

* **Hold** when a Hold freeze that selects the object covers the run's scheduled time or the moment it would
  start: the run is recorded Held (reason ``Frozen``) and nothing deploys;
* **Defer** when a Defer freeze that selects it covers the moment it would start: the run waits until the
  freeze (and any freeze continuing it) ends, then starts if it is still within its deadline;
* for a dependency's run, also when a freeze holds or defers the run of the dependent it serves, at that
  run's time: a dependency whose dependent may not deploy does not deploy either.

Pure: no clock (``now`` is the world's), no API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from sundial.api.conditions import find_condition, set_condition
from sundial.api.freezes import (
    CLUSTER_FREEZE_KIND,
    FREEZE_KIND,
    ClusterReleaseFreezeSpec,
    FreezeAction,
    FreezeConditionType,
    LabelSelector,
    ReleaseFreezeSpec,
    ReleaseFreezeStatus,
)
from sundial.api.models import ConditionStatus
from sundial.api.reasons import Invalid, Reason, SpecError
from sundial.api.timestamps import format_utc
from sundial.decide.events import Event
from sundial.decide.observe import mapping
from sundial.timing.calendars import Calendar, parse_calendar
from sundial.timing.freezes import HORIZON, FreezeRules, Window, compile_rules, next_window, window_at
from sundial.timing.occurrences import Occurrence

FROZEN = "Frozen"
"""The reason of a run a freeze holds (result Held), and of the Progressing condition while one defers it."""
FROZEN_PAST_DEADLINE = "FrozenPastDeadline"
"""The reason of a deferred run recorded Missed because the freeze outlasted its startingDeadlineSeconds."""

MAX_CHAINED_WINDOWS = 64
"""How many windows, one continuing the other, a deferral follows before it stops looking (a loop guard;
400 days of touching daily windows would still be found, 64 at a time, on the next wake-up)."""


@dataclass(frozen=True)
class Freeze:
    """One valid freeze, as plans read it."""

    kind: str
    """ReleaseFreeze or ClusterReleaseFreeze."""
    namespace: str | None
    """The namespace of a ReleaseFreeze; None for a ClusterReleaseFreeze."""
    name: str
    reason: str
    action: FreezeAction
    rules: FreezeRules
    selector: LabelSelector | None
    exempt: LabelSelector | None
    namespaces: frozenset[str] | None
    """For a ClusterReleaseFreeze: the namespaces it applies to; None for every one."""

    @property
    def ref(self) -> str:
        """``ReleaseFreeze shop/year-end`` or ``ClusterReleaseFreeze incident-4711``, for messages."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    def concerns_namespace(self, namespace: str) -> bool:
        if self.namespace is not None:
            return self.namespace == namespace
        return self.namespaces is None or namespace in self.namespaces

    def applies_to(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Does it freeze a ScheduledDeployment with ``labels`` in ``namespace``?"""
        if not self.concerns_namespace(namespace):
            return False
        if self.selector is not None and not selects(self.selector, labels):
            return False
        return self.exempt is None or not selects(self.exempt, labels)


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every pair and requirement holds; an empty selector selects all."""
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for requirement in selector.match_expressions or ():
        present = requirement.key in labels
        values = set(requirement.values or ())
        operator = requirement.operator
        if operator == "In" and not (present and labels[requirement.key] in values):
            return False
        if operator == "NotIn" and present and labels[requirement.key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


CalendarRef = tuple[str, str, str]
"""(namespace, ConfigMap name, key) of a freeze's holiday calendar."""


def calendar_ref(body: Mapping[str, Any]) -> CalendarRef | None:
    """Which ConfigMap key a freeze's ``spec.calendar`` names, for the operator to read; None without one
    (or when it cannot be told: the freeze is then invalid for that reason)."""
    calendar = mapping(mapping(body.get("spec")).get("calendar"))
    name, key = calendar.get("configMapName"), calendar.get("key") or "calendar.ics"
    metadata = mapping(body.get("metadata"))
    cluster = body.get("kind") == CLUSTER_FREEZE_KIND
    namespace = calendar.get("namespace") if cluster else metadata.get("namespace")
    if not all(isinstance(part, str) and part for part in (namespace, name, key)):
        return None
    return (str(namespace), str(name), str(key))


def read_freeze(body: Mapping[str, Any], calendar_text: str | None = None) -> Freeze | Invalid:
    """A freeze object as the API server holds it: compiled, or why it cannot be (reason and message).

    ``calendar_text``: the text of the ConfigMap key its spec.calendar names (`calendar_ref`), as read."""
    metadata = mapping(body.get("metadata"))
    kind = body.get("kind")
    cluster = kind == CLUSTER_FREEZE_KIND
    model = ClusterReleaseFreezeSpec if cluster else ReleaseFreezeSpec
    try:
        spec = model.model_validate(mapping(body.get("spec")))
        calendar = _calendar(body, spec, cluster, calendar_text)
        rules = compile_rules(spec, calendar)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        detail = first.get("msg", str(error)).removeprefix("Value error, ")
        return Invalid(Reason.INVALID_SPEC, f"spec{'.' + where if where else ''}: {detail}")
    except SpecError as error:
        return error.invalid
    namespaces = getattr(spec, "namespaces", None)
    return Freeze(
        kind=CLUSTER_FREEZE_KIND if cluster else FREEZE_KIND,
        namespace=None if cluster else str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        reason=spec.reason,
        action=spec.action,
        rules=rules,
        selector=spec.selector,
        exempt=spec.exempt_selector,
        namespaces=frozenset(namespaces) if namespaces is not None else None,
    )


def _calendar(
    body: Mapping[str, Any], spec: ReleaseFreezeSpec, cluster: bool, text: str | None
) -> Calendar | None:
    if spec.calendar is None:
        return None
    own = mapping(body.get("metadata")).get("namespace")
    if cluster and spec.calendar.namespace is None:
        raise SpecError(
            Reason.INVALID_SPEC,
            "spec.calendar.namespace is required on a ClusterReleaseFreeze: say which namespace holds the "
            "ConfigMap",
        )
    if not cluster and spec.calendar.namespace not in (None, own):
        raise SpecError(
            Reason.INVALID_SPEC,
            f"spec.calendar.namespace {spec.calendar.namespace!r}: a ReleaseFreeze reads ConfigMaps of its "
            "own namespace only; leave namespace out and keep the calendar here, or use a "
            "ClusterReleaseFreeze",
        )
    ref = calendar_ref(body)
    if text is None or ref is None:
        return None  # compile_rules says which ConfigMap is missing
    return parse_calendar(text, f"ConfigMap {ref[0]}/{ref[1]}, key {ref[2]}")


@dataclass(frozen=True)
class FreezeVerdict:
    """What the freezes do to one run."""

    action: FreezeAction
    freeze: Freeze
    """The freeze that decides (for Defer, the one covering the start; others may continue it)."""
    window: Window
    """Its window concerned, merged."""
    until: datetime
    """When the run may start: the end of the freezes that defer it; for Hold, the window's end."""
    served: str | None = None
    """For a dependency's run frozen because of the dependent it serves: that dependent's name."""

    def message(self, *, deadline: datetime | None = None) -> str:
        freeze = self.freeze
        why = f"{freeze.ref} ({freeze.reason}; {self.window.rule}, {format_utc(self.window.start)} to "
        why += f"{format_utc(self.window.end)})"
        whose = f"the run of {self.served!r} it serves is frozen by " if self.served else "frozen by "
        if self.action is FreezeAction.HOLD:
            return f"{whose}{why}; nothing was deployed"
        if deadline is not None and self.until > deadline:
            return (
                f"{whose}{why}, which defers it until {format_utc(self.until)}, after its "
                f"startingDeadlineSeconds ran out at {format_utc(deadline)}; nothing was deployed"
            )
        return f"{whose}{why}; deferred until {format_utc(self.until)}, when it starts"


def _labels(body: Mapping[str, Any] | None) -> Mapping[str, str]:
    labels = mapping(mapping(mapping(body).get("metadata")).get("labels"))
    return {str(key): str(value) for key, value in labels.items()}


def freeze_verdict(
    run: Occurrence,
    namespace: str,
    own: Mapping[str, Any],
    siblings: Mapping[str, Mapping[str, Any]],
    freezes: Sequence[Freeze],
    now: datetime,
) -> FreezeVerdict | None:
    """What ``freezes`` do to ``run`` of the object ``own`` if it were to start at ``now``; None: nothing."""
    if not freezes:
        return None
    perspectives: list[tuple[Mapping[str, str], tuple[datetime, ...], str | None]] = [
        (_labels(own), (run.instant, now), None)
    ]
    if run.for_object is not None and run.for_instant is not None:
        perspectives.append((_labels(siblings.get(run.for_object)), (run.for_instant,), run.for_object))
    for labels, instants, served in perspectives:
        applicable = [freeze for freeze in freezes if freeze.applies_to(namespace, labels)]
        held = _hold(applicable, instants, served)
        if held is not None:
            return held
    deferrals = [
        verdict
        for labels, instants, served in perspectives
        if (verdict := _defer(
            [f for f in freezes if f.applies_to(namespace, labels)], instants, now, served
        ))
        is not None
    ]  # fmt: skip
    return max(deferrals, key=lambda verdict: verdict.until, default=None)


def _hold(
    freezes: Iterable[Freeze], instants: Sequence[datetime], served: str | None
) -> FreezeVerdict | None:
    for freeze in sorted(freezes, key=lambda f: f.ref):
        if freeze.action is not FreezeAction.HOLD:
            continue
        for instant in instants:
            window = window_at(freeze.rules, instant)
            if window is not None:
                return FreezeVerdict(FreezeAction.HOLD, freeze, window, window.end, served)
    return None


def _defer(
    freezes: Sequence[Freeze], instants: Sequence[datetime], now: datetime, served: str | None
) -> FreezeVerdict | None:
    deferring = sorted((f for f in freezes if f.action is FreezeAction.DEFER), key=lambda f: f.ref)
    best: FreezeVerdict | None = None
    for instant in instants:
        first = next(
            ((f, w) for f in deferring if (w := window_at(f.rules, instant)) is not None),
            None,
        )
        if first is None:
            continue
        until = chained_end(deferring, instant)
        if until > now and (best is None or until > best.until):
            best = FreezeVerdict(FreezeAction.DEFER, first[0], first[1], until, served)
    return best


def chained_end(freezes: Sequence[Freeze], instant: datetime) -> datetime:
    """When the run of windows of ``freezes`` that covers ``instant`` ends (``instant`` if none covers it),
    following windows that touch or overlap across freezes."""
    end = instant
    for _ in range(MAX_CHAINED_WINDOWS):
        ends = [w.end for f in freezes if (w := window_at(f.rules, end)) is not None]
        if not ends:
            return end
        end = max(ends)
    return end


DEFER_SLACK = timedelta(seconds=1)
"""A deferred run whose freeze outlasts its deadline is looked at again just after the deadline, when it
is recorded as missed (at the deadline itself it is still due)."""


# ------------------------------------------------------------------------------------------ freeze status


@dataclass(frozen=True)
class FreezeStatusPlan:
    """What to write on a freeze: its whole status, the Events of its transitions, when to look again."""

    status: dict[str, Any]
    events: tuple[Event, ...] = ()
    wake_at: datetime | None = None


def plan_freeze_status(
    body: Mapping[str, Any], compiled: Freeze | Invalid, now: datetime
) -> FreezeStatusPlan:
    """A freeze's status at ``now``: valid or not (Ready), on or off, its next window; pure."""
    metadata = mapping(body.get("metadata"))
    generation = metadata.get("generation")
    generation = generation if isinstance(generation, int) and generation >= 0 else None
    try:
        old = ReleaseFreezeStatus.model_validate(mapping(body.get("status")))
    except ValidationError:
        old = ReleaseFreezeStatus()
    events: list[Event] = []
    if isinstance(compiled, Invalid):
        conditions, _ = set_condition(
            old.conditions,
            FreezeConditionType.READY,
            ConditionStatus.FALSE,
            compiled.reason.value,
            compiled.message,
            now=now,
            observed_generation=generation,
        )
        previous = find_condition(old.conditions, FreezeConditionType.READY)
        if previous is None or (previous.reason, previous.message) != (
            compiled.reason.value,
            compiled.message,
        ):
            events.append(
                Event("Warning", compiled.reason.value, f"{compiled.message}; this freeze freezes nothing")
            )
        status = ReleaseFreezeStatus(observed_generation=generation, conditions=conditions)
        return FreezeStatusPlan(_dump(status), tuple(events), None)
    current = window_at(compiled.rules, now)
    upcoming = next_window(compiled.rules, now)
    if current is not None:
        message = f"on until {format_utc(current.end)} ({current.rule}): {compiled.reason}"
    elif upcoming is not None:
        message = (
            f"off; next on from {format_utc(upcoming.start)} to {format_utc(upcoming.end)} ({upcoming.rule})"
        )
    else:
        message = f"off, with no window in the next {HORIZON.days} days"
    conditions, _ = set_condition(
        old.conditions,
        FreezeConditionType.READY,
        ConditionStatus.TRUE,
        "Active" if current is not None else "Inactive",
        message,
        now=now,
        observed_generation=generation,
    )
    status = ReleaseFreezeStatus(
        observed_generation=generation,
        conditions=conditions,
        active=current is not None,
        active_until=current.end if current is not None else None,
        next_start=upcoming.start if upcoming is not None else None,
        next_end=upcoming.end if upcoming is not None else None,
    )
    if current is not None and old.active is not True:
        what = "held" if compiled.action is FreezeAction.HOLD else "deferred until it ends"
        events.append(
            Event(
                "Normal",
                "FreezeStarted",
                f"deploys of the ScheduledDeployments it selects are {what}, until "
                f"{format_utc(current.end)}: {compiled.reason}",
            )
        )
    elif current is None and old.active is True:
        events.append(Event("Normal", "FreezeEnded", f"the freeze is off: {message.removeprefix('off; ')}"))
    edges = [
        instant
        for instant in (current.end if current else None, upcoming.start if upcoming else None)
        if instant
    ]
    return FreezeStatusPlan(_dump(status), tuple(events), min(edges, default=None))


def _dump(status: ReleaseFreezeStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
