"""``kubectl sundial approve`` and ``approvals``: a DeploymentApproval for one run, and their list. Pure.

Who approves is the API server's word, not the client's: the plugin asks the server who the user is (a
SelfSubjectReview) and copies that name and those groups into the approval, and the admission policy
``sundial-approver-identity`` refuses any other values. Which run: ``--run`` (an RFC 3339 instant, or a
wall-clock time read in the object's zone under its dstPolicy, as the operator reads runAt), else the
object's ``status.nextRunTime``. Everything here takes what was read (the object, the review, ``now``) as
arguments; the plugin (`sundial.cli.kubectl_plugin`) talks to the API server.

Notes
-----
The approval's name is derived from the object and the run's UTC instant
(``api-v42-20270210t080000z``), so approving one run twice makes no second object: the API server answers
AlreadyExists, and the plugin says who approved it. When the object's ``spec.approval.groups`` would not
count that first approval (its approver is in none of them), a member of the groups gets a name with a
digest of their user name added, so that an approval that does not count cannot block one that does.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from pydantic import ValidationError

from sundial.api.approvals import APPROVAL_KIND, DeploymentApprovalSpec
from sundial.api.keys import API_VERSION
from sundial.api.models import RUN_AT_PATTERN, DstPolicy
from sundial.api.reasons import SpecError
from sundial.api.timestamps import format_utc, parse_rfc3339
from sundial.cli.terminal import for_terminal
from sundial.decide.validation import Valid, from_validation_error, validate
from sundial.timing.cron import parse_run_at
from sundial.timing.occurrences import next_runs
from sundial.timing.wallclock import apply_policy, load_zone, resolve_local

MAX_NAME = 253
DIGEST_LENGTH = 8


class ApproveError(ValueError):
    """The approval cannot be given; the message says why and what to do."""


@dataclass(frozen=True)
class UserInfo:
    """The requesting user as the API server authenticated them (a SelfSubjectReview's status.userInfo)."""

    username: str
    groups: tuple[str, ...] = ()


def user_info(review: Any) -> UserInfo:
    """The user from a SelfSubjectReview answer: the client's model object, or its dict form."""
    if isinstance(review, Mapping):
        info = (review.get("status") or {}).get("userInfo") or {}
        username, groups = info.get("username"), info.get("groups")
    else:
        info = getattr(getattr(review, "status", None), "user_info", None)
        username, groups = getattr(info, "username", None), getattr(info, "groups", None)
    if not isinstance(username, str) or not username:
        raise ApproveError("the API server did not say who you are (its SelfSubjectReview has no username)")
    return UserInfo(username, tuple(str(group) for group in groups or ()))


# ---------------------------------------------------------------------------------------------- the run


def approval_name(scheduled_deployment: str, instant: datetime, *, distinct: str | None = None) -> str:
    """``api-v42-20270210t080000z``: the object and the run's UTC instant. ``distinct`` (a user name) adds a
    digest of it; a name longer than a Kubernetes name may be keeps the instant and cuts the object's name,
    with a digest of the whole so that two long names do not meet."""
    suffix = f"{instant.astimezone(UTC):%Y%m%dt%H%M%Sz}"
    if distinct is not None:
        suffix += "-" + hashlib.sha256(distinct.encode()).hexdigest()[:DIGEST_LENGTH]
    name = f"{scheduled_deployment}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:DIGEST_LENGTH]
    keep = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{scheduled_deployment[:keep].rstrip('-.')}-{digest}-{suffix}"


@dataclass(frozen=True)
class ChosenRun:
    """The run to approve: its UTC instant, shown also in the object's zone."""

    instant: datetime
    zone: tzinfo
    zone_name: str
    how: str
    """Where it came from: ``--run``, or ``the next run (status.nextRunTime)``."""
    notes: tuple[str, ...] = ()
    """DST decisions, and a word when it is not the object's next run."""

    @property
    def text(self) -> str:
        return format_utc(self.instant)


def _ref(body: Mapping[str, Any]) -> str:
    metadata = body.get("metadata") or {}
    return f"scheduleddeployment {metadata.get('namespace')}/{metadata.get('name')}"


def required_groups(body: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.approval.groups``, refusing an object whose runs do not need approval."""
    approval = (body.get("spec") or {}).get("approval") or {}
    if approval.get("required") is not True:
        raise ApproveError(
            f"{_ref(body)} does not require approval: approvals only matter with spec.approval.required: "
            "true, and its runs deploy without one"
        )
    return tuple(str(group) for group in approval.get("groups") or ())


def choose_run(body: Mapping[str, Any], run: str | None) -> ChosenRun:
    """The run ``--run`` names (or the object's next run): an RFC 3339 instant with any offset, or a local
    date-time read in the object's timeZone under its dstPolicy, as the operator reads runAt."""
    spec = body.get("spec") or {}
    zone_name = str(spec.get("timeZone") or "UTC")
    try:
        zone = load_zone(zone_name)
    except SpecError as error:
        raise ApproveError(f"{_ref(body)} is invalid: {error.invalid.message}") from None
    upcoming = parse_rfc3339((body.get("status") or {}).get("nextRunTime"))
    if run is None:
        if upcoming is None:
            raise ApproveError(
                f"{_ref(body)} has no next run (status.nextRunTime is empty); name the run with --run TIME"
            )
        return ChosenRun(upcoming.astimezone(UTC), zone, zone_name, "the next run (status.nextRunTime)")
    text = run.strip()
    text = text[:10] + "T" + text[11:] if len(text) > 10 and text[10] == " " else text
    if not re.fullmatch(RUN_AT_PATTERN, text):
        raise ApproveError(
            f"--run {run!r} is not a time: write an RFC 3339 instant (2027-02-10T08:00:00Z, any offset) or a "
            f"local date-time in the object's zone {zone_name} (2027-02-10 03:00)"
        )
    try:
        moment = parse_run_at(text)
    except SpecError as error:
        raise ApproveError(f"--run {run!r}: {error.invalid.message}") from None
    notes: list[str] = []
    if moment.tzinfo is not None:
        instant = moment.astimezone(UTC)
    else:
        try:
            policy = DstPolicy.model_validate(spec.get("dstPolicy") or {})
        except ValidationError:
            policy = DstPolicy()
        resolution = apply_policy(resolve_local(moment, zone), policy.nonexistent_time, policy.ambiguous_time)
        if resolution.skipped:
            raise ApproveError(f"there is no run at --run {run!r}: {resolution.note}")
        instant = resolution.instant
        if resolution.note:
            notes.append(resolution.note)
    if not is_a_run(body, instant):
        notes.append(
            f"warning: {_ref(body)} has no run scheduled at {format_utc(instant)} (by its runAt or schedule, "
            "as the spec stands now): this approval counts only if a run falls there"
        )
    elif upcoming is not None and instant != upcoming:
        notes.append(
            f"this is not the object's next run ({format_utc(upcoming)}); the approval counts only for a run "
            f"scheduled at exactly {format_utc(instant)}"
        )
    return ChosenRun(instant, zone, zone_name, "--run", tuple(notes))


def is_a_run(body: Mapping[str, Any], instant: datetime) -> bool:
    """Whether the object's runAt or schedule has a run at ``instant`` (True when that cannot be told: an
    invalid spec is the operator's to report). Judged from the spec alone, by the operator's engine."""
    spec = {key: value for key, value in (body.get("spec") or {}).items() if key != "dependsOn"}
    verdict = validate({**body, "spec": spec}, instant, has_run=True)
    if not isinstance(verdict, Valid) or verdict.timing.when is None:
        return not isinstance(verdict, Valid)
    runs = next_runs(verdict.timing, instant - timedelta(seconds=1), 1)
    return bool(runs) and runs[0].instant == instant and not runs[0].skipped


# ---------------------------------------------------------------------------------------------- the object


def build_approval(
    body: Mapping[str, Any],
    run: ChosenRun,
    user: UserInfo,
    comment: str | None,
    *,
    distinct: bool = False,
) -> dict[str, Any]:
    """The DeploymentApproval for ``run`` of ``body`` by ``user``; built, never created here."""
    metadata = body["metadata"]
    name = metadata["name"]
    spec: dict[str, Any] = {
        "scheduledDeployment": name,
        "scheduledTime": run.text,
        "approver": user.username,
        "approverGroups": list(user.groups),
    }
    if comment:
        spec["comment"] = comment
    try:
        DeploymentApprovalSpec.model_validate(spec)
    except ValidationError as error:
        invalid = from_validation_error(error)
        raise ApproveError(f"the approval would be invalid: {invalid.message}") from None
    return {
        "apiVersion": API_VERSION,
        "kind": APPROVAL_KIND,
        "metadata": {
            "name": approval_name(name, run.instant, distinct=user.username if distinct else None),
            "namespace": metadata["namespace"],
        },
        "spec": spec,
    }


def counts(groups: Sequence[str], approver_groups: Iterable[str]) -> bool:
    """Whether the operator counts an approval by a member of ``approver_groups``."""
    return not groups or bool(set(groups) & set(approver_groups))


def _local(run: ChosenRun) -> str:
    local = run.instant.astimezone(run.zone)
    return f"{local:%a %d %b %Y %H:%M:%S %Z} in {run.zone_name}"


def describe_approved(created: Mapping[str, Any], run: ChosenRun, groups: Sequence[str]) -> list[str]:
    """What was approved and by whom, as the API server stored it; whether the operator will count it."""
    metadata, spec = created.get("metadata") or {}, created.get("spec") or {}
    approver = str(spec.get("approver"))
    approver_groups = [str(group) for group in spec.get("approverGroups") or ()]
    lines = [
        f"deploymentapproval {metadata.get('namespace')}/{metadata.get('name')} created",
        f"approved by {approver}"
        + (f" (groups: {', '.join(approver_groups)})" if approver_groups else "")
        + ", as the API server recorded it",
        f"run {spec.get('scheduledTime')} (UTC), {_local(run)}, of {spec.get('scheduledDeployment')}",
    ]
    if spec.get("comment"):
        lines.append(f"comment: {spec['comment']}")
    lines.extend(note if note.startswith("warning: ") else f"note: {note}" for note in run.notes)
    if groups:
        if counts(groups, approver_groups):
            member = sorted(set(groups) & set(approver_groups))
            lines.append(f"counts: {approver} is in {', '.join(member)} (spec.approval.groups)")
        else:
            lines.append(
                f"warning: {approver} is in none of spec.approval.groups ({', '.join(groups)}): the operator "
                "will not count this approval; ask a member of those groups to approve"
            )
    return [for_terminal(line) for line in lines]


def describe_existing(existing: Mapping[str, Any], groups: Sequence[str]) -> str:
    """``already approved by alice``, for an AlreadyExists."""
    metadata, spec = existing.get("metadata") or {}, existing.get("spec") or {}
    approver = spec.get("approver") or "(unknown)"
    text = (
        f"run {spec.get('scheduledTime')} of {spec.get('scheduledDeployment')} is already approved by "
        f"{approver} (deploymentapproval {metadata.get('name')})"
    )
    if not counts(groups, spec.get("approverGroups") or ()):
        text += f", which does not count: {approver} is in none of {', '.join(groups)}"
    return for_terminal(text)


# ---------------------------------------------------------------------------------------------- listing


def _age(created: object, now: datetime) -> str:
    """As kubectl shows ages: 45s, 12m, 5h, 3d."""
    moment = parse_rfc3339(created)
    if moment is None:
        return "<unknown>"
    seconds = max(0, int((now - moment) / timedelta(seconds=1)))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def approval_rows(
    approvals: Iterable[Mapping[str, Any]], now: datetime, *, scheduled_deployment: str | None = None
) -> list[list[str]]:
    """One row per approval (of ``scheduled_deployment`` only, if given), by object, run and name."""
    rows = []
    for body in approvals:
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        if scheduled_deployment is not None and spec.get("scheduledDeployment") != scheduled_deployment:
            continue
        rows.append(
            [
                str(spec.get("scheduledDeployment") or ""),
                str(spec.get("scheduledTime") or ""),
                str(spec.get("approver") or ""),
                ",".join(str(group) for group in spec.get("approverGroups") or ()) or "-",
                _age(metadata.get("creationTimestamp"), now),
                str(spec.get("comment") or ""),
                str(metadata.get("name") or ""),
            ]
        )
    rows.sort(key=lambda row: (row[0], row[1], row[6]))
    return rows


def render_approvals(rows: Sequence[Sequence[str]], namespace: str, name: str | None) -> str:
    if not rows:
        what = f"for {name} " if name is not None else ""
        return for_terminal(f"No DeploymentApprovals {what}in namespace {namespace}.") + "\n"
    header = ["SCHEDULEDDEPLOYMENT", "RUN (UTC)", "APPROVER", "GROUPS", "AGE", "COMMENT"]
    cells = [[for_terminal(cell) for cell in row[:6]] for row in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(5)]
    lines = [
        "   ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(line[:5])), line[5]]).rstrip()
        for line in [header, *cells]
    ]
    return "\n".join(lines) + "\n"
