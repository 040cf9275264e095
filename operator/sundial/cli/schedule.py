"""``kubectl sundial schedule``: a ScheduledDeployment from a wall-clock time in one's own zone. Pure.

A person says "03:00 on 10 February" from where they sit; the plugin finds their zone (``--tz``, else
``TZ``, else the ``/etc/localtime`` link), says which it used, and shows the instant in UTC and local time
with any DST decision and any release freeze that would hold the run. Everything here takes the
environment, the path of ``/etc/localtime``, ``now`` and what was read from the cluster as arguments; the
plugin (`sundial.cli.kubectl_plugin`) does the reading and the writing.

Notes
-----
The object is judged with the operator's own code: the spec's shape with
`sundial.api.models.ScheduledDeploymentSpec` (the messages `sundial preview` gives), its timing and chain
with `sundial.decide.validation.validate_namespace`, its DST decision with `sundial.timing.wallclock`, and
freezes with `sundial.decide.freezes`. A dependency that does not exist yet is a warning, not a refusal:
the operator reports ``DependencyNotFound`` until it appears, and people often create the two in either
order. To still check the rest of the spec (a runAt in the past, a bad leadTime), the missing dependency is
stood in for by an object that only runs as a dependency.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sundial.api.durations import format_duration
from sundial.api.keys import API_VERSION, KIND
from sundial.api.models import (
    AmbiguousTimePolicy,
    NonexistentTimePolicy,
    ScheduledDeploymentSpec,
)
from sundial.api.reasons import Invalid, SpecError
from sundial.api.timestamps import format_utc
from sundial.cli.freezes import describe_verdict, run_verdict
from sundial.decide.freezes import Freeze
from sundial.decide.validation import Valid, from_validation_error, timings, validate_namespace
from sundial.timing.occurrences import Occurrence, upcoming
from sundial.timing.wallclock import LocalTimeKind, Resolution, apply_policy, load_zone, resolve_local

LOCALTIME = Path("/etc/localtime")
"""Where a Linux or macOS machine keeps its zone: a symlink into a zoneinfo directory."""
ASK_FOR_TZ = "pass --tz ZONE with an IANA name such as Europe/Berlin (see `timedatectl list-timezones`)"
_AT = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class ScheduleError(ValueError):
    """The command cannot go on; the message says what to change."""


# ---------------------------------------------------------------------------------------------- the zone


@dataclass(frozen=True)
class ZoneChoice:
    """The zone ``--at`` is read in, and where it came from (``--tz``, ``TZ`` or ``/etc/localtime``)."""

    name: str
    zone: tzinfo
    source: str

    def describe(self) -> str:
        return f"time zone {self.name}, from {self.source}"


def zone_from_path(target: str) -> str | None:
    """``Europe/Berlin`` from ``/usr/share/zoneinfo/Europe/Berlin`` (or ``../usr/share/zoneinfo/…``, or a
    ``posix/`` or ``right/`` subtree); None when the path is not in a zoneinfo directory."""
    marker = "zoneinfo/"
    if marker not in target:
        return None
    name = target.rsplit(marker, 1)[1]
    for prefix in ("posix/", "right/"):
        name = name.removeprefix(prefix)
    return name or None


def _load(name: str, source: str) -> tzinfo:
    try:
        return load_zone(name)
    except SpecError as error:
        raise ScheduleError(f"{source}: {error.invalid.message}") from None


def detect_zone(flag: str | None, environ: Mapping[str, str], localtime: Path = LOCALTIME) -> ZoneChoice:
    """The zone to read ``--at`` in: ``--tz``, else ``TZ`` (``Europe/Berlin``, ``:Europe/Berlin`` or a path
    into zoneinfo), else the target of the ``localtime`` symlink; raises `ScheduleError` asking for
    ``--tz`` when none says an IANA zone."""
    if flag:
        return ZoneChoice(flag, _load(flag, "--tz"), "--tz")
    raw = environ.get("TZ", "")
    if raw.strip():
        name = raw.strip().removeprefix(":")
        if name.startswith("/"):
            name = zone_from_path(name) or name
        try:
            return ZoneChoice(name, load_zone(name), "TZ")
        except SpecError:
            raise ScheduleError(
                f"TZ={raw!r} does not name an IANA time zone, so the zone of --at is unknown; {ASK_FOR_TZ}"
            ) from None
    try:
        target = os.readlink(localtime)
    except OSError:
        raise ScheduleError(
            f"cannot tell this machine's time zone (TZ is not set and {localtime} is not a symlink into a "
            f"zoneinfo directory); {ASK_FOR_TZ}"
        ) from None
    found = zone_from_path(target)
    if found is None:
        raise ScheduleError(
            f"cannot tell this machine's time zone ({localtime} points to {target}, not into a zoneinfo "
            f"directory); {ASK_FOR_TZ}"
        )
    try:
        return ZoneChoice(found, load_zone(found), str(localtime))
    except SpecError:
        raise ScheduleError(
            f"cannot tell this machine's time zone ({localtime} points to {target}, and {found!r} is not an "
            f"IANA time zone name); {ASK_FOR_TZ}"
        ) from None


# ---------------------------------------------------------------------------------------------- the input


def parse_at(text: str) -> datetime:
    """The naive wall time of ``--at``: ``2027-02-10 03:00`` or ``2027-02-10T03:00``, seconds optional."""
    value = text.strip()
    match = _AT.fullmatch(value)
    if match is None:
        raise ScheduleError(
            f"--at {text!r} is not a wall-clock time; write YYYY-MM-DD HH:MM (e.g. '2027-02-10 03:00'), "
            "read in --tz or this machine's zone, without an offset"
        )
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError as error:
        raise ScheduleError(f"--at {text!r} is not a real date-time ({error})") from None


def run_at_text(wall: datetime) -> str:
    """``2027-02-10T03:00`` (``…:SS`` only when the seconds are not zero): the runAt of the object."""
    return f"{wall:%Y-%m-%dT%H:%M}" + (f":{wall:%S}" if wall.second else "")


def parse_target(text: str) -> tuple[str, str]:
    """``api=registry.example/api:v42``: the container and the image."""
    container, sep, image = text.partition("=")
    if not sep or not container.strip() or not image.strip():
        raise ScheduleError(
            f"--deployment {text!r} must be CONTAINER=IMAGE, e.g. --deployment api=registry.example/api:v42"
        )
    return container.strip(), image.strip()


# ---------------------------------------------------------------------------------------------- the object


def build_scheduled_deployment(
    name: str,
    namespace: str,
    wall: datetime,
    zone_name: str,
    target: str,
    *,
    deployment_name: str | None = None,
    depends_on: str | None = None,
    lead: str | None = None,
) -> dict[str, Any]:
    """The ScheduledDeployment ``kubectl sundial schedule`` makes; built, never created here. Raises
    `ScheduleError` with the messages the API's model gives for a spec it refuses."""
    if not _NAME.fullmatch(name) or len(name) > 253:
        raise ScheduleError(
            f"{name!r} is not a valid object name: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit, at most 253 characters"
        )
    if lead is not None and depends_on is None:
        raise ScheduleError("--lead is how long before the run its dependency runs; it needs --depends-on")
    container, image = parse_target(target)
    spec: dict[str, Any] = {
        "runAt": run_at_text(wall),
        "timeZone": zone_name,
        "deployment": {"name": deployment_name or container, "container": container, "image": image},
    }
    if depends_on is not None:
        spec["dependsOn"] = {"name": depends_on, "leadTime": lead or "15m"}
    try:
        ScheduledDeploymentSpec.model_validate(spec)
    except ValidationError as error:
        invalid = from_validation_error(error)
        raise ScheduleError(
            f"the spec would be invalid ({invalid.reason.value}: {invalid.message})"
        ) from None
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


class _Dumper(yaml.SafeDumper):
    """Quotes every string that starts with a digit: ``runAt: "2027-02-10T03:00"`` must stay a string for
    every YAML reader (with seconds, YAML 1.1 readers take it for a timestamp)."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if value[:1].isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def render_yaml(body: Mapping[str, Any]) -> str:
    """The object as a YAML document for a GitOps repository (fields in the order built)."""
    return "---\n" + yaml.dump(dict(body), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class SchedulePlan:
    """What the object will do: its instant and its DST decision, and what people should be warned of."""

    body: Mapping[str, Any]
    choice: ZoneChoice
    instant: datetime
    """UTC: when it deploys."""
    resolution: Resolution
    warnings: list[str] = field(default_factory=list)
    dependencies: tuple[tuple[str, datetime], ...] = ()
    """Each dependency in the chain, nearest first, and when it runs for this run."""


def _stand_in(namespace: str, name: str) -> dict[str, Any]:
    """An object that only runs as a dependency: the missing dependency, for the rest of the checks."""
    template = {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}}}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"jobTemplate": template},
    }


def plan_schedule(
    body: Mapping[str, Any],
    choice: ZoneChoice,
    now: datetime,
    *,
    siblings: Sequence[Mapping[str, Any]] | None,
    freezes: Sequence[Freeze] | None,
    freezes_unread: str | None = None,
) -> SchedulePlan:
    """Judge ``body`` as the operator would at ``now`` among ``siblings`` (the namespace's objects; None
    when they could not be read), with ``freezes`` (None: not read, ``freezes_unread`` says why). Raises
    `ScheduleError` when the operator would refuse it."""
    metadata, spec = body["metadata"], body["spec"]
    name, namespace = metadata["name"], metadata["namespace"]
    wall = datetime.fromisoformat(spec["runAt"])
    resolution = apply_policy(
        resolve_local(wall, choice.zone), NonexistentTimePolicy.SHIFT_FORWARD, AmbiguousTimePolicy.EARLIER
    )
    warnings: list[str] = []
    if resolution.local.kind is not LocalTimeKind.NORMAL:
        kind = "in a DST gap" if resolution.local.kind is LocalTimeKind.NONEXISTENT else "in a DST fold"
        warnings.append(f"{kind}: {resolution.note} (the default; set spec.dstPolicy to choose otherwise)")

    members = [dict(obj) for obj in siblings or () if obj.get("metadata", {}).get("name") != name]
    dependency = (spec.get("dependsOn") or {}).get("name")
    known = {obj["metadata"]["name"] for obj in members}
    if dependency is not None and dependency not in known:
        where = f"in namespace {namespace}" if siblings is not None else "(the namespace could not be read)"
        if siblings is not None:
            warnings.append(
                f"dependency {dependency!r} does not exist {where}: the object will be Ready=False "
                "(DependencyNotFound) until it does"
            )
        else:
            warnings.append(f"dependency {dependency!r} was not checked {where}")
        members.append(_stand_in(namespace, dependency))
    members.append(dict(body))
    verdicts = validate_namespace(members, now)
    verdict = verdicts[-1][1]
    if isinstance(verdict, Invalid):
        raise ScheduleError(f"the operator would refuse it ({verdict.reason.value}: {verdict.message})")
    if resolution.instant <= now:
        warnings.append(
            f"{format_utc(resolution.instant)} has passed: it runs as soon as the operator sees the object"
        )
    if freezes is None:
        warnings.append(f"release freezes were not checked: {freezes_unread or 'they could not be read'}")
    else:
        warnings.extend(_freeze_warnings(verdict, verdicts, members, namespace, freezes, now))
    chain = tuple((link.name, resolution.instant - link.lead) for link in verdict.timing.chain)
    return SchedulePlan(body, choice, resolution.instant, resolution, warnings, chain)


def _freeze_warnings(
    verdict: Valid,
    verdicts: Sequence[tuple[Mapping[str, Any], Invalid | Valid]],
    members: Sequence[Mapping[str, Any]],
    namespace: str,
    freezes: Sequence[Freeze],
    now: datetime,
) -> list[str]:
    """What the freezes will do to the object's run, and to its dependencies' runs for it."""
    by_name = {obj["metadata"]["name"]: obj for obj in members}
    namespace_timings = timings(v for _, v in verdicts)
    runs: list[Occurrence] = upcoming(verdict.name, namespace_timings, now, 1)
    instant = runs[0].instant if runs else None
    for link in verdict.timing.chain:
        runs.extend(
            run
            for run in upcoming(link.name, namespace_timings, now, 20)
            if run.for_object == verdict.name and run.for_instant == instant
        )
    warnings = []
    for run in runs:
        frozen = run_verdict(run, namespace, by_name[run.name], by_name, freezes, now)
        if frozen is None:
            continue
        whose = "its run" if run.name == verdict.name else f"the run of its dependency {run.name!r}"
        warnings.append(
            f"inside a release freeze: {whose} at {format_utc(run.instant)} will be "
            + describe_verdict(frozen, run)
        )
    return warnings


def _wall(instant: datetime, zone: tzinfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%a %d %b %Y %H:%M:%S %Z} ({local:%z})"


def describe_plan(plan: SchedulePlan, *, created: bool) -> list[str]:
    """The lines printed: the zone used, the instant in UTC and local time, the warnings."""
    metadata = plan.body["metadata"]
    ref = f"scheduleddeployment {metadata['namespace']}/{metadata['name']}"
    spec = plan.body["spec"]
    deployment = spec["deployment"]
    lines = [
        plan.choice.describe(),
        f"runs at {format_utc(plan.instant)} (UTC)",
        f"        {_wall(plan.instant, plan.choice.zone)}, local time in {plan.choice.name}",
        f"deploys {deployment['image']} to container {deployment['container']} of deployment "
        f"{deployment['name']}",
    ]
    for name, instant in plan.dependencies:
        lead = format_duration(plan.instant - instant)
        lines.append(f"dependency {name!r} runs {lead} before it, at {format_utc(instant)}")
    lines.extend(f"warning: {warning}" for warning in plan.warnings)
    if created:
        lines.append(f"{ref} created")
    return lines


__all__ = [
    "LOCALTIME",
    "ScheduleError",
    "SchedulePlan",
    "ZoneChoice",
    "build_scheduled_deployment",
    "describe_plan",
    "detect_zone",
    "parse_at",
    "plan_schedule",
    "render_yaml",
]
