"""What the decision reads: the world around one object, Sundial's Jobs in it, and the API's refusals.

Everything here comes from outside Sundial's control (Job metadata, pod termination messages, annotations
a user wrote), so every reader is total: a Job it cannot read is not Sundial's, a time it cannot parse is
unknown, and every message taken from outside is cut to `MESSAGE_LIMIT` before it reaches status or an Event.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sundial.api.keys import (
    ANNOTATION_FIRED,
    ANNOTATION_OVERRIDE_FREEZE,
    ANNOTATION_SCHEDULED,
    ANNOTATION_TRIGGER,
    LABEL_ROLE,
)
from sundial.api.models import RunRole
from sundial.api.trigger import request_key
from sundial.decide.jobs import JobRun, controller_reference

if TYPE_CHECKING:
    from sundial.decide.approvals import Approval
    from sundial.decide.freezes import Freeze
from sundial.decide.validation import VerdictMemo


class JobPhase(StrEnum):
    ACTIVE = "Active"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True, slots=True)
class JobState:
    """What the plan needs to know about one of Sundial's Jobs. Slotted: the cache keeps one per Job."""

    namespace: str
    name: str
    owner: str
    """The ScheduledDeployment that controls it (its controller ownerReference's name)."""
    owner_uid: str
    """That ScheduledDeployment's UID: a Job counts as an object's run only when this matches."""
    role: RunRole
    scheduled_time: datetime
    fired_time: datetime | None
    phase: JobPhase
    reason: str | None = None
    message: str | None = None
    deleting: bool = False
    """The Job has a deletionTimestamp (replaced, pruned or its owner deleted)."""
    trigger: str | None = None
    """For the Job of a manual run, the trigger request it serves (annotation ``sundial.dev/trigger``)."""
    uid: str = ""
    """The Job's own UID: the Job controller's Events about it name it (see `sundial.decide.refusals`)."""
    created_time: datetime | None = None
    """When the API server created the Job (its creationTimestamp)."""
    no_pods: bool = False
    """Active, not suspended, and without a single pod: none active, ready, terminating, succeeded or
    failed. Normal for a moment after creation; for longer, the pod is being refused
    (`sundial.decide.refusals`)."""


@dataclass(frozen=True)
class CreateFailure:
    """The API refused to create the Job for ``run``."""

    run: JobRun
    reason: str
    message: str


@dataclass(frozen=True)
class World:
    now: datetime
    body: Mapping[str, Any]
    """The ScheduledDeployment as the API server returned it."""
    siblings: Mapping[str, Mapping[str, Any]]
    """ScheduledDeployments of the namespace by name, at least those connected by dependsOn."""
    jobs: Mapping[str, JobState]
    """Sundial's Jobs in the namespace by name."""
    create_failures: tuple[CreateFailure, ...] = ()
    """Creates the API refused, recorded as failed runs. The controller reports what it did through
    `sundial.decide.reconcile.record_outcomes` instead; a World that carries them decides the same."""
    missing_service_account: str | None = None
    """The service account the run's pod would use, when it does not exist in the namespace."""
    pod_refusals: Mapping[str, str] = field(default_factory=dict)
    """Job name -> why the API server refused the Job's pod (the message of the Job controller's latest
    ``FailedCreate`` Event), for the Jobs `sundial.decide.refusals.refusal_check_due` named and the
    controller looked up."""
    gone_jobs: Mapping[str, JobState | None] = field(default_factory=dict)
    """This object's Jobs known to be deleted, by name (see `sundial.decide.records.records_with_jobs`):
    the last state a watch showed, or None when a GET found a Job that a Running record names absent."""
    approvals: Mapping[str, tuple[Approval, ...]] = field(default_factory=dict)
    """DeploymentApprovals of the namespace by the ScheduledDeployment they name, for the objects of this
    one's dependency chain (`sundial.decide.approvals`)."""
    freezes: tuple[Freeze, ...] = ()
    """The valid release freezes that concern the object's namespace (`sundial.decide.freezes`); which of
    them select the object is the plan's to decide, from its labels."""
    verdicts: VerdictMemo | None = field(default=None, compare=False)
    """Where verdicts are remembered between decisions (the controller keeps one); None: validate afresh."""


PLAN_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",
)
"""The metadata of a ScheduledDeployment that Sundial reads: identity and UID (a Job's owner, an Event's
object), the resourceVersion (the cache's order, the status write's precondition), the generation
(observedGeneration), the creation time (a runAt already past at creation is invalid), the labels (which
release freezes select it)."""
PLAN_ANNOTATIONS = (ANNOTATION_TRIGGER, ANNOTATION_OVERRIDE_FREEZE)
"""The annotations of a ScheduledDeployment that Sundial reads: the manual-run request, and whether it may
override a release freeze."""


class PlanView(dict[str, Any]):
    """What `plan_view` returns, marked as such: a view handed on (the informer cuts each item in its own
    threads, then the cache stores it) is not cut a second time on the event loop."""

    __slots__ = ()


def plan_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a ScheduledDeployment that anything in Sundial reads, as the caches keep it.

    Why: the API server's copy carries ``metadata.managedFields`` (a second, key-by-key copy of spec and
    status), and a ``kubectl apply``'d one the ``last-applied-configuration`` annotation (a third copy of
    the spec); as Python objects they were half of an object's memory, and no plan, Job or Event reads
    them. Kept: ``apiVersion`` and ``kind`` (validation checks them), `PLAN_METADATA`, the annotations in
    `PLAN_ANNOTATIONS`, ``spec`` whole (validation and the Job read all of it) and ``status`` whole (the
    run history). A key absent from ``body`` stays absent, so every ``get`` reads as it did. The copy is
    `compact`: equal to what it copies, with its strings shared. A reader of another field must add it
    here (tests/unit/test_plan_view.py checks that a plan from the view equals one from the whole body).
    A view is returned as it is.
    """
    if isinstance(body, PlanView):
        return body
    view = {key: body[key] for key in ("apiVersion", "kind", "spec", "status") if key in body}
    metadata = mapping(body.get("metadata"))
    kept = {key: metadata[key] for key in PLAN_METADATA if key in metadata}
    annotations = metadata.get("annotations")
    if isinstance(annotations, Mapping):
        kept["annotations"] = {key: annotations[key] for key in PLAN_ANNOTATIONS if key in annotations}
    elif "annotations" in metadata:
        kept["annotations"] = annotations  # not a mapping: left for the readers, which are total, to ignore
    view["metadata"] = kept
    return PlanView(cast(dict[str, Any], compact(view)))


def compact(value: object) -> object:
    """A copy of a JSON value with every string interned, equal to ``value``.

    Why: each parsed body has its own copy of every key and of values that thousands of objects share
    (condition types, reasons and messages, "True", an image name); interned, one copy serves them all.
    Measured (bench/cache_memory.py) it halves a cached object's memory again. Interned strings are freed
    like any other once nothing holds them.
    """
    if isinstance(value, Mapping):
        return {
            sys.intern(key) if isinstance(key, str) else key: compact(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [compact(item) for item in value]
    if isinstance(value, str):
        return sys.intern(value)
    return value


def missing_account_message(world: World) -> str:
    """Why a run cannot start while `World.missing_service_account` is set, and what to do about it."""
    namespace = world.body["metadata"]["namespace"]
    return (
        f"service account {world.missing_service_account!r} does not exist in namespace {namespace!r}, so "
        "the deploy Job could not start; create it (manifests/deployer-rbac-example.yaml shows one with the "
        "rights a Deployment target needs) or set spec.serviceAccountName"
    )


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 instant from metadata, or None when it is missing or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # RFC 3339 carries an offset; a naive time (a hand-edited annotation) is as unreadable as garbage, and
    # letting it through would crash the run records, which hold only aware instants.
    return moment if moment.tzinfo is not None else None


def job_state_from_body(body: Mapping[str, Any]) -> JobState | None:
    """Read one of Sundial's Jobs; None for a Job that lacks Sundial's labels and annotations."""
    metadata = mapping(body.get("metadata"))
    labels = mapping(metadata.get("labels"))
    annotations = mapping(metadata.get("annotations"))
    # Whose Job this is, the controller ownerReference alone says (labels are for selecting, not trust):
    # a Job that merely carries Sundial's labels is somebody else's and is never counted as a run.
    reference = controller_reference(metadata)
    scheduled = parse_time(annotations.get(ANNOTATION_SCHEDULED))
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if reference is None or scheduled is None or not isinstance(name, str) or not isinstance(namespace, str):
        return None
    role = RunRole.DEPENDENCY if labels.get(LABEL_ROLE) == "dependency" else RunRole.DEPLOY
    trigger = annotations.get(ANNOTATION_TRIGGER)
    status = mapping(body.get("status"))
    phase, reason, message = JobPhase.ACTIVE, None, None
    decided = False
    for condition in status.get("conditions") or []:
        if not isinstance(condition, Mapping) or condition.get("status") != "True":
            continue
        # The Job controller has settled the outcome and is finishing: its pods are not the question.
        decided = decided or condition.get("type") in ("FailureTarget", "SuccessCriteriaMet", "Suspended")
        if condition.get("type") == "Complete":
            phase, reason, message = JobPhase.SUCCEEDED, "JobSucceeded", "the Job completed"
        elif condition.get("type") == "Failed":
            phase = JobPhase.FAILED
            reason = "JobFailed"
            detail = condition.get("message") or condition.get("reason") or "the Job failed"
            message = f"the Job failed: {bounded(str(detail))}"
    return JobState(
        namespace=namespace,
        name=name,
        owner=reference["name"],
        owner_uid=reference["uid"],
        role=role,
        scheduled_time=scheduled,
        fired_time=parse_time(annotations.get(ANNOTATION_FIRED)),
        phase=phase,
        reason=reason,
        message=message,
        deleting=bool(metadata.get("deletionTimestamp")),
        trigger=request_key(trigger) if isinstance(trigger, str) and trigger else None,
        uid=str(metadata.get("uid") or ""),
        created_time=parse_time(metadata.get("creationTimestamp")),
        no_pods=phase is JobPhase.ACTIVE
        and not decided
        and mapping(body.get("spec")).get("suspend") is not True
        and not _has_pods(status),
    )


def _has_pods(status: Mapping[str, Any]) -> bool:
    """Whether a Job's status counts any pod, running or finished (or not yet counted)."""
    uncounted = mapping(status.get("uncountedTerminatedPods"))
    return any(
        status.get(count) for count in ("active", "ready", "terminating", "succeeded", "failed")
    ) or any(uncounted.get(kind) for kind in ("succeeded", "failed"))


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one: untrusted JSON read without a type check."""
    return value if isinstance(value, Mapping) else {}


MESSAGE_LIMIT = 1024
"""Messages taken from Jobs and pods are cut to this many characters: they end up in status and Events."""


def bounded(text: str) -> str:
    """``text`` cut to `MESSAGE_LIMIT` characters, with an ellipsis when it was cut."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


_REASON_PREFIX = re.compile(r"^([A-Z][A-Za-z0-9]{1,63}): (.+)$", flags=re.DOTALL)


def failure_detail(pods: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """Why a Job failed, from its pods' termination messages: ``(reason, message)``, or None.

    Sundial's deployers end with ``<Reason>: <one line>``; that reason is kept. Any other container's
    message (a user's jobTemplate) is reported as ``JobFailed`` with the message as written.
    """
    for pod in pods:
        status = mapping(mapping(pod).get("status"))
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            container = mapping(container)
            terminated = mapping(mapping(container.get("state")).get("terminated"))
            message = str(terminated.get("message") or "").strip()
            if terminated.get("exitCode") in (None, 0) or not message:
                continue
            line = bounded(" ".join(message.splitlines()[-1:]).strip() or message)
            match = _REASON_PREFIX.match(line)
            if match:
                return match.group(1), f"the deploy failed: {match.group(2)}"
            return "JobFailed", f"container {bounded(str(container.get('name')))} failed: {line}"
    return None
