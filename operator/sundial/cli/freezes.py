"""Release freezes on the command line: the stop-the-line freeze, the list of freezes, their effect on runs.

Pure: every function takes ``now`` (and, where local time is printed, the zone) as an argument; the
plugin (`sundial.cli.kubectl_plugin`) reads the clock and talks to the API server. Windows, selectors and
verdicts come from the operator's own engine (`sundial.decide.freezes`, `sundial.timing.freezes`), so what
is listed here is what the operator will do.

Notes
-----
A stop-the-line freeze is written as one one-off window whose bounds are absolute instants (with ``Z``),
not local date-times: "from now for two hours" must not depend on the zone a person's machine or the
freeze's ``timeZone`` is in, nor on a DST change inside the two hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sundial.api.durations import format_duration
from sundial.api.freezes import (
    CLUSTER_FREEZE_KIND,
    FREEZE_KIND,
    FreezeAction,
)
from sundial.api.keys import API_VERSION
from sundial.api.reasons import Invalid
from sundial.api.timestamps import format_local, format_utc
from sundial.cli.terminal import for_terminal
from sundial.decide.freezes import (
    CalendarRef,
    Freeze,
    FreezeVerdict,
    calendar_ref,
    freeze_verdict,
    read_freeze,
)
from sundial.timing.freezes import Window, next_window, window_at, windows_between
from sundial.timing.occurrences import Occurrence

STOP_THE_LINE_LABEL = "sundial.dev/stop-the-line"
"""Marks a freeze made by ``kubectl sundial freeze``, so that people (and selectors) can find them."""
STOP_THE_LINE_PREFIX = "stop-the-line-"
DEFAULT_WITHIN = timedelta(days=30)
"""How far ahead a listing of freezes looks for windows unless told otherwise."""
MAX_WINDOWS = 10
"""The most windows listed per freeze: a cron window every hour would otherwise fill the screen."""
FREEZE_KINDS = (FREEZE_KIND, CLUSTER_FREEZE_KIND)


def is_freeze_document(document: object) -> bool:
    """A ReleaseFreeze or ClusterReleaseFreeze of Sundial's API (any other document is not a freeze)."""
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == API_VERSION
        and document.get("kind") in FREEZE_KINDS
    )


# ---------------------------------------------------------------------------------------------- stop the line


def stop_the_line_name(now: datetime) -> str:
    """``stop-the-line-20271207t1530z``: the minute it was made, in UTC, in a name's lower case."""
    return f"{STOP_THE_LINE_PREFIX}{now.astimezone(UTC):%Y%m%dt%H%Mz}"


def build_stop_the_line(
    now: datetime,
    duration: timedelta,
    reason: str,
    *,
    namespace: str | None,
    name: str | None = None,
    action: FreezeAction = FreezeAction.HOLD,
) -> dict[str, Any]:
    """The freeze that stops every deploy from ``now`` for ``duration``: a ClusterReleaseFreeze when
    ``namespace`` is None, else a ReleaseFreeze there; built, never created here."""
    start = now.astimezone(UTC).replace(microsecond=0)
    metadata: dict[str, Any] = {
        "name": name or stop_the_line_name(now),
        "labels": {STOP_THE_LINE_LABEL: "true"},
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": FREEZE_KIND if namespace is not None else CLUSTER_FREEZE_KIND,
        "metadata": metadata,
        "spec": {
            "reason": reason,
            "action": action.value,
            "timeZone": "UTC",
            "windows": [{"from": format_utc(start), "to": format_utc(start + duration)}],
        },
    }


def _ref(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def unfreeze_command(kind: str, namespace: str | None, name: str) -> str:
    where = "--all" if kind == CLUSTER_FREEZE_KIND else f"-n {namespace}"
    return f"kubectl sundial unfreeze {name} {where}"


def _wall(instant: datetime, zone: tzinfo | None) -> str:
    """``Tue 07 Dec 2027 16:30 CET``; ``zone`` None is this machine's local time."""
    local = instant.astimezone(zone)
    return f"{local:%a %d %b %Y %H:%M %Z}".rstrip()


def describe_created(body: Mapping[str, Any], local_zone: tzinfo | None) -> str:
    """What ``kubectl sundial freeze`` made: its name, its window in UTC and local time, how to end it."""
    metadata, spec = body["metadata"], body["spec"]
    window = spec["windows"][0]
    start, end = _parse_z(window["from"]), _parse_z(window["to"])
    ref = _ref(body["kind"], metadata.get("namespace"), metadata["name"])
    scope = (
        "every ScheduledDeployment in every namespace"
        if body["kind"] == CLUSTER_FREEZE_KIND
        else f"every ScheduledDeployment in namespace {metadata['namespace']}"
    )
    what = "held (recorded Held, reason Frozen)" if spec["action"] == "Hold" else "deferred until it ends"
    lines = [
        f"{ref} created: {spec['reason']}",
        f"  from {format_utc(start)}  ({_wall(start, local_zone)}, local time)",
        f"  to   {format_utc(end)}  ({_wall(end, local_zone)}, local time), {format_duration(end - start)}",
        f"runs of {scope} that fall due in it are {what}",
        f"end it early with: {unfreeze_command(body['kind'], metadata.get('namespace'), metadata['name'])}",
    ]
    return "\n".join(for_terminal(line) for line in lines) + "\n"


def _parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class InvalidFreeze:
    """A freeze object that freezes nothing: why, as the operator says it in its Ready condition."""

    kind: str
    namespace: str | None
    name: str
    reason: str
    message: str

    @property
    def ref(self) -> str:
        return _ref(self.kind, self.namespace, self.name)


def read_one(
    body: Mapping[str, Any],
    *,
    default_namespace: str | None = None,
    calendars: Mapping[CalendarRef, str] | None = None,
) -> Freeze | InvalidFreeze:
    """One freeze object compiled with the operator's reader; a ReleaseFreeze without a namespace (a file
    for ``sundial preview``) is in ``default_namespace``. ``calendars``: the texts of the ConfigMap keys
    holding holiday calendars, as far as they are known (a freeze naming another is invalid, as in the
    operator)."""
    raw_metadata = body.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    kind = str(body.get("kind"))
    namespace = (metadata.get("namespace") or default_namespace) if kind == FREEZE_KIND else None
    if kind == FREEZE_KIND and namespace != metadata.get("namespace"):
        body = {**body, "metadata": {**metadata, "namespace": namespace}}
    ref = calendar_ref(body)
    compiled = read_freeze(body, (calendars or {}).get(ref) if ref is not None else None)
    if isinstance(compiled, Invalid):
        name = str(metadata.get("name") or "")
        return InvalidFreeze(kind, namespace, name, compiled.reason.value, compiled.message)
    return compiled


def read_freezes(
    bodies: Iterable[Mapping[str, Any]],
    *,
    default_namespace: str | None = None,
    calendars: Mapping[CalendarRef, str] | None = None,
) -> tuple[list[Freeze], list[InvalidFreeze]]:
    """`read_one` for each of ``bodies``: the valid and the invalid, cluster ones first, then by name."""
    valid: list[Freeze] = []
    invalid: list[InvalidFreeze] = []
    for body in bodies:
        compiled = read_one(body, default_namespace=default_namespace, calendars=calendars)
        if isinstance(compiled, InvalidFreeze):
            invalid.append(compiled)
        else:
            valid.append(compiled)
    valid.sort(key=_order)
    invalid.sort(key=lambda item: (item.kind != CLUSTER_FREEZE_KIND, item.namespace or "", item.name))
    return valid, invalid


def _order(freeze: Freeze) -> tuple[bool, str, str]:
    """Cluster freezes first, then by namespace and name."""
    return (freeze.namespace is not None, freeze.namespace or "", freeze.name)


# ---------------------------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class FreezeWindows:
    """One valid freeze and its windows from ``now`` on."""

    freeze: Freeze
    windows: list[Window]
    """The merged windows that overlap ``[now, now + within)``, the one on now (if any) first."""
    more: int = 0
    """Windows in that span left out (beyond `MAX_WINDOWS`)."""
    next_beyond: Window | None = None
    """When no window falls within the span: the next one after it, if any in the engine's horizon."""

    def active(self, now: datetime) -> Window | None:
        return next((window for window in self.windows if window.covers(now)), None)


@dataclass(frozen=True)
class FreezeListing:
    now: datetime
    within: timedelta
    freezes: list[FreezeWindows] = field(default_factory=list)
    invalid: list[InvalidFreeze] = field(default_factory=list)


def list_freezes(
    freezes: Sequence[Freeze],
    invalid: Sequence[InvalidFreeze],
    now: datetime,
    *,
    within: timedelta = DEFAULT_WITHIN,
    max_windows: int = MAX_WINDOWS,
) -> FreezeListing:
    """Every freeze's windows that are on at ``now`` or open within ``within`` of it."""
    listed = []
    for freeze in freezes:
        windows = windows_between(freeze.rules, now, now + within)
        beyond = None if windows else next_window(freeze.rules, now + within)
        more = max(0, len(windows) - max_windows)
        listed.append(FreezeWindows(freeze, windows[:max_windows], more, beyond))
    return FreezeListing(now, within, listed, list(invalid))


def _span(window: Window, zone: tzinfo) -> str:
    """``Fri 10 Dec 18:00 CET to Mon 13 Dec 08:00 CET``, in ``zone``."""
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    return f"{start:%a %d %b %H:%M %Z} to {end:%a %d %b %H:%M %Z}"


def _zone_name(freeze: Freeze) -> str:
    return str(getattr(freeze.rules.zone, "key", freeze.rules.zone))


def render_freeze_lines(listing: FreezeListing) -> list[str]:
    """The listing for people: a line per freeze, then a line per window (UTC, then the freeze's own
    time), the one on now marked ON NOW; invalid freezes at the end. Cluster text passes `for_terminal`."""
    now = listing.now
    lines: list[str] = []
    if not listing.freezes and not listing.invalid:
        lines.append("  (no freezes)")
    for item in listing.freezes:
        freeze = item.freeze
        zone = _zone_name(freeze)
        lines.append(for_terminal(f"{freeze.ref}  {freeze.action.value}  {zone}  {freeze.reason}"))
        for window in item.windows:
            state = "ON NOW" if window.covers(now) else "next  "
            lines.append(
                for_terminal(
                    f"  {state}  {format_utc(window.start)} to {format_utc(window.end)}  "
                    f"{_span(window, freeze.rules.zone)}  {window.rule}"
                )
            )
        if item.more:
            lines.append(f"  … {item.more} more within {format_duration(listing.within)}")
        if not item.windows:
            later = (
                f"; next from {format_utc(item.next_beyond.start)} to {format_utc(item.next_beyond.end)}"
                if item.next_beyond is not None
                else ""
            )
            lines.append(f"  off, no window within {format_duration(listing.within)}{later}")
    if listing.invalid:
        lines.append("Invalid (they freeze nothing; fix the spec):")
        lines.extend(for_terminal(f"  {item.ref}  {item.reason}: {item.message}") for item in listing.invalid)
    return lines


def render_text(listing: FreezeListing) -> str:
    """``kubectl sundial freezes``."""
    header = (
        f"Release freezes at {listing.now:%Y-%m-%d %H:%M:%S} UTC, "
        f"windows within {format_duration(listing.within)}:"
    )
    return "\n".join([header, *render_freeze_lines(listing)]) + "\n"


def window_json(window: Window, zone: tzinfo, now: datetime) -> dict[str, Any]:
    return {
        "start": format_utc(window.start),
        "end": format_utc(window.end),
        "localStart": format_local(window.start, zone),
        "localEnd": format_local(window.end, zone),
        "rule": window.rule,
        "active": window.covers(now),
    }


def listing_json(listing: FreezeListing) -> list[dict[str, Any]]:
    """Every freeze, valid or not, in one shape: ``reason`` and ``message`` say why it is invalid (as in
    ``sundial preview``); ``freezeReason`` is the reason it gives people."""
    items: list[dict[str, Any]] = []
    for item in listing.freezes:
        freeze = item.freeze
        active = item.active(listing.now)
        items.append(
            {
                "kind": freeze.kind,
                "namespace": freeze.namespace,
                "name": freeze.name,
                "valid": True,
                "reason": None,
                "message": None,
                "freezeReason": freeze.reason,
                "action": freeze.action.value,
                "timeZone": _zone_name(freeze),
                "active": active is not None,
                "activeUntil": format_utc(active.end) if active is not None else None,
                "windows": [window_json(w, freeze.rules.zone, listing.now) for w in item.windows],
                "moreWindows": item.more,
            }
        )
    items.extend(
        {
            "kind": item.kind,
            "namespace": item.namespace,
            "name": item.name,
            "valid": False,
            "reason": item.reason,
            "message": item.message,
        }
        for item in listing.invalid
    )
    return items


def render_json(listing: FreezeListing) -> str:
    body = {
        "now": format_utc(listing.now),
        "withinSeconds": int(listing.within.total_seconds()),
        "freezes": listing_json(listing),
    }
    return json.dumps(body, indent=2) + "\n"


# ------------------------------------------------------------------------------------------ effect on runs


def run_verdict(
    run: Occurrence,
    namespace: str,
    own: Mapping[str, Any],
    siblings: Mapping[str, Mapping[str, Any]],
    freezes: Sequence[Freeze],
    now: datetime,
) -> FreezeVerdict | None:
    """What ``freezes`` will do to ``run`` when it falls due: judged at its instant, or at ``now`` for a run
    already due (it would start now). A run skipped by its dstPolicy never starts, so nothing freezes it."""
    if run.skipped or not freezes:
        return None
    return freeze_verdict(run, namespace, own, siblings, freezes, max(run.instant, now))


def _past_deadline(verdict: FreezeVerdict, run: Occurrence) -> datetime | None:
    """For a run deferred beyond its startingDeadlineSeconds: that deadline (it will be recorded Missed)."""
    deadline = run.instant + run.deadline
    return deadline if verdict.action is FreezeAction.DEFER and verdict.until > deadline else None


def describe_verdict(verdict: FreezeVerdict, run: Occurrence) -> str:
    """``held by ReleaseFreeze shop/year-end (year-end freeze), on until 2027-12-27T00:00:00Z: nothing
    deploys`` or ``deferred to … by …``, for a note on ``run``."""
    freeze = verdict.freeze
    why = f"{freeze.ref} ({freeze.reason})"
    if verdict.served:
        why += f", which freezes the run of {verdict.served!r} it serves"
    if verdict.action is FreezeAction.HOLD:
        return f"held by {why}, on until {format_utc(verdict.until)}: nothing deploys"
    deadline = _past_deadline(verdict, run)
    if deadline is not None:
        return (
            f"deferred to {format_utc(verdict.until)} by {why}, after its startingDeadlineSeconds ran out at "
            f"{format_utc(deadline)}: it will be recorded Missed (FrozenPastDeadline) and nothing deploys"
        )
    return f"deferred to {format_utc(verdict.until)} by {why}"


def verdict_json(verdict: FreezeVerdict | None, run: Occurrence) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {
        "action": verdict.action.value,
        "freeze": verdict.freeze.ref,
        "reason": verdict.freeze.reason,
        "until": format_utc(verdict.until),
        "served": verdict.served,
        "pastDeadline": _past_deadline(verdict, run) is not None,
        "message": describe_verdict(verdict, run),
    }


def upcoming_windows(freeze: Freeze, now: datetime, count: int) -> list[Window]:
    """The window on at ``now`` (if any) and the next ones, ``count`` in all, within the engine's horizon
    (400 days) of each other: a year-end freeze is found from January."""
    found: list[Window] = []
    current = window_at(freeze.rules, now)
    if current is not None:
        found.append(current)
    after = now
    while len(found) < count and (window := next_window(freeze.rules, after)) is not None:
        found.append(window)
        after = window.start
    return found
