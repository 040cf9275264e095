"""Is a changed object done? The waiting rules of the ``patch`` target, pure and table-tested.

They follow what Flux, ``kubectl wait`` and kstatus (sigs.k8s.io/cli-utils) users already know, in this
order:

1. An object being deleted has failed: the change cannot land.
2. The controller must have seen the change: while ``status.observedGeneration`` is below
   ``metadata.generation`` (or below the generation the patch produced) the change is in progress. An
   object without ``observedGeneration`` is judged by its conditions alone.
   A Flux reconcile request (annotation ``reconcile.fluxcd.io/requestedAt``) must be handled, too:
   ``status.lastHandledReconcileAt`` equal to it, since a request alone changes no generation.
3. With ``waitFor.condition`` named, that condition must have ``waitFor.status`` (default ``"True"``), and
   if the condition has an ``observedGeneration`` of its own it must be current too. Only a ``Stalled=True``
   condition fails it early; otherwise the wait ends at the timeout, with the condition's message.
4. Without one, kstatus' generic rules and the kinds people deploy through:
   - ``Stalled=True`` fails, ``Reconciling=True`` is in progress;
   - a Deployment is judged as ``kubectl rollout status`` judges it (`sundial.deploy.kubernetes`);
   - an Argo Rollout by ``status.phase``: Healthy is done, Degraded has failed (its message says why,
     e.g. a failed analysis), anything else is in progress;
   - an Argo CD Application by its last operation, sync and health: Synced and Healthy is done, an
     operation that Failed or Errored has failed;
   - a ``Ready`` (Flux, most controllers) or ``Healthy`` condition: True is done; False is in progress
     while its reason says it is progressing, and has failed for any other reason (Flux's own rule: once
     the controller caught up with the generation, Ready=False means the reconcile failed);
   - no condition at all: done as soon as the controller caught up (rule 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sundial.deploy import DeployFailed

FLUX_RECONCILE_REQUEST = "reconcile.fluxcd.io/requestedAt"


class Progress(Enum):
    IN_PROGRESS = "InProgress"
    CURRENT = "Current"
    FAILED = "Failed"


@dataclass(frozen=True)
class Readiness:
    progress: Progress
    message: str
    """What a person would want to read: while waiting, what is awaited; on failure, the object's own
    words."""
    reason: str = ""
    """On failure: one CamelCase word for the run's record."""


@dataclass(frozen=True)
class WaitFor:
    condition: str | None = None
    """A condition type to wait for; None: the rules above."""
    status: str = "True"


PROGRESSING_REASONS = frozenset(
    {"Progressing", "ProgressingWithRetry", "Reconciling", "DependencyNotReady", "ArtifactInStorage"}
)
"""Reasons of a Ready=False condition that mean "still working": Flux's (fluxcd/pkg/apis/meta) and the
generic one. Any other reason of Ready=False, once the generation is observed, is a failure."""


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = obj.get("status")
    found: dict[str, Mapping[str, Any]] = {}
    if not isinstance(status, Mapping):
        return found
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and isinstance(condition.get("type"), str):
            found[condition["type"]] = condition
    return found


def _said(condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    return ": ".join(part for part in (str(reason), " ".join(str(message).split())) if part)


def _int(value: object) -> int | None:
    """A generation; Argo Rollouts writes its observedGeneration as a string of digits."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{str(obj.get('kind', 'object')).lower()}/{metadata.get('name', '?')}"


def readiness(obj: Mapping[str, Any], wait_for: WaitFor, patched_generation: int | None = None) -> Readiness:
    """Where ``obj`` stands after the change that produced ``patched_generation`` (None: unknown)."""
    what = describe(obj)
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Readiness(Progress.FAILED, f"{what} is being deleted", "TargetDeleted")
    generation = _int(metadata.get("generation"))
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    observed = _int(status.get("observedGeneration"))
    wanted = max(g for g in (generation, patched_generation, 0) if g is not None)
    if observed is not None and observed < wanted:
        return Readiness(
            Progress.IN_PROGRESS, f"waiting for the controller to observe generation {wanted} (at {observed})"
        )
    requested = (metadata.get("annotations") or {}).get(FLUX_RECONCILE_REQUEST)
    if requested is not None and status.get("lastHandledReconcileAt") != requested:
        # Flux answers a reconcile request by copying it here once handled; until then its conditions are
        # the previous reconcile's (a request alone does not change the generation).
        return Readiness(
            Progress.IN_PROGRESS, f"waiting for the controller to handle the reconcile request {requested}"
        )
    conditions = _conditions(obj)
    stalled = conditions.get("Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return Readiness(Progress.FAILED, f"{what} is stalled: {_said(stalled)}", "Stalled")
    if wait_for.condition is not None:
        return _named(what, conditions.get(wait_for.condition), wait_for, wanted)
    reconciling = conditions.get("Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Readiness(Progress.IN_PROGRESS, f"{what} is reconciling: {_said(reconciling)}")
    kind, group = obj.get("kind"), str(obj.get("apiVersion") or "").partition("/")[0]
    if kind == "Deployment" and group == "apps":
        return _deployment(obj)
    if kind == "Rollout" and group == "argoproj.io":
        return _rollout(what, status)
    if kind == "Application" and group == "argoproj.io":
        return _application(what, obj, status)
    for name in ("Ready", "Healthy"):
        condition = conditions.get(name)
        if condition is not None:
            return _ready(what, name, condition, wanted)
    return Readiness(Progress.CURRENT, f"{what} has no condition to wait for, and its controller caught up")


def _stale(condition: Mapping[str, Any], wanted: int) -> bool:
    observed = _int(condition.get("observedGeneration"))
    return observed is not None and observed < wanted


def _named(what: str, condition: Mapping[str, Any] | None, wait_for: WaitFor, wanted: int) -> Readiness:
    name = wait_for.condition
    if condition is None:
        return Readiness(Progress.IN_PROGRESS, f"waiting for {what} to have condition {name}")
    if _stale(condition, wanted):
        return Readiness(Progress.IN_PROGRESS, f"waiting for condition {name} of generation {wanted}")
    if condition.get("status") == wait_for.status:
        return Readiness(Progress.CURRENT, f"{what} has {name}={wait_for.status}")
    said = _said(condition)
    now = f"{condition.get('status')}: {said}" if said else str(condition.get("status"))
    return Readiness(Progress.IN_PROGRESS, f"waiting for {name}={wait_for.status} (it is {now})")


def _ready(what: str, name: str, condition: Mapping[str, Any], wanted: int) -> Readiness:
    if _stale(condition, wanted):
        return Readiness(Progress.IN_PROGRESS, f"waiting for condition {name} of generation {wanted}")
    state = condition.get("status")
    if state == "True":
        return Readiness(Progress.CURRENT, f"{what} is {name}: {_said(condition)}".rstrip(": "))
    if state == "False" and condition.get("reason") not in PROGRESSING_REASONS:
        reason = str(condition.get("reason") or "NotReady")
        return Readiness(Progress.FAILED, f"{what} is not {name}: {_said(condition)}", reason)
    return Readiness(Progress.IN_PROGRESS, f"waiting for {what} to be {name} ({_said(condition) or state})")


def _deployment(obj: Mapping[str, Any]) -> Readiness:
    from sundial.deploy.kubernetes import rollout_state

    try:
        state = rollout_state(obj)
    except DeployFailed as error:
        return Readiness(Progress.FAILED, str(error), error.reason)
    return Readiness(Progress.CURRENT if state.done else Progress.IN_PROGRESS, state.progress)


def _rollout(what: str, status: Mapping[str, Any]) -> Readiness:
    phase, message = status.get("phase"), " ".join(str(status.get("message") or "").split())
    said = f"{phase}{': ' + message if message else ''}"
    if phase == "Healthy":
        return Readiness(Progress.CURRENT, f"{what} is {said}")
    if phase == "Degraded":
        return Readiness(Progress.FAILED, f"{what} is {said}", "RolloutDegraded")
    return Readiness(Progress.IN_PROGRESS, f"waiting for {what} to be Healthy (it is {said or 'unknown'})")


def _application(what: str, obj: Mapping[str, Any], status: Mapping[str, Any]) -> Readiness:
    # The `operation` that `argocd app sync` writes stays until the application controller takes it up
    # (and moves it to status.operationState); until then, an operationState is the previous sync's.
    if obj.get("operation"):
        return Readiness(
            Progress.IN_PROGRESS, f"waiting for the application controller to start the sync of {what}"
        )
    operation = status.get("operationState") if isinstance(status.get("operationState"), Mapping) else {}
    assert isinstance(operation, Mapping)
    phase = operation.get("phase")
    if phase in ("Failed", "Error"):
        message = " ".join(str(operation.get("message") or "").split())
        return Readiness(Progress.FAILED, f"{what}: sync {phase}: {message}".rstrip(": "), f"Sync{phase}")
    if phase in ("Running", "Terminating"):
        return Readiness(Progress.IN_PROGRESS, f"waiting for the sync of {what} to finish")
    sync = (status.get("sync") or {}).get("status") if isinstance(status.get("sync"), Mapping) else None
    health = status.get("health") if isinstance(status.get("health"), Mapping) else {}
    assert isinstance(health, Mapping)
    if sync == "Synced" and health.get("status") == "Healthy":
        return Readiness(Progress.CURRENT, f"{what} is Synced and Healthy")
    if health.get("status") == "Degraded":
        message = " ".join(str(health.get("message") or "").split())
        return Readiness(
            Progress.FAILED, f"{what} is Degraded: {message}".rstrip(": "), "ApplicationDegraded"
        )
    return Readiness(
        Progress.IN_PROGRESS,
        f"waiting for {what} to be Synced and Healthy (it is {sync or 'unknown'}, "
        f"{health.get('status') or 'unknown'})",
    )
