"""``kubectl sundial timeline``: the upcoming runs of many ScheduledDeployments, as one timeline. Pure.

The runs are computed with the operator's own engine (`sundial.decide.validation`, `sundial.timing.schedule`)
from the objects as the API server returns them, not read from ``status.nextRunTime``: that works without a
running operator, shows dependency runs (which the status of the dependency does not list ahead) and
agrees with what the operator will do, because it is the same code. An object that has already run is
validated as the operator validates it (a runAt in the past is then not an error).

Release freezes in the cluster (`sundial.cli.freezes`) are listed after the runs, and each run says what they
will do to it (held, or deferred to when), judged by the operator's own `sundial.decide.freezes`.

Notes
-----
``now`` is an argument everywhere; `sundial.cli.kubectl_plugin` reads the clock once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sundial.api.durations import format_duration
from sundial.api.models import RunRole
from sundial.api.reasons import Invalid
from sundial.api.timestamps import format_local, format_utc
from sundial.cli.freezes import (
    DEFAULT_WITHIN,
    FreezeListing,
    InvalidFreeze,
    describe_verdict,
    list_freezes,
    listing_json,
    render_freeze_lines,
    run_verdict,
    verdict_json,
)
from sundial.cli.terminal import for_terminal
from sundial.decide.freezes import Freeze, FreezeVerdict
from sundial.decide.validation import DEFAULT_NAMESPACE, Valid, timings, validate_namespace
from sundial.timing.occurrences import Occurrence, upcoming
from sundial.timing.schedule import Timing


@dataclass(frozen=True)
class Entry:
    """One run on the timeline."""

    namespace: str
    run: Occurrence
    time_zone: str
    what: str
    """What the run deploys, in a few words."""
    lead: timedelta | None = None
    """For a dependency run, how long before the run it serves."""
    suspended: bool = False
    """The object is suspended: the run will be recorded Skipped, not run."""
    freeze: FreezeVerdict | None = None
    """What the release freezes will do to the run (hold it, or defer it); None: nothing."""


@dataclass(frozen=True)
class InvalidObject:
    namespace: str
    name: str
    reason: str
    message: str


@dataclass(frozen=True)
class Timeline:
    now: datetime
    within: timedelta | None
    entries: list[Entry]
    invalid: list[InvalidObject]
    truncated: bool
    """More runs fell in the window than ``count``."""
    freezes: FreezeListing | None = None
    """The release freezes read with the objects, and their windows; None when they could not be read."""
    freezes_unread: str | None = None
    """Why the freezes could not be read (the runs are then shown without them)."""


def describe_target(spec: Mapping[str, Any]) -> str:
    """``deployment/api app=registry.example/api:v42`` and the like."""
    if isinstance(deployment := spec.get("deployment"), Mapping):
        return f"deployment/{deployment.get('name')} {deployment.get('container')}={deployment.get('image')}"
    if isinstance(ecs := spec.get("ecsService"), Mapping):
        return f"ecs {ecs.get('cluster')}/{ecs.get('service')} {ecs.get('container')}={ecs.get('image')}"
    if isinstance(patch := spec.get("patch"), Mapping):
        return f"patch {str(patch.get('kind')).lower()}/{patch.get('name')} ({patch.get('apiVersion')})"
    template = spec.get("jobTemplate")
    pod = (((template or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    images = [str(c.get("image")) for c in pod.get("containers") or [] if isinstance(c, Mapping)]
    return f"job {', '.join(images)}" if images else "job"


def _already_ran(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status")
    return isinstance(status, Mapping) and bool(status.get("runs") or status.get("lastRunTime"))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or DEFAULT_NAMESPACE)


def _lead(run: Occurrence, namespace_timings: Mapping[str, Timing]) -> timedelta | None:
    if run.role is not RunRole.DEPENDENCY or run.for_object is None:
        return None
    source = namespace_timings.get(run.for_object)
    links = [link for link in (source.chain if source else ()) if link.name == run.name]
    return links[0].lead if links else None


def build_timeline(
    objects: Sequence[Mapping[str, Any]],
    now: datetime,
    *,
    count: int,
    within: timedelta | None = None,
    freezes: Sequence[Freeze] = (),
    invalid_freezes: Sequence[InvalidFreeze] = (),
    freezes_unread: str | None = None,
) -> Timeline:
    """The first ``count`` runs after ``now`` (and no later than ``now + within``) of ``objects``, each with
    what ``freezes`` do to it, and the freezes' windows (within ``within``, else 30 days)."""
    by_namespace: dict[str, list[Mapping[str, Any]]] = {}
    for obj in objects:
        by_namespace.setdefault(_namespace(obj), []).append(obj)
    entries: list[Entry] = []
    invalid: list[InvalidObject] = []
    horizon = now + within if within is not None else None
    for namespace, members in sorted(by_namespace.items()):
        ran = [_name(obj) for obj in members if _already_ran(obj)]
        verdicts = validate_namespace(members, now, already_ran=ran)
        namespace_timings = timings(verdict for _, verdict in verdicts)
        siblings = {_name(obj): obj for obj in members}
        for obj, verdict in verdicts:
            if isinstance(verdict, Invalid):
                invalid.append(InvalidObject(namespace, _name(obj), verdict.reason.value, verdict.message))
                continue
            assert isinstance(verdict, Valid)
            what = describe_target(obj.get("spec") or {})
            for run in upcoming(verdict.name, namespace_timings, now, count):
                if horizon is not None and run.instant > horizon:
                    break
                entries.append(
                    Entry(
                        namespace=namespace,
                        run=run,
                        time_zone=verdict.spec.time_zone,
                        what=what,
                        lead=_lead(run, namespace_timings),
                        suspended=verdict.spec.suspend,
                        freeze=run_verdict(run, namespace, obj, siblings, freezes, now),
                    )
                )
    entries.sort(key=lambda entry: (entry.run.instant, entry.namespace, entry.run.name))
    invalid.sort(key=lambda item: (item.namespace, item.name))
    listing = (
        list_freezes(freezes, invalid_freezes, now, within=within or DEFAULT_WITHIN)
        if freezes_unread is None
        else None
    )
    return Timeline(
        now,
        within,
        entries[:count],
        invalid,
        truncated=len(entries) > count,
        freezes=listing,
        freezes_unread=freezes_unread,
    )


def _role(entry: Entry) -> str:
    if entry.run.role is RunRole.DEPENDENCY:
        ahead = f"{format_duration(entry.lead)} " if entry.lead is not None else ""
        return f"dependency, {ahead}before {entry.run.for_object}"
    return "deploy"


def _local(entry: Entry) -> str:
    """``Sun 03:30 EDT America/New_York``; the zone's name only when its abbreviation is not the name."""
    local = entry.run.instant.astimezone(entry.run.zone)
    text = f"{local:%a %H:%M %Z}"
    return text if local.tzname() == entry.time_zone else f"{text} {entry.time_zone}"


def _flags(entry: Entry) -> list[str]:
    flags = []
    if entry.suspended:
        flags.append("suspended: will be recorded Skipped")
    if entry.run.skipped:
        flags.append("skipped: " + ("; ".join(entry.run.notes) or "by dstPolicy"))
    if entry.freeze is not None:
        flags.append("frozen: " + describe_verdict(entry.freeze, entry.run))
    return flags


def _window(timeline: Timeline) -> str:
    return f"within {format_duration(timeline.within)}" if timeline.within is not None else "ahead"


def render_text(timeline: Timeline) -> str:
    """Runs grouped by UTC day, each with UTC and the object's local time, role, name and target.

    Everything that came from the cluster passes `for_terminal` before its column is measured."""
    now = timeline.now
    lines = [f"Upcoming runs after {now:%Y-%m-%d %H:%M:%S} UTC, {_window(timeline)}:"]
    if not timeline.entries:
        lines.append("  (none)")
    cells = [
        (
            for_terminal(_local(entry)),
            for_terminal(f"{entry.namespace}/{entry.run.name}"),
            for_terminal(_role(entry)),
        )
        for entry in timeline.entries
    ]
    widths = [max((len(row[index]) for row in cells), default=0) for index in range(3)]
    day = None
    for entry, (local, name, role) in zip(timeline.entries, cells, strict=True):
        instant = entry.run.instant
        if instant.date() != day:
            day = instant.date()
            lines.append(f"{instant:%a %d %b %Y} (UTC)")
        lines.append(
            f"  {instant:%H:%M:%S}Z  {local:<{widths[0]}}  {name:<{widths[1]}}  {role:<{widths[2]}}  "
            f"{for_terminal(entry.what)}".rstrip()
        )
        lines.extend(f"  {'':9}  ! {for_terminal(flag)}" for flag in _flags(entry))
    if timeline.truncated:
        lines.append(f"  … more runs {_window(timeline)}; raise --count to see them")
    if timeline.invalid:
        lines.append("Not scheduled (invalid; fix the spec):")
        for item in timeline.invalid:
            where, why = for_terminal(f"{item.namespace}/{item.name}"), for_terminal(item.reason)
            lines.append(f"  {where}  {why}: {for_terminal(item.message)}")
    if timeline.freezes_unread is not None:
        lines.append(f"Release freezes not shown: {for_terminal(timeline.freezes_unread)}")
    elif timeline.freezes is not None and (timeline.freezes.freezes or timeline.freezes.invalid):
        lines.append(f"Release freezes, windows within {format_duration(timeline.freezes.within)}:")
        lines.extend(render_freeze_lines(timeline.freezes))
    return "\n".join(lines) + "\n"


def render_json(timeline: Timeline) -> str:
    body = {
        "now": format_utc(timeline.now),
        "withinSeconds": int(timeline.within.total_seconds()) if timeline.within is not None else None,
        "truncated": timeline.truncated,
        "runs": [
            {
                "namespace": entry.namespace,
                "name": entry.run.name,
                "scheduledTime": format_utc(entry.run.instant),
                "localTime": format_local(entry.run.instant, entry.run.zone),
                "timeZone": entry.time_zone,
                "role": entry.run.role.value,
                "forObject": entry.run.for_object,
                "leadTime": format_duration(entry.lead) if entry.lead is not None else None,
                "what": entry.what,
                "suspended": entry.suspended,
                "skipped": entry.run.skipped,
                "notes": list(entry.run.notes),
                "freeze": verdict_json(entry.freeze, entry.run),
            }
            for entry in timeline.entries
        ],
        "invalid": [
            {"namespace": item.namespace, "name": item.name, "reason": item.reason, "message": item.message}
            for item in timeline.invalid
        ],
        "freezes": listing_json(timeline.freezes) if timeline.freezes is not None else None,
        "freezesUnread": timeline.freezes_unread,
    }
    return json.dumps(body, indent=2) + "\n"
