"""The object judged among the objects it is joined to by dependsOn, and their timings.

A dependency chain makes other objects' specs part of this object's decision: their timings say when it
runs on their behalf, and their validity decides whether its own chain resolves. Only the objects reachable
along dependsOn (in either direction) are read; the rest of the namespace cannot change the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sundial.api.reasons import Invalid, SpecError
from sundial.decide.observe import World, parse_time
from sundial.decide.validation import Valid, validate
from sundial.timing.dependencies import connected, depends_on_name
from sundial.timing.occurrences import check_run_at_not_past
from sundial.timing.schedule import Timing


def component(world: World, name: str) -> dict[str, Mapping[str, Any]]:
    """The siblings reachable from ``name`` along dependsOn in either direction: all a plan can depend on."""
    dependents: dict[str, set[str]] = {}
    for sibling_name, sibling in world.siblings.items():
        target = depends_on_name(sibling)
        if target is not None:
            dependents.setdefault(target, set()).add(sibling_name)
    names = connected(name, lambda n: depends_on_name(world.siblings.get(n)), lambda n: dependents.get(n, ()))
    return {n: world.siblings[n] for n in names if n in world.siblings}


def judge(world: World, *, has_run: bool) -> Valid | Invalid:
    """Validate the object; ``RunAtInPast`` is judged against its creation, not against now.

    A runAt that was already older than its deadline when the object was created is a mistake in the
    spec. One that passed while the operator was down is a missed run, recorded as such; calling it
    invalid would hide that a deploy did not happen. ``has_run`` (a scheduled run is on record) rules out
    ``RunAtInPast`` altogether.
    """
    body = world.body
    verdict = _validate(world, body, component(world, body["metadata"]["name"]))
    created = parse_time(body["metadata"].get("creationTimestamp"))
    if isinstance(verdict, Valid) and not has_run and created is not None:
        try:
            check_run_at_not_past(verdict.timing, created)
        except SpecError as error:
            return error.invalid
    return verdict


def component_timings(world: World, me: Valid) -> dict[str, Timing]:
    """The timings of the valid objects of the component by name, as `sundial.timing.occurrences.due` and
    `upcoming` use them."""
    members = component(world, me.name)
    timings = {me.name: me.timing}
    for sibling_name, sibling in members.items():
        if sibling_name == me.name:
            continue
        # Only the sibling's timing matters here; whether its own runAt is in the past is its own business,
        # and judging it so would drop the timing that tells us when we run on its behalf.
        verdict = _validate(world, sibling, members)
        if isinstance(verdict, Valid):
            timings[sibling_name] = verdict.timing
    return timings


def _validate(
    world: World, obj: Mapping[str, Any], members: Mapping[str, Mapping[str, Any]]
) -> Valid | Invalid:
    """`validate` with ``has_run`` (see `judge`), through the world's memo when the controller gave one."""
    if world.verdicts is not None:
        return world.verdicts.validate(obj, world.now, members, has_run=True)
    return validate(obj, world.now, members, has_run=True)
