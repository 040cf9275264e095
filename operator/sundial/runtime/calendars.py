"""Reading the holiday calendars that release freezes name: ConfigMap keys holding .ics files.

A freeze's windows from a calendar are only as current as the operator's copy of the file, so every replica
reads each calendar when a freeze first names it and again every `REFRESH_SECONDS` (an edited ConfigMap
applies within that time; a watch on every ConfigMap of the cluster would be a far wider right for the
same). The cache compiles the freezes again from what was read (`sundial.runtime.cache.Cache.calendar_read`);
a calendar that cannot be read makes its freeze invalid (``CalendarNotFound``), which its status says.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.decide.freezes import CalendarRef
from sundial.runtime.apierrors import api_message
from sundial.runtime.cache import Cache, Changes
from sundial.runtime.kubeclient import raw_body

logger = logging.getLogger("sundial.runtime.calendars")

REFRESH_SECONDS = 60.0
FIRST_READ_WAIT_SECONDS = 10.0
"""How long a replica that becomes active waits for the first read of the calendars before it plans:
a freeze whose calendar is not read yet freezes nothing."""


class CalendarReader:
    def __init__(
        self,
        cache: Cache,
        api_client: Any,
        call: Callable[..., Awaitable[Any]],
        follow: Callable[[Changes], None],
    ) -> None:
        self._cache = cache
        self._core = client.CoreV1Api(api_client)
        self._call = call
        self._follow = follow
        self._reading: set[CalendarRef] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def unread(self) -> set[CalendarRef]:
        """The calendars some freeze names that have not been read yet."""
        return self._cache.calendars_wanted() - set(self._cache.calendar_texts)

    def read_new(self) -> None:
        """Start reading each calendar a freeze names that has not been read (nor is being read)."""
        for ref in self.unread() - self._reading:
            self._reading.add(ref)
            task = asyncio.get_running_loop().create_task(self._read_first(ref))
            self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _read_first(self, ref: CalendarRef) -> None:
        try:
            await self._read_all([ref])
        finally:
            self._reading.discard(ref)

    async def run(self) -> None:
        """Read every named calendar again every `REFRESH_SECONDS`, until cancelled."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            await self._read_all(self._cache.calendars_wanted())

    async def _read_all(self, refs: Iterable[CalendarRef]) -> None:
        for ref in refs:
            try:
                text = await self._read(ref)
            except Exception as error:  # an outage: keep the copy we have, try again next round
                logger.warning("could not read the calendar %s/%s key %s: %s", *ref, error)
                continue
            self._follow(self._cache.calendar_read(ref, text))

    async def _read(self, ref: CalendarRef) -> str | None:
        namespace, name, key = ref
        try:
            raw = await self._call(raw_body, self._core.read_namespaced_config_map, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            if error.status == 403:
                logger.warning("may not read ConfigMap %s/%s: %s", namespace, name, api_message(error))
                return None
            raise
        data = json.loads(raw).get("data") or {}
        text = data.get(key)
        return text if isinstance(text, str) else None
