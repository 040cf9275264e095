"""Fresh reads before a fire: grouped into one LIST when that saves requests, and never answered from a
request that left before the read was asked for (`sundial.runtime.freshreads`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sundial.runtime.freshreads import LIST_PAGE, FreshReads, read_by_list

NAMESPACE = "shop"


@pytest.mark.parametrize(
    ("waiting", "in_namespace", "by_list"),
    [
        (1, 1, False),  # one read is one GET
        (2, 10, True),  # one page replaces two GETs
        (2, LIST_PAGE, True),
        (2, LIST_PAGE + 1, False),  # two pages for two GETs: no saving
        (3, LIST_PAGE + 1, True),
        (6, 5 * LIST_PAGE, True),  # 5 pages for 6 GETs
        (5, 5 * LIST_PAGE, False),
        (0, 0, False),
    ],
)
def test_a_list_replaces_gets_only_when_its_pages_are_fewer_requests(
    waiting: int, in_namespace: int, by_list: bool
) -> None:
    assert read_by_list(waiting, in_namespace) is by_list


class FakeApi:
    """Objects by name; every request takes ``steps()`` turns of the loop and stamps what it returns with
    the moment it was sent (a counter shared with the readers' "asked" moments)."""

    def __init__(self, names: set[str], clock: itertools.count[int], steps: Callable[[], int]) -> None:
        self.names = names
        self.clock = clock
        self.steps = steps
        self.requests: list[str] = []
        self.fail_lists = False

    async def _take_time(self) -> None:
        for _ in range(self.steps()):
            await asyncio.sleep(0)

    def _body(self, name: str, sent: int) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": NAMESPACE}, "sent": sent}

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        sent = next(self.clock)
        self.requests.append(f"GET {name}")
        await self._take_time()
        return self._body(name, sent) if name in self.names else None

    async def list_page(self, namespace: str, token: str | None) -> dict[str, Any]:
        sent = next(self.clock)
        self.requests.append(f"LIST {token or ''}".strip())
        await self._take_time()
        if self.fail_lists:
            raise ConnectionResetError("the API server went away")
        ordered = sorted(self.names)
        start = int(token or 0)
        page = ordered[start : start + 2]  # tiny pages, so that continue tokens are exercised
        rest = str(start + 2) if start + 2 < len(ordered) else None
        return {"items": [self._body(n, sent) for n in page], "metadata": {"continue": rest}}


def reads_for(api: FakeApi, budgeted: bool) -> FreshReads:
    return FreshReads(api.get, api.list_page, lambda _: len(api.names), budgeted)


def run(coroutine: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coroutine())


def test_under_a_budget_the_first_read_goes_at_once_and_alone() -> None:
    """The first Job of a burst waits for no LIST: its read leaves before the reads started with it."""
    api = FakeApi({f"o{i}" for i in range(9)}, itertools.count(), lambda: 2)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=True)
        await asyncio.gather(*(reads.read(NAMESPACE, f"o{i}") for i in range(9)))

    run(scenario)
    assert api.requests[0] == "GET o0"
    assert api.requests[1:] == ["LIST", "LIST 2", "LIST 4", "LIST 6", "LIST 8"]


@pytest.mark.parametrize("budgeted", [True, False])
def test_a_lone_read_is_one_get(budgeted: bool) -> None:
    api = FakeApi({"api"}, itertools.count(), lambda: 1)

    async def scenario() -> None:
        body = await reads_for(api, budgeted).read(NAMESPACE, "api")
        assert body is not None and body["metadata"]["name"] == "api"

    run(scenario)
    assert api.requests == ["GET api"]


def test_without_a_budget_every_read_is_its_own_get_sent_at_once() -> None:
    api = FakeApi({f"o{i}" for i in range(9)}, itertools.count(), lambda: 2)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=False)
        await asyncio.gather(*(reads.read(NAMESPACE, f"o{i}") for i in range(9)))

    run(scenario)
    assert api.requests == [f"GET o{i}" for i in range(9)]


def test_under_a_budget_reads_asked_while_one_is_on_its_way_are_one_list() -> None:
    names = {f"o{i}" for i in range(5)}
    api = FakeApi(names, itertools.count(), lambda: 3)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=True)
        first = asyncio.create_task(reads.read(NAMESPACE, "o0"))
        await asyncio.sleep(0)  # the GET of o0 leaves
        rest = [asyncio.create_task(reads.read(NAMESPACE, f"o{i}")) for i in range(1, 5)]
        bodies = await asyncio.gather(first, *rest)
        assert [b["metadata"]["name"] for b in bodies if b] == [f"o{i}" for i in range(5)]

    run(scenario)
    assert api.requests == ["GET o0", "LIST", "LIST 2", "LIST 4"]


def test_a_read_asked_while_a_list_is_on_its_way_waits_for_the_next_request() -> None:
    clock = itertools.count()
    api = FakeApi({"a", "b", "c", "late"}, clock, lambda: 4)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=True)
        group = [asyncio.create_task(reads.read(NAMESPACE, name)) for name in ("a", "b", "c")]
        while "LIST" not in api.requests:
            await asyncio.sleep(0)
        assert api.requests == ["GET a", "LIST"]  # a went alone at once; b and c gathered behind it
        asked = next(clock)
        late = await reads.read(NAMESPACE, "late")
        assert late is not None and late["sent"] > asked
        await asyncio.gather(*group)

    run(scenario)
    assert api.requests[-1] == "GET late"


def test_an_object_missing_from_the_list_does_not_exist_and_a_failed_list_fails_every_read() -> None:
    api = FakeApi({"a", "b"}, itertools.count(), lambda: 1)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=True)
        answers = await asyncio.gather(*(reads.read(NAMESPACE, n) for n in ("a", "b", "gone")))
        assert [a["metadata"]["name"] if a else None for a in answers] == ["a", "b", None]
        api.fail_lists = True
        alone, *listed = await asyncio.gather(
            *(reads.read(NAMESPACE, n) for n in ("a", "b", "gone")), return_exceptions=True
        )
        assert isinstance(alone, dict) and alone["metadata"]["name"] == "a"  # its own GET, not the LIST
        assert [type(outcome) for outcome in listed] == [ConnectionResetError] * 2

    run(scenario)


def test_a_reader_that_gave_up_does_not_break_the_others() -> None:
    api = FakeApi({"a", "b", "c"}, itertools.count(), lambda: 3)

    async def scenario() -> None:
        reads = reads_for(api, budgeted=True)
        tasks = [asyncio.create_task(reads.read(NAMESPACE, n)) for n in ("a", "b", "c")]
        await asyncio.sleep(0)
        tasks[0].cancel()  # its reconcile was cancelled (the replica paused)
        b, c = await asyncio.gather(*tasks[1:])
        assert (b["metadata"]["name"], c["metadata"]["name"]) == ("b", "c")

    run(scenario)


@settings(max_examples=150, deadline=None)
@given(
    arrivals=st.lists(st.tuples(st.integers(0, 6), st.integers(1, 12)), min_size=1, max_size=12),
    request_steps=st.lists(st.integers(0, 5), min_size=1, max_size=20),
    budgeted=st.booleans(),
    objects=st.integers(1, 30),
)
def test_every_answer_comes_from_a_request_sent_after_its_read_was_asked_for(
    arrivals: list[tuple[int, int]], request_steps: list[int], budgeted: bool, objects: int
) -> None:
    """Reads arrive in waves (after some turns of the loop, so many at once) while requests take varying
    time; whichever way they are grouped, each answer was sent after its read was asked for, every read is
    answered, and no more requests are sent than reads were asked for."""
    clock = itertools.count()
    steps = itertools.cycle(request_steps)
    names = [f"o{i}" for i in range(objects)]
    api = FakeApi(set(names[: max(1, objects - 2)]), clock, lambda: next(steps))  # the last two are gone
    asked_for = 0

    async def reader(reads: FreshReads, name: str) -> None:
        asked = next(clock)
        body = await reads.read(NAMESPACE, name)
        if name in api.names:
            assert body is not None and body["sent"] > asked, (name, asked, body)
        else:
            assert body is None

    async def scenario() -> None:
        nonlocal asked_for
        reads = reads_for(api, budgeted)
        tasks = []
        picks = itertools.cycle(names)
        for wait, count in arrivals:
            for _ in range(wait):
                await asyncio.sleep(0)
            tasks += [asyncio.create_task(reader(reads, next(picks))) for _ in range(count)]
            asked_for += count
        await asyncio.gather(*tasks)

    run(scenario)
    gets = sum(1 for request in api.requests if request.startswith("GET"))
    lists = sum(1 for request in api.requests if request == "LIST")
    assert gets + lists <= asked_for
