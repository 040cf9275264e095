"""Manual runs: serving a trigger request (``kubectl sundial trigger``), or recording why it is refused.

A request is served once. The status (``lastTrigger`` and the manual run records) and the manual run's Job
are the memory, so a request already served is never run again, whichever of them survived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sundial.api.durations import format_duration
from sundial.api.keys import ANNOTATION_OVERRIDE_FREEZE
from sundial.api.models import ConcurrencyPolicy, RunResult, RunRole
from sundial.api.reasons import Invalid
from sundial.api.timestamps import format_utc
from sundial.api.trigger import (
    FUTURE_TOLERANCE,
    BadTrigger,
    parse_request,
    pending_request,
    request_key,
    shown,
)
from sundial.decide.approvals import approval_policy
from sundial.decide.draft import Draft
from sundial.decide.events import Event
from sundial.decide.freezes import FROZEN, FreezeVerdict, freeze_verdict
from sundial.decide.jobs import JobRun
from sundial.decide.observe import JobPhase, JobState, World, mapping, missing_account_message
from sundial.decide.validation import Valid
from sundial.timing.names import manual_job_name
from sundial.timing.occurrences import Occurrence


@dataclass(frozen=True)
class _Request:
    key: str
    """The request's identity in status and on its Job (`sundial.api.trigger.request_key`)."""
    text: str
    """The annotation's value as written."""


def _unserved_request(world: World, draft: Draft) -> _Request | None:
    """The trigger annotation's request, if it has not been served (status and Jobs are the memory)."""
    text = pending_request(mapping(world.body["metadata"]).get("annotations"))
    if text is None:
        return None
    key = request_key(text)
    if key == draft.last_trigger:
        return None
    if key in draft.manual:
        draft.last_trigger = key  # its record or its Job says it was served; the status lagged behind
        return None
    return _Request(key, text)


def refuse_trigger_of_invalid(world: World, draft: Draft, invalid: Invalid) -> None:
    """An invalid object runs nothing, not even on request: record the request refused, with a Warning."""
    unserved = _unserved_request(world, draft)
    if unserved is None:
        return
    try:
        instant = parse_request(unserved.text).requested_at
    except BadTrigger:
        instant = world.now
    record = draft.record_manual(
        unserved.key,
        instant,
        RunResult.SKIPPED,
        invalid.reason.value,
        f"trigger {shown(unserved.text)} refused: the object is invalid "
        f"({invalid.reason.value}: {invalid.message})",
    )
    draft.events.append(Event("Warning", "TriggerRefused", record.message or ""))


def serve_trigger(world: World, me: Valid, own_jobs: Sequence[JobState], draft: Draft) -> None:
    """Run the object now for an unserved trigger request, or record why not.

    A manual run is this object's own Job and nothing else: its dependencies do not run and are not waited
    for, and suspend does not stop it (suspend stops the schedule; a trigger is an explicit request, as
    ``kubectl create job --from=cronjob/...`` is for a suspended CronJob). It never replaces a running
    Job: unless concurrencyPolicy is Allow it is refused while a Job of this object runs.
    """
    unserved = _unserved_request(world, draft)
    if unserved is None:
        return
    request = unserved.key
    try:
        instant = parse_request(unserved.text).requested_at
    except BadTrigger as error:
        draft.record_manual(request, world.now, RunResult.SKIPPED, "InvalidTrigger", str(error))
        return
    refused = f"trigger {request} refused"
    if instant > world.now + FUTURE_TOLERANCE:
        message = (
            f"{refused}: it is dated {format_duration(instant - world.now)} ahead of the operator's clock "
            f"({format_utc(world.now)}); write the time of the request"
        )
        draft.record_manual(request, instant, RunResult.SKIPPED, "InvalidTrigger", message)
        return
    if instant < world.now - me.timing.deadline:
        seconds = int(me.timing.deadline.total_seconds())
        message = (
            f"{refused}: it was made {format_duration(world.now - instant)} ago, more than "
            f"startingDeadlineSeconds ({seconds}); trigger again to run now"
        )
        draft.record_manual(request, instant, RunResult.SKIPPED, "TriggerExpired", message)
        return
    if approval_policy(world.body) is not None:
        message = (
            f"{refused}: spec.approval.required is true, and a manual run would deploy without an approval; "
            "approve the scheduled run instead (kubectl sundial approve NAME --run TIME)"
        )
        draft.record_manual(request, instant, RunResult.SKIPPED, "ApprovalRequired", message)
        return
    frozen = _freeze_on(world, me, instant)
    overridden = frozen is not None and _overrides_freeze(world, unserved.text)
    if frozen is not None and not overridden:
        message = (
            f"{refused}: {frozen.freeze.ref} ({frozen.freeze.reason}) is on until "
            f"{format_utc(frozen.until)}; to deploy anyway, trigger again with "
            f"kubectl sundial trigger {me.name} -n {world.body['metadata']['namespace']} --override-freeze "
            "(recorded on the run's Job and in an Event)"
        )
        draft.record_manual(request, instant, RunResult.SKIPPED, FROZEN, message)
        return
    if world.missing_service_account is not None:
        message = missing_account_message(world)
        draft.record_manual(request, instant, RunResult.FAILED, "ServiceAccountNotFound", message)
        return
    running = [job.name for job in own_jobs if job.phase is JobPhase.ACTIVE and not job.deleting] + [
        run.job_name for run in draft.creates
    ]
    policy = me.spec.concurrency_policy
    if running and policy is not ConcurrencyPolicy.ALLOW:
        message = (
            f"{refused}: Job {', '.join(running)} of this object is running and concurrencyPolicy is "
            f"{policy.value} (a manual run never replaces a running Job); trigger again once it has finished"
        )
        draft.record_manual(request, instant, RunResult.SKIPPED, "ConcurrencyForbidden", message)
        return
    run = JobRun(
        job_name=manual_job_name(me.name, request, instant),
        role=RunRole.DEPLOY.value,
        scheduled_time=instant,
        local_time=instant.astimezone(me.timing.zone),
        time_zone=me.spec.time_zone,
        fired_time=world.now,
        trigger=request,
        start_by=instant + me.timing.deadline,
        overrides_freeze=frozen.freeze.ref if frozen is not None else None,
    )
    draft.create(run, world.create_failures)
    if frozen is not None and run in draft.creates:
        draft.events.append(
            Event(
                "Warning",
                "FreezeOverridden",
                f"trigger {request} runs although {frozen.freeze.ref} ({frozen.freeze.reason}) is on until "
                f"{format_utc(frozen.until)}: the request said {ANNOTATION_OVERRIDE_FREEZE}",
            )
        )


def _freeze_on(world: World, me: Valid, instant: datetime) -> FreezeVerdict | None:
    """A freeze, Hold or Defer, that stops the object deploying now: a manual run respects either."""
    run = Occurrence(name=me.name, instant=instant, zone=me.timing.zone)
    namespace = world.body["metadata"]["namespace"]
    return freeze_verdict(run, namespace, world.body, world.siblings, world.freezes, world.now)


def _overrides_freeze(world: World, request: str) -> bool:
    """The override is for this request only: an annotation left from an earlier one does not carry over."""
    annotations = mapping(mapping(world.body["metadata"]).get("annotations"))
    value = annotations.get(ANNOTATION_OVERRIDE_FREEZE)
    return isinstance(value, str) and value.strip() == request.strip()
