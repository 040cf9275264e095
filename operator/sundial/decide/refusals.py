"""Runs whose Job cannot make its pod: the API server's refusal, recorded as the run's failure.

When admission refuses a Job's pod (Pod Security ``enforce`` in the namespace, a ResourceQuota, a
LimitRange, a missing service account, a webhook or policy), the Job controller posts a Warning Event with
reason ``FailedCreate`` on the Job ("Error creating: pods ... is forbidden: violates PodSecurity ..."),
sets no Job condition for it (Kubernetes v1.37) and tries again with backoff, 1 s doubling to 60 s, until
``activeDeadlineSeconds`` fails the Job (20 minutes for the built-in targets) or for ever (a jobTemplate
without one). The run would say ``Running`` all that time.

So: a Job that still has no pod at all `POD_CREATION_GRACE` after it was fired is looked at. The
controller reads its ``FailedCreate`` Events (`World.pod_refusals`); if there is one, the run is recorded
``Failed`` with reason `POD_CREATION_REFUSED` and the API server's message, and the Job is deleted so that
the Job controller stops trying (and no pod can appear later and deploy after the run was reported
failed). The record then stands for the Job: until the Job is gone, it is read as failed (`refused_jobs`),
whatever the Events say by then. Without an Event (the Job controller has not tried yet, or is down), it
is looked at again every `POD_CREATION_RECHECK`.

Why delete rather than suspend: a suspended Job is still an active Job to everything that counts them
(``status.active``, ``concurrencyPolicy: Forbid``, a manual run's refusal), and it would stay for ever;
the evidence is kept where people look, in the run record and the Warning Event on the object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from sundial.api.models import RunRecord, RunResult
from sundial.decide.observe import JobPhase, JobState, bounded

POD_CREATION_REFUSED = "PodCreationRefused"
"""The reason of a run whose Job's pod the API server refused to create."""

POD_CREATION_GRACE = timedelta(seconds=5)
"""How long a Job may have no pod before its Events are read.

Why 5 s: the Job controller creates the pod within milliseconds of the Job, and on a refusal tries again
after 1 s and 2 s more (its queue's backoff), so 5 s covers three attempts. A refusal that clears by
itself (a ResourceQuota that a finishing pod frees, a webhook that was restarting) gets those three
chances; a permanent one (Pod Security, a LimitRange, a policy) costs the run 5 s rather than 20 minutes.
Longer would only delay the verdict on a deploy that is already late."""

POD_CREATION_RECHECK = timedelta(seconds=30)
"""How often a Job past the grace, still without a pod and without a ``FailedCreate`` Event, is looked at
again: a Job controller that has not got to it yet (busy or down) posts the Event later. One small list of
Events per such Job per 30 s."""


def awaiting_pods(job: JobState) -> bool:
    """Whether ``job`` is running without any pod (and is not being deleted)."""
    return job.phase is JobPhase.ACTIVE and job.no_pods and not job.deleting


def _since(job: JobState) -> datetime | None:
    """When the Job was made: its fired time (the operator's clock, like ``now``), else its creation."""
    return job.fired_time or job.created_time


def refusal_check_due(job: JobState, now: datetime) -> bool:
    """Whether the controller should read ``job``'s ``FailedCreate`` Events at ``now``."""
    since = _since(job)
    return awaiting_pods(job) and (since is None or since + POD_CREATION_GRACE <= now)


def refusal_check_at(job: JobState, now: datetime) -> datetime | None:
    """When to look at ``job`` next for a refused pod; None while it has pods (or is done)."""
    if not awaiting_pods(job):
        return None
    since = _since(job)
    if since is not None and since + POD_CREATION_GRACE > now:
        return since + POD_CREATION_GRACE
    return now + POD_CREATION_RECHECK


def refusal_message(job: JobState, refusal: str) -> str:
    """The run's message for ``job`` whose pod was refused with the API server's ``refusal``."""
    return bounded(
        f"the API server refused to create the pod of Job {job.name}, so nothing was deployed; the Job was "
        f"deleted: {refusal}"
    )


def refused_jobs(
    jobs: Iterable[JobState], runs: Iterable[RunRecord], refusals: Mapping[str, str], now: datetime
) -> dict[str, JobState]:
    """The Jobs whose pod was refused, by name, each as a failed Job with reason `POD_CREATION_REFUSED`.

    A Job is refused when a run record already says so under its name (the decision stands until the Job
    is gone), or when it has had no pod for the grace and ``refusals`` holds the API server's words.
    """
    recorded = {
        run.job_name: run
        for run in runs
        if run.job_name is not None and run.result is RunResult.FAILED and run.reason == POD_CREATION_REFUSED
    }
    refused: dict[str, JobState] = {}
    for job in jobs:
        record = recorded.get(job.name)
        if record is not None and job.phase is JobPhase.ACTIVE:
            message = record.message or refusal_message(job, "no details")
        elif job.name in refusals and refusal_check_due(job, now):
            message = refusal_message(job, refusals[job.name])
        else:
            continue
        refused[job.name] = replace(job, phase=JobPhase.FAILED, reason=POD_CREATION_REFUSED, message=message)
    return refused
