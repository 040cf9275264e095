"""Runs that need approval, as tables of worlds (see test_reconcile.py): waiting at the instant, starting once
approved, held when no approval comes within the deadline, approvals ahead of time, groups, a dependency
that waits for its dependent's approval, and manual triggers. Nothing here reads the clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from test_reconcile import (
    DEADLINE,
    DEPENDENCY_ONLY,
    DEPENDENT,
    DEPLOYER_IMAGE,
    LEAD,
    ONE_SHOT,
    SECOND,
    T,
    condition,
    controller_pass,
    one_event,
    scheduled_deployment,
    stamp,
    state_of,
    world,
)

from sundial.api.keys import ANNOTATION_APPROVED_BY, ANNOTATION_TRIGGER
from sundial.decide.approvals import Approval, approvals_by_object, read_approval
from sundial.decide.jobs import build_job
from sundial.decide.observe import World
from sundial.decide.reconcile import reconcile

MINUTE = timedelta(minutes=1)
APPROVAL = {"required": True}
MANAGERS = {"required": True, "groups": ["release-managers"]}


def needing(
    policy: dict[str, Any] = APPROVAL, spec: dict[str, Any] = ONE_SHOT, name: str = "api"
) -> dict[str, Any]:
    return scheduled_deployment(name, {**spec, "approval": policy})


def approval(
    approver: str = "alice", groups: tuple[str, ...] = ("release-managers",), target: str = "api", at: Any = T
) -> Approval:
    parsed = read_approval(
        {
            "metadata": {"name": f"{target}-{approver}"},
            "spec": {
                "scheduledDeployment": target,
                "scheduledTime": stamp(at),
                "approver": approver,
                "approverGroups": list(groups),
            },
        }
    )
    assert parsed is not None
    return parsed


def approved(w: World, *approvals: Approval) -> World:
    return replace(w, approvals=approvals_by_object(approvals))


def test_a_run_that_needs_approval_waits_at_its_instant_and_says_how_to_approve() -> None:
    plan, after = controller_pass(world(needing(), T))
    assert plan.create == () and plan.status["runs"] == []
    assert state_of(plan.status, "Progressing") == ("True", "AwaitingApproval")
    message = condition(plan.status, "Ready")["message"]
    assert f"kubectl sundial approve api --run {stamp(T)}" in message
    assert plan.wake_at == T + DEADLINE + SECOND
    assert one_event(plan, "AwaitingApproval").type == "Normal"
    # Approved a minute later: it starts, and its Job says who approved.
    plan, _ = controller_pass(approved(replace(after, now=T + MINUTE), approval()))
    [run] = plan.create
    assert run.scheduled_time == T and run.approved_by == "alice (DeploymentApproval api-alice)"
    job = build_job(after.body, run, DEPLOYER_IMAGE)
    assert job["metadata"]["annotations"][ANNOTATION_APPROVED_BY] == "alice (DeploymentApproval api-alice)"


def test_an_approval_given_ahead_of_time_lets_the_run_start_on_time_and_shows_in_status() -> None:
    ahead = reconcile(approved(world(needing(), T - timedelta(hours=1)), approval()))
    assert ahead.status["nextRunApproval"] == "Approved by alice (DeploymentApproval api-alice)"
    assert "approved by alice" in condition(ahead.status, "Scheduled")["message"]
    waiting = reconcile(world(needing(), T - timedelta(hours=1)))
    assert waiting.status["nextRunApproval"] == "Awaiting approval"
    assert (
        f"it needs approval: kubectl sundial approve api --run {stamp(T)}"
        in condition(waiting.status, "Scheduled")["message"]
    )
    [run] = reconcile(approved(world(needing(), T), approval())).create
    assert run.fired_time == T


def test_a_run_not_approved_within_its_deadline_is_held_not_approved() -> None:
    _, after = controller_pass(world(needing(), T))
    plan, _ = controller_pass(replace(after, now=T + DEADLINE + SECOND))
    assert plan.create == ()
    [record] = plan.status["runs"]
    assert (record["result"], record["reason"]) == ("Held", "NotApproved")
    assert "was not approved before its startingDeadlineSeconds ran out" in record["message"]
    assert one_event(plan, "Held").type == "Warning"


def test_an_approval_for_another_run_or_object_does_not_count() -> None:
    other_run = approval(at=T + timedelta(days=1))
    other_object = approval(target="web")
    plan = reconcile(approved(world(needing(), T), other_run, other_object))
    assert plan.create == () and state_of(plan.status, "Progressing") == ("True", "AwaitingApproval")


def test_with_groups_only_a_members_approval_counts_and_the_others_are_named() -> None:
    outsider = approval("mallory", groups=("developers",))
    plan = reconcile(approved(world(needing(MANAGERS), T), outsider))
    assert plan.create == ()
    message = condition(plan.status, "Ready")["message"]
    assert "(by a member of release-managers)" in message
    assert "not counted, as not in those groups: mallory (DeploymentApproval api-mallory)" in message
    [run] = reconcile(approved(world(needing(MANAGERS), T), outsider, approval())).create
    assert run.approved_by == "alice (DeploymentApproval api-alice)"
    # Without groups, anyone's approval (the admission policy made it theirs) counts.
    assert len(reconcile(approved(world(needing(APPROVAL), T), outsider)).create) == 1


def test_a_dependency_waits_for_the_approval_of_the_dependent_it_serves() -> None:
    api = needing(spec=DEPENDENT)
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    plan = reconcile(world(dep, T - LEAD, others=[api]))
    assert plan.create == ()
    assert "waiting for approval of the run of 'api' it serves" in condition(plan.status, "Ready")["message"]
    [run] = reconcile(approved(world(dep, T - LEAD, others=[api]), approval())).create
    assert run.scheduled_time == T - LEAD


def test_an_object_without_required_approval_ignores_approvals() -> None:
    plain = scheduled_deployment("api", {**ONE_SHOT, "approval": {"required": False}})
    assert len(reconcile(world(plain, T)).create) == 1
    assert "nextRunApproval" not in reconcile(world(plain, T - MINUTE)).status


def test_a_manual_trigger_of_an_object_that_needs_approval_is_refused() -> None:
    body = needing()
    body["metadata"]["annotations"] = {ANNOTATION_TRIGGER: stamp(T - timedelta(hours=2))}
    plan = reconcile(world(body, T - timedelta(hours=2) + SECOND))
    assert plan.create == ()
    [record] = [run for run in plan.status["runs"] if run.get("trigger")]
    assert (record["result"], record["reason"]) == ("Skipped", "ApprovalRequired")
