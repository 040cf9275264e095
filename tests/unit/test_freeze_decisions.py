"""What release freezes do to runs, as tables of worlds (see test_reconcile.py): Hold, Defer within and past
the deadline, selectors and exemptions, a dependency whose dependent is frozen, a freeze that appears after
the run was armed, and the freeze's own status. Nothing here reads the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_reconcile import (
    DEADLINE,
    DEPENDENCY_ONLY,
    DEPENDENT,
    LEAD,
    NAMESPACE,
    SECOND,
    T,
    condition,
    controller_pass,
    one_event,
    runs,
    scheduled_deployment,
    stamp,
    state_of,
    world,
)

from sundial.api.freezes import CLUSTER_FREEZE_KIND, FREEZE_KIND
from sundial.api.reasons import Invalid, Reason
from sundial.decide.freezes import Freeze, plan_freeze_status, read_freeze
from sundial.decide.observe import World
from sundial.decide.reconcile import reconcile

MINUTE = timedelta(minutes=1)


def freeze_body(
    name: str = "year-end",
    *,
    start: datetime,
    end: datetime,
    action: str = "Hold",
    cluster: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "5", "generation": 1}
    if not cluster:
        metadata["namespace"] = NAMESPACE
    return {
        "apiVersion": "sundial.dev/v1alpha1",
        "kind": CLUSTER_FREEZE_KIND if cluster else FREEZE_KIND,
        "metadata": metadata,
        "spec": {
            "reason": f"{name} freeze",
            "action": action,
            "windows": [{"from": stamp(start), "to": stamp(end)}],
            **spec,
        },
    }


def freeze(**arguments: Any) -> Freeze:
    compiled = read_freeze(freeze_body(**arguments))
    assert isinstance(compiled, Freeze), compiled
    return compiled


def frozen(w: World, *freezes: Freeze) -> World:
    return replace(w, freezes=freezes)


def labelled(body: dict[str, Any], **labels: str) -> dict[str, Any]:
    body["metadata"]["labels"] = labels
    return body


def last(status: Mapping[str, Any]) -> dict[str, Any]:
    return dict(status["runs"][-1])


def test_a_hold_freeze_records_the_run_held_and_creates_nothing() -> None:
    hold = freeze(start=T - MINUTE, end=T + timedelta(hours=2))
    plan = reconcile(frozen(world(scheduled_deployment(), T), hold))
    assert plan.create == ()
    record = last(plan.status)
    assert (record["result"], record["reason"]) == ("Held", "Frozen")
    assert "ReleaseFreeze shop/year-end (year-end freeze;" in record["message"]
    assert record["message"].endswith("nothing was deployed")
    assert state_of(plan.status, "Ready") == ("False", "Frozen")
    assert one_event(plan, "Held").type == "Warning"


def test_a_hold_freeze_that_starts_after_the_instant_still_stops_a_late_start() -> None:
    """Stop the line: a run not yet started (its operator was late, or it waited) does not start in it."""
    hold = freeze(start=T + 30 * SECOND, end=T + timedelta(hours=2))
    plan = reconcile(frozen(world(scheduled_deployment(), T + MINUTE), hold))
    assert plan.create == ()
    assert (last(plan.status)["result"], last(plan.status)["reason"]) == ("Held", "Frozen")


def test_a_defer_freeze_holds_the_run_back_and_it_starts_when_the_freeze_ends() -> None:
    end = T + 4 * MINUTE  # within the default 10 minute deadline
    defer = freeze(start=T - MINUTE, end=end, action="Defer")
    plan, after = controller_pass(frozen(world(scheduled_deployment(), T), defer))
    assert plan.create == () and plan.status["runs"] == []
    assert plan.wake_at == end
    assert state_of(plan.status, "Progressing") == ("True", "Frozen")
    assert f"deferred until {stamp(end)}, when it starts" in condition(plan.status, "Ready")["message"]
    assert one_event(plan, "Deferred").type == "Normal"
    # Looked at again while still frozen: still waiting, and no second Deferred Event.
    plan, after = controller_pass(replace(after, now=T + MINUTE))
    assert plan.create == () and not [e for e in plan.events if e.reason == "Deferred"]
    # At the end of the freeze the run starts, under its own scheduled time (its Job's name).
    plan, after = controller_pass(replace(after, now=end))
    [job] = plan.create
    assert job.scheduled_time == T and job.fired_time == end
    assert last(plan.status)["result"] == "Running"


def test_a_defer_freeze_that_outlasts_the_deadline_makes_the_run_missed_with_the_reason() -> None:
    defer = freeze(start=T - MINUTE, end=T + timedelta(hours=1), action="Defer")
    plan, after = controller_pass(frozen(world(scheduled_deployment(), T), defer))
    assert plan.create == ()
    assert plan.wake_at == T + DEADLINE + SECOND, "looked at again just after the deadline"
    assert "after its startingDeadlineSeconds ran out" in condition(plan.status, "Ready")["message"]
    plan, _ = controller_pass(replace(after, now=T + DEADLINE + SECOND))
    assert plan.create == ()
    record = last(plan.status)
    assert (record["result"], record["reason"]) == ("Missed", "FrozenPastDeadline")
    assert f"defers it until {stamp(T + timedelta(hours=1))}" in record["message"]


def test_a_deferred_run_starts_at_once_when_its_freeze_is_deleted() -> None:
    defer = freeze(start=T - MINUTE, end=T + timedelta(hours=1), action="Defer")
    _, after = controller_pass(frozen(world(scheduled_deployment(), T), defer))
    plan, _ = controller_pass(replace(after, now=T + 2 * MINUTE, freezes=()))
    [job] = plan.create
    assert job.scheduled_time == T


def test_freezes_that_continue_one_another_defer_until_the_last_ends() -> None:
    first = freeze(name="a", start=T - MINUTE, end=T + 2 * MINUTE, action="Defer")
    second = freeze(name="b", start=T + 2 * MINUTE, end=T + 5 * MINUTE, action="Defer")
    plan = reconcile(frozen(world(scheduled_deployment(), T), first, second))
    assert plan.wake_at == T + 5 * MINUTE


@pytest.mark.parametrize(
    ("labels", "selector", "exempt", "held"),
    [
        ({"tier": "prod"}, {"matchLabels": {"tier": "prod"}}, None, True),
        ({"tier": "dev"}, {"matchLabels": {"tier": "prod"}}, None, False),
        (
            {"tier": "prod"},
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["prod"]}]},
            None,
            True,
        ),
        ({}, {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, None, True),
        (
            {"tier": "prod", "sundial.dev/hotfix": "true"},
            None,
            {"matchLabels": {"sundial.dev/hotfix": "true"}},
            False,
        ),
        ({"tier": "prod"}, None, {"matchLabels": {"sundial.dev/hotfix": "true"}}, True),
        (
            {"tier": "prod"},
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["prod"]}]},
            None,
            False,
        ),
    ],
)
def test_a_freeze_applies_to_what_its_selector_selects_and_its_exemption_does_not(
    labels: dict[str, str], selector: dict[str, Any] | None, exempt: dict[str, Any] | None, held: bool
) -> None:
    extra = {key: value for key, value in (("selector", selector), ("exemptSelector", exempt)) if value}
    hold = freeze(start=T - MINUTE, end=T + MINUTE, **extra)
    plan = reconcile(frozen(world(labelled(scheduled_deployment(), **labels), T), hold))
    assert (plan.create == ()) is held


@pytest.mark.parametrize(("namespaces", "held"), [(None, True), ([NAMESPACE], True), (["elsewhere"], False)])
def test_a_cluster_freeze_applies_to_the_namespaces_it_lists(
    namespaces: list[str] | None, held: bool
) -> None:
    extra = {"namespaces": namespaces} if namespaces is not None else {}
    hold = freeze(name="incident-4711", start=T - MINUTE, end=T + MINUTE, cluster=True, **extra)
    plan = reconcile(frozen(world(scheduled_deployment(), T), hold))
    assert (plan.create == ()) is held
    if held:
        assert "ClusterReleaseFreeze incident-4711 (incident-4711 freeze;" in last(plan.status)["message"]


def test_a_dependency_does_not_run_for_a_dependent_whose_run_is_frozen() -> None:
    """The freeze selects only api and covers only api's instant: dep, at T - 5m, is held for it."""
    api = labelled(scheduled_deployment("api", DEPENDENT), app="api")
    dep = labelled(scheduled_deployment("dep", DEPENDENCY_ONLY), app="dep")
    hold = freeze(start=T - MINUTE, end=T + MINUTE, selector={"matchLabels": {"app": "api"}})
    plan = reconcile(frozen(world(dep, T - LEAD, others=[api]), hold))
    assert plan.create == ()
    record = last(plan.status)
    assert (record["role"], record["result"], record["reason"]) == ("Dependency", "Held", "Frozen")
    assert record["message"].startswith("the run of 'api' it serves is frozen by ReleaseFreeze shop/year-end")
    # Unfrozen, the same dependency runs.
    assert len(reconcile(world(dep, T - LEAD, others=[api])).create) == 1


def test_a_dependency_of_a_deferred_dependent_waits_for_the_same_end() -> None:
    api = labelled(scheduled_deployment("api", DEPENDENT), app="api")
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    defer = freeze(
        start=T - MINUTE, end=T + 2 * MINUTE, action="Defer", selector={"matchLabels": {"app": "api"}}
    )
    plan = reconcile(frozen(world(dep, T - LEAD, others=[api]), defer))
    assert plan.create == () and plan.wake_at == T + 2 * MINUTE
    later = reconcile(frozen(world(dep, T + 2 * MINUTE, others=[api]), defer))
    [job] = later.create
    assert job.scheduled_time == T - LEAD


def test_the_status_says_ahead_of_time_that_the_next_run_falls_in_a_freeze() -> None:
    hold = freeze(start=T - MINUTE, end=T + MINUTE)
    plan = reconcile(frozen(world(scheduled_deployment(), T - timedelta(hours=1)), hold))
    assert plan.status["nextRunFreeze"] == "Hold (ReleaseFreeze shop/year-end)"
    scheduled = condition(plan.status, "Scheduled")
    assert scheduled["reason"] == "Armed"
    assert (
        "it falls in ReleaseFreeze shop/year-end (year-end freeze): it will be held" in scheduled["message"]
    )
    defer = freeze(start=T - MINUTE, end=T + 3 * MINUTE, action="Defer")
    plan = reconcile(frozen(world(scheduled_deployment(), T - timedelta(hours=1)), defer))
    assert plan.status["nextRunFreeze"] == f"Defer to {stamp(T + 3 * MINUTE)} (ReleaseFreeze shop/year-end)"
    assert "nextRunFreeze" not in reconcile(world(scheduled_deployment(), T - timedelta(hours=1))).status


def test_a_freeze_created_after_the_run_was_armed_applies_at_the_instant() -> None:
    armed, after = controller_pass(world(scheduled_deployment(), T - timedelta(hours=1)))
    assert armed.wake_at == T and "nextRunFreeze" not in armed.status
    hold = freeze(start=T - 30 * MINUTE, end=T + MINUTE)
    plan, _ = controller_pass(replace(after, now=T, freezes=(hold,)))
    assert plan.create == ()
    assert runs(plan.status) == [(stamp(T), "Held", "Frozen")]


def test_an_unselected_freeze_or_one_outside_the_instant_changes_nothing() -> None:
    early = freeze(start=T - timedelta(hours=2), end=T - timedelta(hours=1))
    assert len(reconcile(frozen(world(scheduled_deployment(), T), early)).create) == 1
    assert (
        reconcile(frozen(world(scheduled_deployment(), T), early)).status
        == reconcile(world(scheduled_deployment(), T)).status
    )


# ------------------------------------------------------------------------------------------ freeze status


def test_the_freeze_status_says_on_until_and_next_and_an_event_at_each_edge() -> None:
    body = freeze_body(start=T, end=T + timedelta(hours=2), timeZone="Europe/Berlin")
    compiled = read_freeze(body)
    before = plan_freeze_status(body, compiled, T - timedelta(hours=1))
    assert before.status["active"] is False
    assert (before.status["nextStart"], before.status["nextEnd"]) == (stamp(T), stamp(T + timedelta(hours=2)))
    assert before.wake_at == T and before.events == ()
    assert before.status["conditions"][0]["reason"] == "Inactive"
    on = plan_freeze_status({**body, "status": before.status}, compiled, T)
    assert (on.status["active"], on.status["activeUntil"]) == (True, stamp(T + timedelta(hours=2)))
    assert "nextStart" not in on.status and on.wake_at == T + timedelta(hours=2)
    assert [(e.type, e.reason) for e in on.events] == [("Normal", "FreezeStarted")]
    off = plan_freeze_status({**body, "status": on.status}, compiled, T + timedelta(hours=2))
    assert off.status["active"] is False and off.wake_at is None
    assert [(e.type, e.reason) for e in off.events] == [("Normal", "FreezeEnded")]
    assert plan_freeze_status({**body, "status": off.status}, compiled, T + timedelta(hours=3)).events == ()


def test_an_invalid_freeze_says_why_freezes_nothing_and_warns_once() -> None:
    body = freeze_body(start=T, end=T + timedelta(hours=2), timeZone="CEST")
    compiled = read_freeze(body)
    assert isinstance(compiled, Invalid) and compiled.reason is Reason.INVALID_TIME_ZONE
    plan = plan_freeze_status(body, compiled, T)
    [ready] = plan.status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidTimeZone")
    [event] = plan.events
    assert event.type == "Warning" and event.message.endswith("this freeze freezes nothing")
    assert plan_freeze_status({**body, "status": plan.status}, compiled, T + MINUTE).events == ()


def test_a_freeze_with_a_spec_the_schema_refuses_is_invalid_with_the_field_named() -> None:
    body = freeze_body(start=T, end=T + MINUTE)
    body["spec"]["action"] = "Pause"
    compiled = read_freeze(body)
    assert isinstance(compiled, Invalid) and compiled.reason is Reason.INVALID_SPEC
    assert compiled.message.startswith("spec.action:")
