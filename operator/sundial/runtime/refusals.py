"""Why a Job has no pod: the Job controller's ``FailedCreate`` Events, read for `World.pod_refusals`.

What to do about them is decided in `sundial.decide.refusals`; this only reads them, for the Jobs that
module says are due, with the least data the API can send: a namespaced list of Events selected by the
Job's kind, name and UID and the reason (RBAC: ``list`` on ``events``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sundial.decide.observe import JobState, mapping
from sundial.runtime.apierrors import api_message
from sundial.runtime.kubeclient import raw_body

logger = logging.getLogger("sundial.runtime.refusals")

FAILED_CREATE = "FailedCreate"
"""The reason of the Job controller's Event when it cannot create a pod (its ``FailedCreatePodReason``)."""


def field_selector(job: JobState) -> str:
    """The Job controller's ``FailedCreate`` Warnings about ``job`` (this Job, not an earlier namesake)."""
    selectors = {
        "involvedObject.kind": "Job",
        "involvedObject.name": job.name,
        "reason": FAILED_CREATE,
        "type": "Warning",
    }
    if job.uid:
        selectors["involvedObject.uid"] = job.uid
    return ",".join(f"{key}={value}" for key, value in selectors.items())


def latest_message(events: Iterable[Mapping[str, Any]]) -> str | None:
    """The message of the latest Event (the recorder folds repeats into one with a count), or None."""

    def when(event: Mapping[str, Any]) -> str:
        # RFC 3339 in UTC, so the text sorts as the time; eventTime for events.k8s.io writers.
        return str(
            event.get("lastTimestamp")
            or mapping(event.get("series")).get("lastObservedTime")
            or event.get("eventTime")
            or mapping(event.get("metadata")).get("creationTimestamp")
            or ""
        )

    messages = [(when(event), str(event.get("message") or "")) for event in events]
    messages = [(at, message.strip()) for at, message in messages if message.strip()]
    return max(messages)[1] if messages else None


async def read_pod_refusals(
    call: Callable[..., Awaitable[Any]], core: client.CoreV1Api, jobs: Iterable[JobState]
) -> dict[str, str]:
    """Job name -> the API server's refusal of its pod, for each of ``jobs`` that has a ``FailedCreate``.

    A Job whose Events cannot be read is left out (logged): it is looked at again later, and a run is never
    failed on a guess.
    """
    refusals: dict[str, str] = {}
    for job in jobs:
        try:
            raw = await call(
                raw_body, core.list_namespaced_event, job.namespace, field_selector=field_selector(job)
            )
        except ApiException as error:
            logger.warning(
                "could not read the Events of Job %s/%s: %s", job.namespace, job.name, api_message(error)
            )
            continue
        message = latest_message(mapping(json.loads(raw)).get("items") or [])
        if message is not None:
            refusals[job.name] = message
    return refusals
