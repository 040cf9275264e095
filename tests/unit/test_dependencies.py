"""Dependency chains and lead-time durations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sundial.api.models import DependsOn
from sundial.api.reasons import Invalid, Reason, SpecError
from sundial.timing.dependencies import DependencyGraph, Link, lead_time, parse_lead_time, resolve_chain


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1h0m5s", timedelta(hours=1, seconds=5)),
        ("0s", timedelta(0)),
        ("744h", timedelta(days=31)),
    ],
)
def test_go_style_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_lead_time(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is not a duration"),
        ("15", "is not a duration"),
        ("15 minutes", "is not a duration"),
        ("-15m", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("30m1h", "is not a duration"),
        ("500ms", "is not a duration"),
        ("1d", "is not a duration"),
        ("745h", "longer than 31 days"),
        ("99999999999999999999999h", "longer than 31 days"),
    ],
)
def test_other_durations_are_refused_with_the_accepted_form(text: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_lead_time(text)
    assert caught.value.invalid.reason is Reason.INVALID_SPEC
    assert problem in caught.value.invalid.message


def test_a_zero_lead_time_needs_must_succeed_false() -> None:
    assert lead_time(DependsOn(name="db", lead_time="0s", must_succeed=False)) == timedelta(0)
    with pytest.raises(SpecError, match="mustSucceed is true"):
        lead_time(DependsOn(name="db", lead_time="0s"))


def on(name: str, lead: str = "15m", must_succeed: bool = True) -> DependsOn:
    return DependsOn(name=name, lead_time=lead, must_succeed=must_succeed)


def test_a_chain_lists_dependencies_nearest_first_with_cumulative_leads() -> None:
    graph: DependencyGraph = {"a": on("b"), "b": on("c", "30m", must_succeed=False), "c": None}
    assert resolve_chain(graph, "a") == (
        Link("b", timedelta(minutes=15), True),
        Link("c", timedelta(minutes=45), False),
    )
    assert resolve_chain(graph, "b") == (Link("c", timedelta(minutes=30), False),)
    assert resolve_chain(graph, "c") == ()


def test_a_chain_of_three_fifteen_minute_leads_starts_thirty_minutes_early() -> None:
    # The example: A -> B -> C, C runs 30 minutes before A.
    graph: DependencyGraph = {"a": on("b"), "b": on("c"), "c": None}
    assert resolve_chain(graph, "a")[-1] == Link("c", timedelta(minutes=30), True)


@pytest.mark.parametrize(
    ("graph", "start", "loop"),
    [
        ({"a": on("a")}, "a", "a -> a"),
        ({"a": on("b"), "b": on("a")}, "a", "a -> b -> a"),
        ({"a": on("b"), "b": on("c"), "c": on("b")}, "a", "a -> b -> c -> b"),
    ],
    ids=["self", "pair", "cycle further down the chain"],
)
def test_a_cycle_is_reported_with_its_path(graph: DependencyGraph, start: str, loop: str) -> None:
    with pytest.raises(SpecError) as caught:
        resolve_chain(graph, start)
    assert caught.value.invalid.reason is Reason.DEPENDENCY_CYCLE
    assert f"dependsOn forms a cycle: {loop};" in caught.value.invalid.message


def test_a_missing_dependency_is_reported_with_a_close_name() -> None:
    graph: DependencyGraph = {"api": on("db-migraton"), "db-migration": None}
    with pytest.raises(SpecError) as caught:
        resolve_chain(graph, "api")
    assert caught.value.invalid == Invalid(
        Reason.DEPENDENCY_NOT_FOUND,
        "dependsOn names 'db-migraton', but there is no ScheduledDeployment of that name in this namespace "
        "(did you mean 'db-migration'?); create it or correct spec.dependsOn.name of 'api'",
    )


def test_a_missing_link_further_down_shows_the_chain() -> None:
    graph: DependencyGraph = {"a": on("b"), "b": on("x")}
    with pytest.raises(SpecError, match=r"\(in the chain a -> b -> x\)") as caught:
        resolve_chain(graph, "a")
    assert caught.value.invalid.reason is Reason.DEPENDENCY_NOT_FOUND


def test_a_broken_link_is_reported_with_its_own_message() -> None:
    graph: DependencyGraph = {
        "a": on("b"),
        "b": Invalid(Reason.INVALID_SPEC, "spec.dependsOn.name is required"),
    }
    with pytest.raises(SpecError) as caught:
        resolve_chain(graph, "a")
    assert caught.value.invalid.message == (
        "ScheduledDeployment 'b' (in the chain a -> b) has an unusable dependsOn: "
        "spec.dependsOn.name is required"
    )


def test_a_bad_lead_time_further_down_names_its_owner() -> None:
    graph: DependencyGraph = {"a": on("b"), "b": on("c", "soon"), "c": None}
    with pytest.raises(SpecError, match=r"b: spec\.dependsOn\.leadTime 'soon' is not a duration"):
        resolve_chain(graph, "a")
