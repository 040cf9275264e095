"""Approvals in the decision: may a run whose object requires approval start?

A ScheduledDeployment with ``spec.approval.required`` runs only with a `DeploymentApproval`
(`sundial.api.approvals`) for that run, i.e. naming the object and the run's scheduled instant. The
admission policy makes ``approver`` and ``approverGroups`` the API server's record of who created it; here
an approval counts only if, when ``spec.approval.groups`` lists groups, the approver is in one of them.
A dependency's run for an object that requires approval needs that object's approval too: nothing of an
unapproved run deploys.

Pure: no clock (``now`` is the world's), no API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from sundial.api.approvals import DeploymentApprovalSpec
from sundial.api.models import ApprovalPolicy
from sundial.api.timestamps import format_utc, parse_rfc3339
from sundial.decide.observe import mapping
from sundial.timing.occurrences import Occurrence

AWAITING_APPROVAL = "AwaitingApproval"
"""The reason while a run waits for its approval (Progressing, Scheduled and Ready)."""
NOT_APPROVED = "NotApproved"
"""The reason of a run recorded Held because no approval that counts came within its deadline."""


@dataclass(frozen=True)
class Approval:
    """One DeploymentApproval, as plans read it."""

    name: str
    scheduled_deployment: str
    scheduled_time: datetime
    approver: str
    groups: frozenset[str]
    comment: str | None = None

    def describe(self) -> str:
        return f"{self.approver} (DeploymentApproval {self.name})"


def read_approval(body: Mapping[str, Any]) -> Approval | None:
    """A DeploymentApproval as the API server holds it; None for one that cannot be read (the CRD's schema
    refuses those, so only a hand-edited storage could hold one)."""
    try:
        spec = DeploymentApprovalSpec.model_validate(mapping(body.get("spec")))
    except ValidationError:
        return None
    instant = parse_rfc3339(spec.scheduled_time)
    name = mapping(body.get("metadata")).get("name")
    if instant is None or not isinstance(name, str):
        return None
    return Approval(
        name=name,
        scheduled_deployment=spec.scheduled_deployment,
        scheduled_time=instant,
        approver=spec.approver,
        groups=frozenset(spec.approver_groups),
        comment=spec.comment,
    )


def approval_policy(body: Mapping[str, Any] | None) -> ApprovalPolicy | None:
    """``spec.approval`` of an object when it requires approval; None otherwise (or unreadable: the object
    is then invalid for its own reasons)."""
    raw = mapping(mapping(mapping(body).get("spec")).get("approval"))
    try:
        policy = ApprovalPolicy.model_validate(raw) if raw else None
    except ValidationError:
        return None
    return policy if policy is not None and policy.required else None


@dataclass(frozen=True)
class ApprovalVerdict:
    """What approvals say about one run: approved (by whom), or not (and why not)."""

    approved: Approval | None
    """The approval that counts; None when the run has none."""
    needed_for: str
    """The object whose approval is needed (the run's own, or the dependent it serves)."""
    instant: datetime
    """The run of that object that needs it."""
    ignored: tuple[Approval, ...] = ()
    """Approvals for that run that do not count: their approver is in none of the groups."""
    groups: tuple[str, ...] = ()
    served: bool = False
    """The approval needed is that of the dependent this dependency's run serves."""

    def waiting_message(self, deadline: datetime) -> str:
        when = format_utc(self.instant)
        whose = f"the run of {self.needed_for!r} it serves" if self.served else "this run"
        message = (
            f"waiting for approval of {whose} for {when} until {format_utc(deadline)}: "
            f"kubectl sundial approve {self.needed_for} --run {when}"
        )
        if self.groups:
            message += f" (by a member of {', '.join(self.groups)})"
        if self.ignored:
            message += "; not counted, as not in those groups: " + ", ".join(
                a.describe() for a in self.ignored
            )
        return message

    def held_message(self, deadline: datetime) -> str:
        when = format_utc(self.instant)
        detail = (
            "; not counted, as not in "
            + ", ".join(self.groups)
            + ": "
            + ", ".join(a.describe() for a in self.ignored)
            if self.ignored
            else ""
        )
        return (
            f"the run of {self.needed_for!r} for {when} was not approved before its "
            f"startingDeadlineSeconds ran out at {format_utc(deadline)}{detail}; nothing was deployed"
        )


def approval_verdict(
    run: Occurrence,
    own: Mapping[str, Any],
    siblings: Mapping[str, Mapping[str, Any]],
    approvals: Mapping[str, Sequence[Approval]],
) -> ApprovalVerdict | None:
    """Does ``run`` need an approval, and has it one? None: it needs none."""
    name = str(mapping(own.get("metadata")).get("name"))
    if run.for_object is not None and run.for_instant is not None:
        target, instant, body = run.for_object, run.for_instant, siblings.get(run.for_object)
    else:
        target, instant, body = name, run.instant, own
    policy = approval_policy(body)
    if policy is None:
        return None
    groups = tuple(policy.groups or ())
    given = [a for a in approvals.get(target, ()) if a.scheduled_time == instant]
    counted = [a for a in given if not groups or a.groups & set(groups)]
    ignored = tuple(a for a in given if a not in counted)
    return ApprovalVerdict(
        approved=min(counted, key=lambda a: a.name, default=None),
        needed_for=target,
        instant=instant,
        ignored=ignored,
        groups=groups,
        served=target != name,
    )


def approvals_by_object(approvals: Iterable[Approval]) -> dict[str, tuple[Approval, ...]]:
    found: dict[str, list[Approval]] = {}
    for approval in approvals:
        found.setdefault(approval.scheduled_deployment, []).append(approval)
    return {name: tuple(sorted(entries, key=lambda a: a.name)) for name, entries in found.items()}
