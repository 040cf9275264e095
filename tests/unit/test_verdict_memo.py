"""A dependency component is validated once per change of its specs, not once per reconcile.

Before, every reconcile re-validated the object and every object its dependsOn joins it to (pydantic, and
for Reject policies a two-year DST scan), so a chain of N objects due at one instant cost N^2 validations.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_reconcile import (
    DEPENDENCY_ONLY,
    DEPENDENT,
    HOURLY,
    ONE_SHOT,
    SECOND,
    T,
    scheduled_deployment,
    world,
)

from sundial.decide.reconcile import reconcile
from sundial.decide.validation import VerdictMemo, validate

CHAIN = {
    "api": DEPENDENT,
    "dep": {**DEPENDENCY_ONLY, "dependsOn": {"name": "base", "leadTime": "5m"}},
    "base": DEPENDENCY_ONLY,
}


def objects(**changes: dict[str, object]) -> list[dict[str, object]]:
    return [scheduled_deployment(name, {**spec, **changes.get(name, {})}) for name, spec in CHAIN.items()]


def decide_all(memo: VerdictMemo, bodies: list[dict[str, object]], now_offset: timedelta) -> list[object]:
    plans = []
    for body in bodies:
        decision = world(body, T + now_offset, others=bodies)
        plans.append(reconcile(replace(decision, verdicts=memo)))
    return plans


def test_a_chain_is_validated_once_per_object_however_often_it_is_reconciled() -> None:
    memo = VerdictMemo()
    decide_all(memo, objects(), -60 * SECOND)
    first = memo.misses
    assert first == 3, "each of api, dep and base validated once, though each reconcile reads all three"
    for seconds in (-30, -1, 1, 30):
        decide_all(memo, objects(), seconds * SECOND)
    assert memo.misses == first


def test_a_change_to_any_spec_in_the_chain_is_validated_afresh() -> None:
    memo = VerdictMemo()
    decide_all(memo, objects(), -60 * SECOND)
    before = memo.misses
    decide_all(memo, objects(dep={"dependsOn": {"name": "base", "leadTime": "7m"}}), -59 * SECOND)
    assert memo.misses > before
    plans = decide_all(memo, objects(dep={"dependsOn": {"name": "base", "leadTime": "7m"}}), -58 * SECOND)
    fresh = decide_all(
        VerdictMemo(), objects(dep={"dependsOn": {"name": "base", "leadTime": "7m"}}), -58 * SECOND
    )
    assert plans == fresh


@pytest.mark.parametrize("spec", [ONE_SHOT, HOURLY, DEPENDENT, {**ONE_SHOT, "timeZone": "Mars/Olympus"}])
@pytest.mark.parametrize("offset", [-3600, -1, 0, 1, 599, 601])
def test_remembered_verdicts_decide_exactly_as_fresh_ones(spec: dict[str, object], offset: int) -> None:
    memo = VerdictMemo()
    dep = scheduled_deployment("dep", DEPENDENCY_ONLY)
    body = scheduled_deployment("api", spec)
    for _ in range(2):  # the second decision reads only remembered verdicts
        remembered = reconcile(replace(world(body, T + offset * SECOND, others=[dep]), verdicts=memo))
    assert remembered == reconcile(world(body, T + offset * SECOND, others=[dep]))


def test_the_memo_is_bounded() -> None:
    memo = VerdictMemo(capacity=2)
    for name in ("a", "b", "c", "d"):
        body = scheduled_deployment(name, ONE_SHOT)
        assert memo.validate(body, T, {name: body}, has_run=True) == validate(
            body, T, {name: body}, has_run=True
        )
    assert len(memo._verdicts) <= 2


def test_the_memo_forgets_the_least_recently_used_verdict_first() -> None:
    memo = VerdictMemo(capacity=2)
    bodies = {name: scheduled_deployment(name, ONE_SHOT) for name in ("a", "b", "c")}

    def ask(name: str) -> None:
        memo.validate(bodies[name], T, {name: bodies[name]}, has_run=True)

    ask("a"), ask("b"), ask("a"), ask("c")  # "b" is the least recently used when "c" needs room
    assert memo.misses == 3
    ask("a")
    assert memo.misses == 3
    ask("b")
    assert memo.misses == 4
