"""Dependency chains between ScheduledDeployments, and the Go-style durations their lead times use.

If ``api`` depends on ``db`` with ``leadTime: 15m``, ``db`` deploys 15 minutes before every run of ``api``.
Chains add up: if ``db`` depends on ``schema`` with 15m too, ``schema`` deploys 30 minutes before ``api``.

Notes
-----
A lead time is elapsed time, so dependency instants are computed on UTC instants (``instant - lead``) and
are never re-read as wall-clock times: across a DST change a 1h lead stays 60 real minutes.

``0s`` is allowed only when ``mustSucceed`` is false: a deploy that must wait for its dependency to
succeed cannot start at the same instant as that dependency. Lead times are capped at 31 days; anything
longer is almost certainly a typo (``15h`` for ``15m`` is still accepted, of course).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sundial.api.durations import DurationError, parse_duration
from sundial.api.models import LEAD_TIME_PATTERN, DependsOn
from sundial.api.reasons import Invalid, Reason, SpecError

MAX_LEAD_TIME = timedelta(days=31)

_LEAD_TIME = re.compile(LEAD_TIME_PATTERN)

DependencyGraph = Mapping[str, DependsOn | Invalid | None]
"""For each ScheduledDeployment in a namespace, by name: what it depends on (None for nothing), or why its
``dependsOn`` could not be read."""


def parse_lead_time(text: str, *, field: str = "leadTime") -> timedelta:
    """Parse a lead time such as ``15m``, ``1h30m``, ``90s`` or ``2h``, at most 31 days.

    The CRD admits only the Go-style subset of `sundial.api.durations` (whole hours, minutes and seconds, in
    that order; `LEAD_TIME_PATTERN`), so the rest is refused here in the same words, offline too.
    """
    if not text or _LEAD_TIME.fullmatch(text) is None:
        raise SpecError(
            Reason.INVALID_SPEC,
            f"{field} {text!r} is not a duration; write it like 15m, 1h30m or 90s "
            "(whole hours, minutes and seconds, in that order)",
        )
    try:
        return parse_duration(text, longest=MAX_LEAD_TIME)
    except DurationError:
        raise SpecError(
            Reason.INVALID_SPEC, f"{field} {text!r} is longer than 31 days; use a shorter lead time"
        ) from None


def lead_time(depends_on: DependsOn) -> timedelta:
    """The lead time of one ``dependsOn``, checked against ``mustSucceed``."""
    lead = parse_lead_time(depends_on.lead_time, field="spec.dependsOn.leadTime")
    if lead == timedelta(0) and depends_on.must_succeed:
        raise SpecError(
            Reason.INVALID_SPEC,
            "spec.dependsOn.leadTime is 0s but mustSucceed is true: the deploy cannot wait for a dependency "
            "that starts at the same instant; give a lead time such as 15m, or set mustSucceed: false",
        )
    return lead


@dataclass(frozen=True)
class Link:
    """One dependency in a chain, seen from the object at the head of the chain."""

    name: str
    """The ScheduledDeployment that runs first."""

    lead: timedelta
    """How long before the head's run it runs: the sum of the lead times along the chain."""

    must_succeed: bool
    """Whether the link just before it in the chain must wait for it to succeed."""


def resolve_chain(graph: DependencyGraph, name: str) -> tuple[Link, ...]:
    """The dependencies of ``name`` in the order they are reached (nearest first), with cumulative leads.

    Raises `SpecError` with ``DependencyCycle`` (the message shows the loop, ``a -> b -> a``),
    ``DependencyNotFound`` (with the path that led to the missing name, and a close match if there is
    one), or ``InvalidSpec`` when a lead time along the chain is malformed.
    """
    path = [name]
    links: list[Link] = []
    total = timedelta(0)
    current = graph.get(name)
    while current is not None:
        if isinstance(current, Invalid):
            raise SpecError(
                Reason.INVALID_SPEC,
                f"ScheduledDeployment {path[-1]!r} (in the chain {' -> '.join(path)}) has an unusable "
                f"dependsOn: {current.message}",
            )
        target = current.name
        if target in path:
            loop = " -> ".join([*path, target])
            raise SpecError(
                Reason.DEPENDENCY_CYCLE,
                f"dependsOn forms a cycle: {loop}; remove or change one of these dependsOn entries",
            )
        if target not in graph:
            raise SpecError(Reason.DEPENDENCY_NOT_FOUND, _not_found_message(graph, path, target))
        step = parse_lead_time(current.lead_time, field=f"{path[-1]}: spec.dependsOn.leadTime")
        total += step
        links.append(Link(target, total, current.must_succeed))
        path.append(target)
        current = graph[target]
    return tuple(links)


def depends_on_name(body: Mapping[str, Any] | None) -> str | None:
    """The name in a raw body's ``spec.dependsOn``, read leniently (None if there is none)."""
    spec = (body or {}).get("spec")
    depends_on = spec.get("dependsOn") if isinstance(spec, Mapping) else None
    target = depends_on.get("name") if isinstance(depends_on, Mapping) else None
    return target if isinstance(target, str) else None


def connected(
    name: str, target_of: Callable[[str], str | None], dependents_of: Callable[[str], Iterable[str]]
) -> set[str]:
    """``name`` and every object joined to it by dependsOn, in either direction: all a plan for it can
    depend on (leads add up along chains, so a change anywhere in one can move instants all along it).

    The caller says how to follow edges: the operator's cache keeps an index of dependents, a plan builds
    one from the siblings it was given. Names that no object has are included; callers filter them.
    """
    seen, stack = {name}, [name]
    while stack:
        current = stack.pop()
        neighbours = set(dependents_of(current))
        target = target_of(current)
        if target is not None:
            neighbours.add(target)
        for neighbour in neighbours - seen:
            seen.add(neighbour)
            stack.append(neighbour)
    return seen


def _not_found_message(graph: DependencyGraph, path: list[str], missing: str) -> str:
    close = difflib.get_close_matches(missing, [name for name in graph if name not in path], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = "" if len(path) == 1 else f" (in the chain {' -> '.join([*path, missing])})"
    return (
        f"dependsOn names {missing!r}{where}, but there is no ScheduledDeployment of that name in this "
        f"namespace{hint}; create it or correct spec.dependsOn.name of {path[-1]!r}"
    )
