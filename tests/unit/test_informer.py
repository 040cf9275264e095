"""The informer lists, then watches from where the listing (or the last event) left off, and lists again on
410 Gone; events reach the caches whole and in order whatever the chunks' boundaries.

Fakes stand in for the API server's pages and watch streams (the real ones are exercised by every integration
test: the operator has no other feed). Each fake watch serves its scripted chunks and then ends, as the
server ends a watch at its timeout; the test stops the informer when the script runs out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from sundial.runtime.cache import JOBS, OBJECTS
from sundial.runtime.informer import Informer, LineBuffer, Source


def event(kind: str, name: str, version: str, namespace: str = "ns", **extra: Any) -> bytes:
    item = {"metadata": {"namespace": namespace, "name": name, "resourceVersion": version}, **extra}
    return json.dumps({"type": kind, "object": item}).encode() + b"\n"


def bookmark(version: str) -> bytes:
    return (
        json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": version}}}).encode()
        + b"\n"
    )


def gone() -> bytes:
    status = {"kind": "Status", "code": 410, "message": "too old resource version"}
    return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"


class Stream:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.released = False

    def stream(self, amount: Any, decode_content: bool) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True

    def shutdown(self) -> None:
        pass


class Script:
    """The API server of one source: LIST answers (paged) and watch streams, in the order they are asked."""

    def __init__(self, listings: list[list[Mapping[str, Any]]], watches: list[list[bytes]]) -> None:
        self.listings = listings
        self.watches = watches
        self.watched_from: list[str] = []
        self.list_calls: list[str | None] = []
        self.streams: list[Stream] = []
        self.informer: Informer | None = None
        self.done = False
        self.all: list[Script] = []

    def list_page(self, token: str | None) -> Mapping[str, Any]:
        self.list_calls.append(token)
        pages = self.listings[0]
        index = int(token or 0)
        if index == len(pages) - 1:
            self.listings.pop(0)
        return pages[index]

    def open_watch(self, version: str, seconds: int) -> Stream:
        self.watched_from.append(version)
        if not self.watches:
            self.done = True
            if all(script.done for script in self.all):
                assert self.informer is not None
                self.informer.stop()  # every script is over
            return Stream([])
        stream = Stream(self.watches.pop(0))
        self.streams.append(stream)
        return stream


def page(names: list[str], version: str, next_token: str | None = None) -> dict[str, Any]:
    """Items named "NAMESPACE/NAME" are in that namespace; others in "ns"."""
    metadata = {"resourceVersion": version, **({"continue": next_token} if next_token else {})}
    items = []
    for name in names:
        namespace, _, short = name.rpartition("/")
        items.append({"metadata": {"namespace": namespace or "ns", "name": short}})
    return {"metadata": metadata, "items": items}


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.synced = 0

    def listed(self, kind: str, namespace: str, items: list[dict[str, Any]], version: str | None) -> None:
        self.calls.append(("listed", kind, [item["metadata"]["name"] for item in items], version))

    def seen(self, kind: str, item: dict[str, Any], deleted: bool) -> None:
        if item["metadata"]["name"] == "poison":
            raise ValueError("a body the cache cannot take")
        self.calls.append(("seen", kind, item["metadata"]["name"], deleted))

    def mark_synced(self) -> None:
        self.synced += 1
        self.calls.append(("synced",))


def run(
    scripts: dict[str, Script], recorder: Recorder, serves: Callable[[str], bool] = lambda namespace: True
) -> Informer:
    sources = tuple(Source(kind, "", s.list_page, s.open_watch, serves=serves) for kind, s in scripts.items())
    informer = Informer(
        sources,
        listed=recorder.listed,
        seen=recorder.seen,
        synced=recorder.mark_synced,
        delay=lambda failures, outage: 0.0,
    )
    for script in scripts.values():
        script.informer = informer
        script.all = list(scripts.values())
    asyncio.run(asyncio.wait_for(informer.run(), timeout=10))
    return informer


def test_lines_are_whole_events_whatever_the_chunk_boundaries() -> None:
    data = event("ADDED", "a", "1") + event("MODIFIED", "b", "2")
    for cut in range(1, len(data)):
        lines = LineBuffer()
        got = lines.feed(data[:cut]) + lines.feed(data[cut:])
        assert [json.loads(line)["object"]["metadata"]["name"] for line in got] == ["a", "b"]
    lines = LineBuffer()
    assert lines.feed(data[:-5]) == [data.split(b"\n")[0]]  # the cut-off second event is not returned


def test_listing_pages_then_events_in_order_and_the_watch_resumes_where_the_last_event_left_off() -> None:
    added, modified = event("ADDED", "c", "11"), event("MODIFIED", "a", "12")
    script = Script(
        listings=[[page(["a"], "10", next_token="1"), page(["b"], "10")]],
        watches=[
            # One event split over two chunks, then one whole; then a bookmark moves the resume point.
            [added[:7], added[7:] + modified, bookmark("15")],
            [event("DELETED", "b", "16")],
        ],
    )
    recorder = Recorder()
    run({OBJECTS: script}, recorder)
    assert script.list_calls == [None, "1"]
    assert recorder.calls == [
        ("listed", OBJECTS, ["a", "b"], "10"),
        ("synced",),
        ("seen", OBJECTS, "c", False),
        ("seen", OBJECTS, "a", False),
        ("seen", OBJECTS, "b", True),
    ]
    assert script.watched_from == ["10", "15", "16"]
    assert all(stream.released for stream in script.streams)


def test_a_shard_takes_in_only_its_namespaces_items_and_still_resumes_past_the_others() -> None:
    """`Source.serves` (a shard's namespaces): other namespaces' items are neither listed nor seen, but
    their events still move the resume point, so a watch does not replay them."""
    script = Script(
        listings=[[page(["mine/a", "theirs/b"], "10", next_token="1"), page(["theirs/c", "mine/d"], "10")]],
        watches=[[event("ADDED", "e", "11", namespace="theirs"), event("ADDED", "f", "12", namespace="mine")],
                 [event("DELETED", "g", "13", namespace="theirs")]],
    )  # fmt: skip
    recorder = Recorder()
    run({JOBS: script}, recorder, serves=lambda namespace: namespace == "mine")
    assert recorder.calls == [
        ("listed", JOBS, ["a", "d"], "10"),
        ("synced",),
        ("seen", JOBS, "f", False),
    ]
    assert script.watched_from == ["10", "12", "13"]


def test_gone_lists_again_and_watches_from_the_new_listing() -> None:
    script = Script(
        listings=[[page(["a"], "10")], [page(["a", "b"], "30")]],
        watches=[[event("ADDED", "x", "11"), gone()], [event("ADDED", "c", "31")]],
    )
    recorder = Recorder()
    run({OBJECTS: script}, recorder)
    assert recorder.calls == [
        ("listed", OBJECTS, ["a"], "10"),
        ("synced",),
        ("seen", OBJECTS, "x", False),
        ("listed", OBJECTS, ["a", "b"], "30"),
        ("seen", OBJECTS, "c", False),
    ]
    assert script.watched_from == ["10", "30", "31"]
    assert recorder.synced == 1  # synced means "listed once": a re-list does not announce it again


def test_synced_only_once_every_source_is_listed_and_a_failing_listing_is_tried_again() -> None:
    jobs = Script(listings=[[page(["j"], "20")]], watches=[])
    objects = Script(listings=[[page(["a"], "10")]], watches=[[event("ADDED", "poison", "11")]])
    failures = [2]
    list_page = objects.list_page

    def flaky(token: str | None) -> Mapping[str, Any]:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("connection refused")
        return list_page(token)

    objects.list_page = flaky  # type: ignore[method-assign]
    recorder = Recorder()
    run({JOBS: jobs, OBJECTS: objects}, recorder)
    listed = [call for call in recorder.calls if call[0] in ("listed", "synced")]
    assert listed == [("listed", JOBS, ["j"], "20"), ("listed", OBJECTS, ["a"], "10"), ("synced",)]
    # The poisoned event was logged and skipped; the stream went on.
    assert objects.watched_from[:2] == ["10", "11"]


def test_a_watch_error_other_than_gone_is_retried_from_the_same_version() -> None:
    failed = (
        json.dumps({"type": "ERROR", "object": {"code": 500, "message": "etcd timeout"}}).encode() + b"\n"
    )
    script = Script(listings=[[page([], "10")]], watches=[[failed], [event("ADDED", "a", "12")]])
    recorder = Recorder()
    run({OBJECTS: script}, recorder)
    assert script.watched_from == ["10", "10", "12"]
    assert recorder.calls[-1] == ("seen", OBJECTS, "a", False)


@pytest.mark.parametrize("version", [None, ""])
def test_a_listing_without_a_version_is_merged_and_listed_again(version: str | None) -> None:
    script = Script(
        listings=[[{"metadata": {"resourceVersion": version}, "items": []}], [page(["a"], "10")]], watches=[]
    )
    recorder = Recorder()
    run({OBJECTS: script}, recorder)
    assert [call for call in recorder.calls if call[0] == "listed"] == [
        ("listed", OBJECTS, [], None),
        ("listed", OBJECTS, ["a"], "10"),
    ]


def test_events_before_an_error_in_the_same_chunk_are_delivered_and_not_asked_for_again() -> None:
    failed = (
        json.dumps({"type": "ERROR", "object": {"code": 500, "message": "etcd timeout"}}).encode() + b"\n"
    )
    script = Script(
        listings=[[page([], "10")]],
        watches=[[event("ADDED", "a", "11") + event("ADDED", "b", "12") + failed], []],
    )
    recorder = Recorder()
    run({OBJECTS: script}, recorder)
    assert [call for call in recorder.calls if call[0] == "seen"] == [
        ("seen", OBJECTS, "a", False),
        ("seen", OBJECTS, "b", False),
    ]
    assert script.watched_from[:2] == ["10", "12"]  # resumed after b: nothing lost, nothing twice


def test_an_item_that_cannot_be_cut_reaches_the_cache_whole_and_the_stream_goes_on() -> None:
    def cut(item: Mapping[str, Any]) -> dict[str, Any]:
        if item["metadata"]["name"] == "odd":
            raise ValueError("an object the view cannot take")
        return {"metadata": dict(item["metadata"]), "cut": True}

    script = Script(
        listings=[[page([], "10")]],
        watches=[[event("ADDED", "odd", "11", spec={}), event("ADDED", "b", "12")]],
    )
    seen: list[dict[str, Any]] = []
    informer = Informer(
        (Source(OBJECTS, "ns", script.list_page, script.open_watch, cut),),
        listed=lambda *_: None,
        seen=lambda kind, item, deleted: seen.append(item),
        synced=lambda: None,
        delay=lambda failures, outage: 0.0,
    )
    script.informer, script.all = informer, [script]
    asyncio.run(asyncio.wait_for(informer.run(), timeout=10))
    assert [("cut" in item, item["metadata"]["name"]) for item in seen] == [(False, "odd"), (True, "b")]
