"""Reads beyond the caches: one read of a service account serves every plan that asks meanwhile, and a read
that fails never calls the account missing."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes.client.exceptions import ApiException

from sundial.runtime.lookups import Lookups


class Accounts:
    """The core API's service-account read, answering after a turn of the loop; ``missing`` are 404s."""

    def __init__(self, missing: set[str], failing: bool = False) -> None:
        self.missing = missing
        self.failing = failing
        self.reads: list[str] = []

    def read_namespaced_service_account(self, name: str, namespace: str, **_: Any) -> Any:
        self.reads.append(name)
        if self.failing:
            raise ApiException(status=500)
        if name in self.missing:
            raise ApiException(status=404)
        return type("Response", (), {"data": b"{}", "release_conn": lambda self: None})()


def lookups(accounts: Accounts) -> Lookups:
    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.01)  # the request's round trip: long enough for every plan to ask meanwhile
        return fn(*args, **kwargs)

    return Lookups(call, accounts, clock=lambda: 1000.0)  # type: ignore[arg-type]


def test_many_plans_asking_at_once_share_one_read_per_account() -> None:
    accounts = Accounts(missing={"ghost"})
    reads = lookups(accounts)

    async def burst() -> list[bool]:
        asks = [reads.service_account_missing("ns", "deployer") for _ in range(64)]
        asks += [reads.service_account_missing("ns", "ghost") for _ in range(64)]
        return await asyncio.gather(*asks)

    answers = asyncio.run(burst())
    assert answers == [False] * 64 + [True] * 64
    assert sorted(accounts.reads) == ["deployer", "ghost"]
    # Remembered: asking again reads nothing.
    assert asyncio.run(reads.service_account_missing("ns", "deployer")) is False
    assert len(accounts.reads) == 2


def test_a_read_that_fails_does_not_call_the_account_missing_and_is_not_remembered() -> None:
    accounts = Accounts(missing=set(), failing=True)
    reads = lookups(accounts)
    assert asyncio.run(reads.service_account_missing("ns", "deployer")) is False
    assert asyncio.run(reads.service_account_missing("ns", "deployer")) is False
    assert accounts.reads == ["deployer", "deployer"]
