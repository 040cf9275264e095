"""The caches' feed: list, then watch from the listing's resourceVersion, on every replica, active or not.

Sundial watches its ScheduledDeployments and Jobs itself instead of through kopf's ``on.event`` handlers, the
way a client-go informer does (list, then watch from the listing's resourceVersion; on 410 Gone list again):

* **A standby's caches are warm.** kopf pauses its watch streams on a standby and lists everything again when
  the replica resumes. At 10,000 objects that listing was most of a take-over (issue 14: 16 s from process
  start to every object armed). These streams run whatever peering says, so a replica that takes over only
  re-plans: the active one fires, the others only listen.
* **One listing, not two.** At start kopf listed every object and delivered it as an event while the replica
  listed everything again to know where the listing ends (planning waits for that). Here the listing that
  fills the cache is the one the watch continues from, and its end is what `synced` reports.
* **Less CPU per event.** kopf wraps each event in a per-object worker, a body view and a handler call;
  Sundial's handlers only handed the body to the cache, so all of that was overhead on the fire path (a Job
  makes three or four watch events).

Each source (one kind in one namespace, or in all) is served by one coroutine. The blocking calls (the LIST
pages, the watch stream) run in daemon threads, so an exiting operator never waits for a quiet watch to time
out; events are parsed and cut down in that thread and handed to the event loop in the order they came,
one batch per chunk the API server flushed. The informer decides nothing: it calls ``listed``/``seen``, and
the controller updates the cache and wakes what a change concerns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sundial.api.approvals import APPROVAL_PLURAL
from sundial.api.freezes import CLUSTER_FREEZE_KIND, CLUSTER_FREEZE_PLURAL, FREEZE_KIND, FREEZE_PLURAL
from sundial.api.keys import GROUP, MANAGED_BY, MANAGER, PLURAL, VERSION
from sundial.decide.observe import plan_view
from sundial.runtime.apierrors import is_outage
from sundial.runtime.cache import APPROVALS, CLUSTER_FREEZES, FREEZES, JOBS, OBJECTS, freeze_view
from sundial.runtime.kubeclient import raw_body
from sundial.runtime.wakeups import retry_delay

logger = logging.getLogger("sundial.runtime.informer")

T = TypeVar("T")

LIST_PAGE_SIZE = 500
"""Items per page when listing: bounded responses even at 10,000 objects."""
WATCH_SECONDS = (50, 60)
"""The server ends each watch after a random time in this range, and the next one resumes from the last
event. Short on purpose: a connection that died silently (a partition, a proxy) is noticed by the read
deadline below, and a cache that stops hearing about new objects would let their runs pass unfired. One
request a minute per source is the price. Random, as client-go's reflector, so replicas do not re-open
their watches in step."""
READ_TIMEOUT_SECONDS = 75.0
"""A stream silent for longer than the server's own end of it is dead: open it again."""
CONNECT_TIMEOUT_SECONDS = 5.0


class ResourceExpired(Exception):
    """410 Gone: the watch cannot resume from the version asked for; the source must be listed again."""


class WatchFailed(Exception):
    """The API server ended a watch with an error event other than 410."""


class LineBuffer:
    """A watch stream's events, one JSON document per line, whatever the boundaries of the chunks they come
    in. A line cut off by the end of the stream is never returned: the watch resumes from the last whole
    event, so it comes again."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        return [line for line in lines if line.strip()]


@dataclass(frozen=True)
class Source:
    """How to list and watch one kind in one scope. Both callables block; they run in the informer's
    threads."""

    kind: str
    """`OBJECTS`, `JOBS`, `FREEZES` or `CLUSTER_FREEZES`."""
    namespace: str
    """The namespace listed and watched; "" for every namespace."""
    list_page: Callable[[str | None], Mapping[str, Any]]
    """(continue token) -> one page of the listing: its ``items`` and ``metadata``."""
    open_watch: Callable[[str, int], Any]
    """(resourceVersion, seconds) -> a streaming response (``stream()``, ``release_conn()``; ``shutdown()``
    to interrupt a blocked read) of the watch from that version."""
    cut: Callable[[Mapping[str, Any]], dict[str, Any]] = dict
    """What of an item is kept: done in the thread, so whole bodies never reach the event loop."""
    serves: Callable[[str], bool] = lambda namespace: True
    """Is an item in this namespace this operator's (its shard's)? Others are dropped in the thread, before
    they are cut, cached or handed to the loop: a shard's cache holds only its own objects and Jobs. (Not
    server-side: a LIST or watch cannot select by a hash of the namespace, so each shard still receives
    and parses every event of a cluster-wide source.)"""

    @property
    def label(self) -> str:
        return f"{self.kind} in {self.namespace or 'every namespace'}"


@dataclass
class _Progress:
    version: str | None = None
    """Where this source's watch resumes; None: list it (again) first."""
    failures: int = 0
    listed: bool = False


Listed = Callable[[str, str, list[dict[str, Any]], str | None], None]
Seen = Callable[[str, dict[str, Any], bool], None]


@dataclass
class Informer:
    sources: tuple[Source, ...]
    listed: Listed
    """(kind, namespace, items, collection resourceVersion): a complete listing of one source."""
    seen: Seen
    """(kind, item, deleted): one watch event, in order."""
    synced: Callable[[], None]
    """Called once, when every source has been listed."""
    delay: Callable[[int, bool], float] = retry_delay
    """(failures in a row, outage?) -> seconds before trying a failing source again."""
    _progress: dict[Source, _Progress] = field(default_factory=dict)
    _responses: set[Any] = field(default_factory=set)
    _stopping: bool = False

    def __post_init__(self) -> None:
        self._progress = {source: _Progress() for source in self.sources}

    def start(self) -> asyncio.Task[None]:
        """Serve every source, in tasks created here and now; the returned task ends when they do.

        Created before ``kopf.operator`` starts on purpose: at exit kopf waits 5 s for every task it finds
        was created after it started, and only then cancels them (measured: SIGTERM to exit went from
        0.2 s to 5.2 s when these tasks were created a step later).
        """
        serving = [
            asyncio.create_task(self._serve(source), name=f"sundial informer: {source.label}")
            for source in self.sources
        ]
        return asyncio.create_task(self._supervise(serving), name="sundial informer")

    async def run(self) -> None:
        """Serve every source until cancelled (or `stop`)."""
        await self.start()

    async def _supervise(self, serving: list[asyncio.Task[None]]) -> None:
        try:
            await asyncio.gather(*serving)
        finally:
            self.stop()
            for task in serving:
                task.cancel()

    def stop(self) -> None:
        """Stop every stream now: threads blocked reading a watch are woken by shutting their sockets."""
        self._stopping = True
        for response in list(self._responses):
            with contextlib.suppress(Exception):
                response.shutdown()

    async def _serve(self, source: Source) -> None:
        progress = self._progress[source]
        while not self._stopping:
            started = time.monotonic()
            try:
                if progress.version is None:
                    await self.list_source(source)
                    progress.failures = 0
                await _in_thread(self._watch, source, progress, asyncio.get_running_loop())
            except Exception as error:
                if self._stopping:
                    return
                if isinstance(error, ResourceExpired) or getattr(error, "status", None) == 410:
                    # Too old to resume from (a watch event, or the answer to the request itself): list again.
                    logger.info("watch of %s expired (410 Gone): listing it again", source.label)
                    progress.version = None
                    continue
                if time.monotonic() - started > 10:
                    progress.failures = 0  # a stream that served for a while and then broke is not a streak
                progress.failures += 1
                outage = is_outage(error)
                wait = self.delay(progress.failures, outage)
                log = logger.warning if outage or progress.failures > 1 else logger.info
                log(
                    "%s of %s: %s; again in %.1f s",
                    "listing" if progress.version is None else "watch",
                    source.label,
                    error,
                    wait,
                )
                await asyncio.sleep(wait)
                continue
            if time.monotonic() - started < 1.0:
                # Ended as soon as it began (a proxy cutting streams?): back off as after a failure rather
                # than ask again in a tight loop.
                progress.failures += 1
                await asyncio.sleep(self.delay(progress.failures, True))
            else:
                progress.failures = 0  # the server ended the watch on time: open the next one at once

    async def list_source(self, source: Source) -> None:
        """List ``source`` page by page and hand the listing over whole; the watch continues from it."""
        progress = self._progress[source]
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = await _in_thread(served_page, source, token)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                break
        raw_version = metadata.get("resourceVersion")
        version = raw_version if isinstance(raw_version, str) and raw_version else None
        self.listed(source.kind, source.namespace, items, version)
        progress.version = version
        if progress.version is None:
            # Nothing to resume from: the listing stands, and the next turn lists again after a pause.
            raise WatchFailed("the listing carried no resourceVersion to watch from")
        if not progress.listed:
            progress.listed = True
            if all(p.listed for p in self._progress.values()):
                self.synced()

    def _watch(self, source: Source, progress: _Progress, loop: asyncio.AbstractEventLoop) -> None:
        """In a thread: follow one watch request to its end, handing each chunk's events to the loop."""
        assert progress.version is not None
        response = source.open_watch(progress.version, random.randint(*WATCH_SECONDS))
        self._responses.add(response)
        try:
            lines = LineBuffer()
            for chunk in response.stream(None, decode_content=False):
                if self._stopping:
                    return
                batch: list[tuple[dict[str, Any], bool]] = []
                try:
                    for line in lines.feed(chunk):
                        event = json.loads(line)
                        item = event.get("object") or {}
                        kind = event.get("type")
                        if kind == "ERROR":
                            if item.get("code") == 410:
                                raise ResourceExpired(item.get("message"))
                            raise WatchFailed(f"{item.get('code')} {item.get('message')}")
                        version = (item.get("metadata") or {}).get("resourceVersion")
                        if kind in ("ADDED", "MODIFIED", "DELETED") and _served(source.serves, item):
                            batch.append((_cut(source, item), kind == "DELETED"))
                        if isinstance(version, str) and version:
                            # Every event moves the resume point; a BOOKMARK does nothing else.
                            progress.version = version
                finally:
                    # What the resume point has passed is delivered, even when a later line ends the watch.
                    if batch:
                        loop.call_soon_threadsafe(self._deliver, source, batch)
        finally:
            self._responses.discard(response)
            with contextlib.suppress(Exception):
                response.release_conn()

    def _deliver(self, source: Source, batch: list[tuple[dict[str, Any], bool]]) -> None:
        for item, deleted in batch:
            try:
                self.seen(source.kind, item, deleted)
            except Exception:
                # One object the cache cannot take must not stop the stream for every other one.
                metadata = item.get("metadata") or {}
                logger.exception(
                    "could not take in %s %s/%s", source.kind, metadata.get("namespace"), metadata.get("name")
                )


def served_page(source: Source, token: str | None) -> Mapping[str, Any]:
    """In a thread: one page of ``source``'s listing, cut down to what this operator serves and keeps (at
    10,000 objects, whole bodies were the operator's peak: each page is cut as it arrives)."""
    page = dict(source.list_page(token))
    page["items"] = [_cut(source, item) for item in page.get("items") or () if _served(source.serves, item)]
    return page


def _served(serves: Callable[[str], bool], item: Mapping[str, Any]) -> bool:
    namespace = (item.get("metadata") or {}).get("namespace")
    return serves(namespace if isinstance(namespace, str) else "")


def _cut(source: Source, item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as the cache keeps it; whole if it cannot be cut, so that the cache, not this thread, meets
    the problem (it logs it for that one object): a failure here would end the watch at the same event
    every time it resumed, and starve every other object."""
    try:
        return source.cut(item)
    except Exception:
        return dict(item)


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a daemon thread of its own: a thread blocked in a quiet watch must not keep
    the process alive at exit, which the default executor's (joined at exit) would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(cast(T, value))
            else:
                future.set_exception(value)

    def target() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as error:
            outcome = (False, error)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(
        target=target, name=f"sundial-informer-{getattr(fn, '__name__', 'call')}", daemon=True
    ).start()
    return await future


def _list_call(custom: Any, batch: Any, kind: str, namespace: str) -> Callable[..., Any]:
    """The client call that lists (or, with ``watch=True``, watches) ``kind`` in ``namespace`` ("": all)."""
    if kind == JOBS:
        selector = f"{MANAGED_BY}={MANAGER}"
        if namespace:
            return lambda **kw: batch.list_namespaced_job(namespace, label_selector=selector, **kw)
        return lambda **kw: batch.list_job_for_all_namespaces(label_selector=selector, **kw)
    plural = {
        OBJECTS: PLURAL,
        FREEZES: FREEZE_PLURAL,
        CLUSTER_FREEZES: CLUSTER_FREEZE_PLURAL,
        APPROVALS: APPROVAL_PLURAL,
    }[kind]
    if namespace:
        return lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kw)
    return lambda **kw: custom.list_cluster_custom_object(GROUP, VERSION, plural, **kw)


def _as_kind(kind: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A freeze's view with its kind set: plans tell the two freeze kinds apart by it."""
    return lambda item: {**freeze_view(item), "kind": kind}


def kubernetes_sources(
    custom: Any,
    batch: Any,
    namespaces: tuple[str, ...] | None,
    serves: Callable[[str], bool] = lambda namespace: True,
    *,
    cluster_freezes: bool | None = None,
) -> tuple[Source, ...]:
    """The ScheduledDeployments, Sundial's Jobs, the ReleaseFreezes and the DeploymentApprovals in every
    namespace, or in each of
    ``namespaces``, through the client's ``CustomObjectsApi`` and ``BatchV1Api``; of those, the items in
    namespaces that ``serves`` (this operator's shard); ClusterReleaseFreezes too if ``cluster_freezes``
    (None: across every namespace only)."""
    timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)

    def source(
        kind: str, namespace: str, cut: Callable[..., Any], serving: Callable[[str], bool] = serves
    ) -> Source:
        call = _list_call(custom, batch, kind, namespace)

        def list_page(token: str | None) -> Mapping[str, Any]:
            args: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "_request_timeout": (5.0, 60.0)}
            if token:
                args["_continue"] = token
            return cast(dict[str, Any], json.loads(raw_body(call, **args)))

        def open_watch(version: str, seconds: int) -> Any:
            return call(
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=timeout,
            )

        return Source(kind, namespace, list_page, open_watch, cut, serving)

    scopes = namespaces if namespaces is not None else ("",)
    kinds = ((OBJECTS, plan_view), (JOBS, dict), (FREEZES, _as_kind(FREEZE_KIND)), (APPROVALS, freeze_view))
    sources = [source(kind, namespace, cut) for namespace in scopes for kind, cut in kinds]
    if namespaces is None if cluster_freezes is None else cluster_freezes:
        # Cluster-scoped, so on every shard: each shard applies it to the namespaces it serves. A namespaced
        # operator has no cluster-scoped right unless one is bound for it (--cluster-freezes).
        sources.append(source(CLUSTER_FREEZES, "", _as_kind(CLUSTER_FREEZE_KIND), lambda namespace: True))
    return tuple(sources)
