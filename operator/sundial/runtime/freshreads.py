"""Reading an object fresh before its Job is created: one request per object, or one LIST for a burst.

Why read at all: the cache is as fresh as its watch, whose lag is milliseconds normally and unbounded when
a stream is stuck; a spec changed or an object deleted just before its instant must not be fired from the
copy before. So every fire plans from an answer the API server gave *after* the run was found due. That is
the one property this module keeps, however reads are grouped: **an answer always comes from a request sent
after the read was asked for.** A read asked for while a LIST of its namespace is already on its way waits
for the next request.

Why group: under a client budget (``--kube-api-qps``) a GET per Job is half of what a burst spends. The
first read of a burst goes at once, alone; reads asked for while one is on its way are served together by
one LIST of the namespace, when that costs fewer requests (its pages) than the GETs it replaces. Without a
budget requests are not what is scarce and every read is its own GET, sent at once: grouping would make the
first reads of a burst wait (measured: first Job 110-120 ms after the instant instead of 50-56 ms), and a
LIST costs CPU for every object of the namespace.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

LIST_PAGE = 2000
"""Objects per page of a fresh LIST. Larger than the informer's 500: every page is a request of the budget,
and a burst's groups are a LIST each (measured at 1,000 objects in one namespace, 20 QPS: 64 pages of 500
in 32 groups were 3 s of the burst's 53)."""


def read_by_list(waiting: int, in_namespace: int) -> bool:
    """Whether ``waiting`` reads of objects in a namespace of ``in_namespace`` are one LIST, not GETs: when
    its pages are fewer requests than the GETs."""
    return waiting > max(1, math.ceil(in_namespace / LIST_PAGE))


Page = Mapping[str, Any]


class FreshReads:
    """Fresh reads of ScheduledDeployments, grouped per namespace (see the module's docstring)."""

    def __init__(
        self,
        get: Callable[[str, str], Awaitable[dict[str, Any] | None]],
        list_page: Callable[[str, str | None], Awaitable[Page]],
        in_namespace: Callable[[str], int],
        budgeted: bool,
    ) -> None:
        """``get(namespace, name)`` is the object or None when it does not exist; ``list_page(namespace,
        continue_token)`` one page of a LIST; ``in_namespace(namespace)`` how many objects a LIST reads;
        ``budgeted`` whether a client-side request budget is in force (without one, nothing is grouped)."""
        self._get = get
        self._list_page = list_page
        self._in_namespace = in_namespace
        self._budgeted = budgeted
        self._waiting: dict[str, list[tuple[str, asyncio.Future[dict[str, Any] | None]]]] = {}
        self._busy: set[str] = set()
        """Namespaces with a read on its way: a read asked for now waits for the next group."""
        self._tasks: set[asyncio.Task[None]] = set()
        """Serving loops: held here so that they are not collected."""

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the API server has it now (None: it does not exist), from a request sent after this
        call began; raises what the request raised."""
        if not self._budgeted:
            return await self._get(namespace, name)
        if namespace not in self._busy:
            # Nothing on its way: this read goes at once, alone, before the reconciles started with it have
            # planned (the first Job of a burst waits for no LIST); the reads asked for meanwhile gather.
            self._busy.add(namespace)
            try:
                return await self._get(namespace, name)
            finally:
                self._serve_next(namespace)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(namespace, []).append((name, future))
        if namespace not in self._busy:
            self._busy.add(namespace)
            self._serve_next(namespace)
        return await future

    def _serve_next(self, namespace: str) -> None:
        """Serve the reads waiting in ``namespace`` (the namespace stays busy), or free it if none waits."""
        if namespace not in self._waiting:
            self._busy.discard(namespace)
            return
        task = asyncio.get_running_loop().create_task(self._serve(namespace), name=f"fresh reads {namespace}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, namespace: str) -> None:
        """Answer the reads of one namespace, a group at a time, until none waits.

        Each group is taken whole before its request is sent, so every read in it was asked for before the
        request left. A group's GETs are awaited before the next group is taken, so that the reads asked for
        meanwhile gather into one LIST.
        """
        try:
            while group := self._waiting.pop(namespace, None):
                group = [(name, future) for name, future in group if not future.done()]
                if not group:
                    continue
                if read_by_list(len(group), self._in_namespace(namespace)):
                    await self._answer_by_list(namespace, group)
                else:
                    await asyncio.gather(*(self._answer_by_get(namespace, *read) for read in group))
        finally:
            self._busy.discard(namespace)

    async def _answer_by_get(
        self, namespace: str, name: str, future: asyncio.Future[dict[str, Any] | None]
    ) -> None:
        try:
            body = await self._get(namespace, name)
        except Exception as error:
            _settle(future, error=error)
        else:
            _settle(future, body)

    async def _answer_by_list(
        self, namespace: str, group: list[tuple[str, asyncio.Future[dict[str, Any] | None]]]
    ) -> None:
        wanted = {name for name, _ in group}
        token: str | None = None
        found: dict[str, dict[str, Any]] = {}
        try:
            while True:
                page = await self._list_page(namespace, token)
                for item in page.get("items") or ():
                    listed = (item.get("metadata") or {}).get("name")
                    if listed in wanted:
                        found[listed] = item
                token = (page.get("metadata") or {}).get("continue") or None
                if token is None:
                    break
        except Exception as error:
            for _, future in group:
                _settle(future, error=error)
            return
        for name, future in group:
            _settle(future, found.get(name))  # not in a complete listing: it does not exist


def _settle(
    future: asyncio.Future[dict[str, Any] | None],
    body: dict[str, Any] | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    """Answer a read unless its reader has given up (a cancelled reconcile)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(body)
