"""What a plan needs to know that no watch brings: small reads, each made only when a plan needs it.

- whether the deploy Job's service account exists (told before the instant, not discovered at it);
- why a failed Job failed (its pods' termination messages, the deployer's one-line reason);
- why a Job has no pod (the Job controller's ``FailedCreate`` Events, `sundial.runtime.refusals`).

Every read goes through the controller's ``call`` (off the event loop, with a deadline, on the bookkeeping
threads, never the fire path's). A read that fails is never turned into an answer that accuses: an unknown
service account is not "missing", an unreadable pod list adds no detail, unreadable Events fail no run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.decide.jobs import effective_service_account
from sundial.decide.observe import JobState, failure_detail, mapping
from sundial.runtime.apierrors import api_message
from sundial.runtime.kubeclient import raw_body
from sundial.runtime.refusals import read_pod_refusals

logger = logging.getLogger("sundial.runtime.lookups")

PRESENT_ACCOUNT_RECHECK = 300.0
"""Seconds an account found present is believed: deleting one is rare, and the next run's Job tells anyway."""
MISSING_ACCOUNT_RECHECK = 5.0
"""Seconds an account found missing is believed: short, so that creating it clears the error fast."""


class Lookups:
    def __init__(
        self,
        call: Callable[..., Awaitable[Any]],
        core: client.CoreV1Api,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._call = call
        self._core = core
        self._clock = clock
        self._service_accounts: dict[tuple[str, str], tuple[bool, float]] = {}
        self._account_reads: dict[tuple[str, str], asyncio.Future[bool]] = {}
        """Reads of an account in flight: every plan that asks meanwhile waits for the same answer."""

    async def missing_account(self, body: Mapping[str, Any]) -> str | None:
        """The deploy Job's service account when it does not exist in the object's namespace, else None."""
        spec = body.get("spec")
        if not isinstance(spec, Mapping):
            return None
        account = effective_service_account(spec)
        return account if await self.service_account_missing(body["metadata"]["namespace"], account) else None

    async def service_account_missing(self, namespace: str, name: str) -> bool:
        """Whether the service account is absent; answers are cached briefly (see the RECHECK constants).

        One read per account at a time: after a restart, the first 64 plans in one namespace all asked for
        its account at once (65 GETs in bench/failover.py's restart), where one answer serves them all.
        """
        key = (namespace, name)
        cached = self._service_accounts.get(key)
        if cached is not None and cached[1] > self._clock():
            return not cached[0]
        pending = self._account_reads.get(key)
        if pending is None:
            pending = self._account_reads[key] = asyncio.ensure_future(self._read_account(namespace, name))
            pending.add_done_callback(lambda _: self._account_reads.pop(key, None))
        return not await asyncio.shield(pending)

    async def _read_account(self, namespace: str, name: str) -> bool:
        """Whether the account exists; True when unknown (a failed read must not claim it is missing)."""
        now = self._clock()
        try:
            await self._call(raw_body, self._core.read_namespaced_service_account, name, namespace)
            exists = True
        except ApiException as error:
            if error.status != 404:
                return True  # unknown, and not remembered: the next plan asks again
            exists = False
        recheck = PRESENT_ACCOUNT_RECHECK if exists else MISSING_ACCOUNT_RECHECK
        self._service_accounts[(namespace, name)] = (exists, now + recheck)
        return exists

    async def failure_detail(self, state: JobState) -> tuple[str, str] | None:
        """(reason, message) of a failed Job, from its pods' termination messages; None if none tells."""
        try:
            raw = await self._call(
                raw_body,
                self._core.list_namespaced_pod,
                state.namespace,
                label_selector=f"job-name={state.name}",
            )
        except ApiException as error:
            logger.warning("could not read the pods of failed Job %s: %s", state.name, api_message(error))
            return None
        return failure_detail(mapping(json.loads(raw)).get("items") or [])

    async def pod_refusals(self, jobs: Iterable[JobState]) -> dict[str, str]:
        """Job name -> the API server's refusal of its pod, for those of ``jobs`` that have one."""
        due = list(jobs)
        return await read_pod_refusals(self._call, self._core, due) if due else {}
