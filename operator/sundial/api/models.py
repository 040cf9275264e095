"""The ScheduledDeployment API (``sundial.dev/v1alpha1``): what users write, and what the operator reports.

The CRD in ``crds/`` is generated from these models by ``python -m sundial.api.crd``: every field's docstring
becomes its schema ``description`` (``kubectl explain`` shows it), so the docstrings are user documentation.

Notes
-----
Field names are snake_case in Python and camelCase on the wire (``alias_generator=to_camel``). Optional
fields default to ``None`` and are *omitted* from the wire form rather than sent as ``null``: the API server
prunes ``null`` from fields not marked ``nullable`` (so ``runAt: null`` means "unset", as users expect),
and the CEL rules can test presence with ``has()``.

Only shapes and simple bounds live here. Whether ``timeZone`` names a zone, ``schedule`` parses or
``runAt`` exists on the clock is decided by `sundial.timing.schedule`, because those checks need the zone and
the DST policy together and must produce the specific condition reasons.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from sundial.api.keys import API_VERSION, GROUP, KIND, PLURAL, SHORT_NAME, SINGULAR, VERSION
from sundial.api.timestamps import format_utc, format_with_offset

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "SHORT_NAME", "SINGULAR", "VERSION"]
"""Re-exported: the CRD is generated from this module, and they name what it defines."""


class NonexistentTimePolicy(StrEnum):
    """What to do with a local time that falls in a gap (clocks jump forward over it)."""

    SHIFT_FORWARD = "ShiftForward"
    SKIP = "Skip"
    REJECT = "Reject"


class AmbiguousTimePolicy(StrEnum):
    """Which occurrence of a local time that happens twice (clocks go back over it) to use."""

    EARLIER = "Earlier"
    LATER = "Later"
    REJECT = "Reject"


DEFAULT_SERVICE_ACCOUNT = "sundial-deployer"
MAX_RUN_RECORDS = 10
MAX_UPCOMING = 3

RUN_AT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?$"
"""The lexical form of ``runAt``; shared by the parser and the CRD's CEL rule so both accept the same text."""

LEAD_TIME_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
"""The lexical form of ``leadTime``: a Go-style duration restricted to h, m and s, in that order."""

AWS_REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$"
"""An AWS region name: eu-west-1, us-gov-west-1, ap-southeast-5, cn-north-1, us-iso-east-1.

Why a pattern: the region becomes the host name boto3 connects to (``ecs.<region>.amazonaws.com``), so a
value such as ``evil.example/`` must never reach it; and a typo is better refused at ``kubectl apply``."""
REGION_MESSAGE = "region must be an AWS region name such as eu-west-1 or us-gov-west-1"

MAX_HISTORY_LIMIT = 100
"""The most finished Jobs of one kind an object may keep: enough to look back on, few enough that one
object cannot fill a namespace's Job quota or the operator's cache."""


def _cel(rule: str, message: str) -> dict[str, JsonValue]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message}]}


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
"""An instant, written as RFC 3339 in UTC with seconds: ``2027-03-14T07:30:00Z``."""

UtcMillisTime = Annotated[
    AwareDatetime,
    AfterValidator(_as_utc),
    PlainSerializer(lambda value: format_utc(value, millis=True), return_type=str, when_used="json"),
]
"""An instant measured by the operator, with milliseconds: ``2027-03-14T07:30:00.042Z``."""

LocalTimestamp = Annotated[
    AwareDatetime,
    PlainSerializer(format_with_offset, return_type=str, when_used="json"),
]
"""An instant as the clock on the wall showed it, with its offset: ``2027-03-14T03:30:00-04:00``."""


class ApiModel(BaseModel):
    """Base for the strict, user-facing parts of the API: camelCase on the wire, unknown fields refused.

    Unknown fields are refused so that ``sundial preview`` catches typos such as ``runat``; the API server
    prunes them instead (or refuses them, with ``kubectl``'s default strict field validation).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class OpenModel(BaseModel):
    """Base for embedded Kubernetes shapes: the fields we check are typed, everything else is kept as is."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)


class StatusModel(BaseModel):
    """Base for the status: camelCase, and tolerant of fields it does not know when read back."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


class ConcurrencyPolicy(StrEnum):
    """What a cron schedule does when a run is due while the previous one is still running."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class DstPolicy(ApiModel):
    """How local times that a daylight-saving change skips or repeats are handled."""

    nonexistent_time: NonexistentTimePolicy = NonexistentTimePolicy.SHIFT_FORWARD
    """For a local time the clocks skip (02:30 when they jump from 02:00 to 03:00). ShiftForward (default):
    run at the instant that time would have had before the change, i.e. 03:30 new time. Skip: do not run;
    the occurrence is recorded as skipped. Reject: the object is invalid if its runAt is such a time, or if
    its schedule can hit one within the next two years."""

    ambiguous_time: AmbiguousTimePolicy = AmbiguousTimePolicy.EARLIER
    """For a local time the clocks show twice (01:30 when they go back from 02:00 to 01:00). Earlier
    (default): run at the first occurrence. Later: run at the second. Reject: the object is invalid if its
    runAt is such a time, or if its schedule can hit one within the next two years. A schedule never runs
    twice for one local time."""


class DependsOn(ApiModel):
    """Another ScheduledDeployment in the same namespace that must deploy before this one."""

    name: str = Field(min_length=1, max_length=253)
    """The name of the ScheduledDeployment to run first. It may have no runAt or schedule of its own; it
    then runs only as a dependency. Chains add up, and a cycle makes every object in it invalid."""

    lead_time: Annotated[
        str,
        Field(
            max_length=32,
            json_schema_extra=_cel(
                f"self.matches('{LEAD_TIME_PATTERN}') && self != ''",
                "leadTime must be a duration such as 15m, 1h30m or 90s",
            ),
        ),
    ] = "15m"
    """How long before each run of this object the dependency runs, as a duration such as 15m, 1h30m or
    90s. Elapsed time, not wall-clock time: across a DST change a 1h lead is still 60 minutes. 0s is
    allowed only with mustSucceed: false, because a deploy that waits for its dependency cannot start at
    the same instant."""

    must_succeed: bool = True
    """When true, this object's run is held (result Held) unless the dependency's run succeeded."""


def _check_region(value: str) -> str:
    """The CEL rule's check and message, so that ``sundial preview`` refuses what the API server refuses."""
    if not re.fullmatch(AWS_REGION_PATTERN, value):
        raise ValueError(f"spec.ecsService.{REGION_MESSAGE} (got {value!r})")
    return value


class DeploymentTarget(ApiModel):
    """Set the image of one container of a Deployment in this namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Deployment's name."""

    container: str = Field(min_length=1, max_length=63)
    """The name of the container whose image is replaced."""

    image: str = Field(min_length=1, max_length=1024)
    """The image to deploy, e.g. registry.example.com/api:v42 or an @sha256 digest reference."""


class EcsServiceTarget(ApiModel):
    """Deploy a new task definition revision of an Amazon ECS service with one container's image replaced."""

    cluster: str = Field(min_length=1, max_length=2048)
    """The ECS cluster name or ARN."""

    service: str = Field(min_length=1, max_length=2048)
    """The ECS service name or ARN."""

    container: str = Field(min_length=1, max_length=255)
    """The container name in the service's task definition."""

    image: str = Field(min_length=1, max_length=1024)
    """The image to deploy."""

    region: Annotated[
        str,
        Field(
            min_length=1,
            max_length=32,
            json_schema_extra=_cel(f"self.matches('{AWS_REGION_PATTERN}')", REGION_MESSAGE),
        ),
        AfterValidator(_check_region),
    ]
    """The AWS region, e.g. eu-central-1 or us-gov-west-1."""

    credentials_secret: str | None = Field(None, min_length=1, max_length=253)
    """A Secret in this namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for
    temporary credentials). The deploy Job reads only these keys; without the first two its pod does not
    start. When unset, the deploy Job uses the credentials of its service account (for example IAM roles
    for service accounts)."""


API_VERSION_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+((alpha|beta)[0-9]+)?$"
)
"""``apps/v1``, ``kustomize.toolkit.fluxcd.io/v1``, ``v1``: a group (a DNS subdomain) and a version."""
KIND_PATTERN = r"^[A-Z][A-Za-z0-9]*$"


API_VERSION_MESSAGE = (
    "apiVersion must be GROUP/VERSION such as apps/v1 or kustomize.toolkit.fluxcd.io/v1, or v1"
)
KIND_MESSAGE = "kind must be CamelCase, e.g. Kustomization"


def _check_api_version(value: str) -> str:
    if not re.fullmatch(API_VERSION_PATTERN, value):
        raise ValueError(f"spec.patch.{API_VERSION_MESSAGE} (got {value!r})")
    return value


def _check_kind(value: str) -> str:
    if not re.fullmatch(KIND_PATTERN, value):
        raise ValueError(f"spec.patch.{KIND_MESSAGE} (got {value!r})")
    return value


IDENTITY_FIELDS = ("name", "namespace", "uid", "generateName", "resourceVersion", "ownerReferences")


def _check_merge_patch(value: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that renames, moves or re-owns the object is refused: it would make it another object
    (or garbage-collect it), which no release means to do. The same check as the operator's."""
    if not value:
        raise ValueError('spec.patch.mergePatch is empty: give the change, e.g. {"spec": {"suspend": false}}')
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("spec.patch.mergePatch.metadata must be an object (or left out)")
    touched = [key for key in IDENTITY_FIELDS if isinstance(metadata, dict) and key in metadata]
    if touched:
        raise ValueError(
            f"spec.patch.mergePatch may not change metadata.{touched[0]}: the patch target changes the "
            "object named by spec.patch.name in this namespace; change spec, labels or annotations instead"
        )
    if "apiVersion" in value or "kind" in value:
        raise ValueError("spec.patch.mergePatch may not change apiVersion or kind; set them in spec.patch")
    return value


def _touches_identity(pointer: str) -> bool:
    """Does a JSON pointer reach the object's identity (its kind, name, namespace, owners...)?"""
    if pointer in ("/apiVersion", "/kind", "/metadata"):
        return True
    return any(
        pointer == f"/metadata/{key}" or pointer.startswith(f"/metadata/{key}/") for key in IDENTITY_FIELDS
    )


class JsonPatchOp(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    REPLACE = "replace"
    MOVE = "move"
    COPY = "copy"
    TEST = "test"


class JsonPatchOperation(ApiModel):
    """One operation of a JSON patch (RFC 6902), as kubectl patch --type json takes them."""

    op: JsonPatchOp
    """add, remove, replace, move, copy or test."""

    path: str = Field(min_length=1, max_length=1024, pattern=r"^/")
    """A JSON pointer, e.g. /spec/template/spec/containers/0/image."""

    value: Any = Field(None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """The value to add, replace with or test for."""

    from_: str | None = Field(None, alias="from", min_length=1, max_length=1024, pattern=r"^/")
    """For move and copy: where from."""

    @model_validator(mode="after")
    def _check_identity(self) -> Self:
        for pointer in (self.path, self.from_):
            if pointer is not None and _touches_identity(pointer):
                raise ValueError(
                    f"spec.patch.jsonPatch may not touch {pointer}: the patch target changes the object "
                    "named by spec.patch.name in this namespace; change spec, labels or annotations instead"
                )
        return self


class WaitFor(ApiModel):
    """What "done" means for the patched object, instead of the readiness rules (docs/gitops.md)."""

    condition: str = Field(min_length=1, max_length=316)
    """A condition type in status.conditions, e.g. Ready, Available or Healthy."""

    status: Annotated[
        str,
        Field(
            max_length=7,
            json_schema_extra=_cel(
                "self in ['True', 'False', 'Unknown']", "waitFor.status must be True, False or Unknown"
            ),
        ),
    ] = "True"
    """The status it must have: True (default), False or Unknown."""


PATCH_KIND_MESSAGE = "spec.patch needs exactly one of mergePatch and jsonPatch"


class PatchTarget(ApiModel):
    """Change one object in this namespace with a merge or JSON patch at the instant, then wait until its
    status says the change is done: the general target, e.g. to resume a suspended Flux Kustomization or set
    an Argo Rollout's image (docs/gitops.md)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.mergePatch) != has(self.jsonPatch)", "message": PATCH_KIND_MESSAGE}
            ]
        }
    )

    api_version: Annotated[
        str,
        Field(
            min_length=1,
            max_length=317,
            json_schema_extra=_cel(f"self.matches('{API_VERSION_PATTERN}')", API_VERSION_MESSAGE),
        ),
        AfterValidator(_check_api_version),
    ]
    """The object's apiVersion, e.g. kustomize.toolkit.fluxcd.io/v1 or argoproj.io/v1alpha1."""

    kind: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            json_schema_extra=_cel(f"self.matches('{KIND_PATTERN}')", KIND_MESSAGE),
        ),
        AfterValidator(_check_kind),
    ]
    """The object's kind, e.g. Kustomization, HelmRelease, Rollout or Application."""

    name: str = Field(min_length=1, max_length=253)
    """The object's name, in the ScheduledDeployment's namespace."""

    merge_patch: Annotated[
        dict[str, Any] | None,
        Field(json_schema_extra={"minProperties": 1}),
        AfterValidator(_check_merge_patch),
    ] = None
    """The change, as a JSON merge patch (RFC 7386, what kubectl patch --type merge sends), e.g.
    {"spec": {"suspend": false}}. It may not change the object's name, namespace or other identity. A
    merge patch replaces a list whole: to change one container of a pod template, use jsonPatch."""

    json_patch: list[JsonPatchOperation] | None = Field(None, min_length=1, max_length=64)
    """The change, as a JSON patch (RFC 6902, kubectl patch --type json), e.g. a test of
    /spec/template/spec/containers/0/name, then a replace of .../0/image: the test makes the whole patch
    fail if someone reordered the containers. Exactly one of mergePatch and jsonPatch."""

    stamp_annotations: list[Annotated[str, Field(min_length=1, max_length=317)]] | None = Field(
        None, max_length=8
    )
    """Annotations set, in the same patch, to the run's scheduled time: a value that changes with every run,
    for annotations a controller acts on when they change, such as reconcile.fluxcd.io/requestedAt."""

    wait_for: WaitFor | None = None
    """What "done" means; when unset, the readiness rules (observedGeneration caught up, then Ready or
    Healthy, a Deployment's rollout, an Argo Rollout's phase, an Argo CD Application's sync and health)."""

    timeout: Annotated[
        str,
        Field(
            max_length=32,
            json_schema_extra=_cel(
                f"self.matches('{LEAD_TIME_PATTERN}') && self != '' && self != '0s'",
                "timeout must be a duration such as 10m, 1h or 90s",
            ),
        ),
    ] = "10m"
    """How long to wait for done before the run is recorded Failed (reason Timeout), e.g. 10m or 1h."""

    @model_validator(mode="after")
    def _check_one_patch(self) -> Self:
        if (self.merge_patch is None) == (self.json_patch is None):
            raise ValueError(PATCH_KIND_MESSAGE)
        return self


class PodSpecShape(OpenModel):
    """A core/v1 PodSpec. Only containers is checked here; the API server checks the rest when it creates
    the Job."""

    containers: list[dict[str, Any]] = Field(min_length=1)
    """The Pod's containers (at least one)."""


class PodTemplateShape(OpenModel):
    """A core/v1 PodTemplateSpec."""

    spec: PodSpecShape
    """The Pod spec."""


class JobSpecShape(OpenModel):
    """A batch/v1 JobSpec."""

    template: PodTemplateShape
    """The Pod template."""


class JobTemplate(OpenModel):
    """A batch/v1 JobTemplateSpec, as in a CronJob: metadata and spec of the Job to run."""

    spec: JobSpecShape
    """The Job spec; spec.template.spec.containers is required."""


class ApprovalPolicy(ApiModel):
    """Whether a run waits for a person's approval, and whose approval counts."""

    required: bool = False
    """When true, each run waits at its instant (reason AwaitingApproval) until a DeploymentApproval names
    it, up to startingDeadlineSeconds; without one it is recorded Held (reason NotApproved). Its dependency
    waits too: nothing of an unapproved run is deployed."""

    groups: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = Field(None, max_length=32)
    """Only approvals by members of one of these groups count (e.g. release-managers); any authenticated
    approver when unset."""


WHEN_MESSAGE = "set at most one of runAt and schedule (with neither, the object runs only as a dependency)"
WHAT_MESSAGE = "set exactly one of deployment, ecsService, patch or jobTemplate"
_SPEC_RULES: list[JsonValue] = [
    {"rule": "!(has(self.runAt) && has(self.schedule))", "message": WHEN_MESSAGE},
    {
        "rule": "[has(self.deployment), has(self.ecsService), has(self.patch), has(self.jobTemplate)]"
        ".exists_one(x, x)",
        "message": WHAT_MESSAGE,
    },
]


class ScheduledDeploymentSpec(ApiModel):
    """When to deploy what, in which time zone.

    When: at most one of runAt and schedule; with neither, the object runs only as another one's
    dependency. What: exactly one of deployment, ecsService, patch and jobTemplate.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    run_at: Annotated[
        str | None,
        Field(
            max_length=64,
            json_schema_extra=_cel(
                f"self.matches('{RUN_AT_PATTERN}')",
                "runAt must look like 2027-03-14T02:30 (local time in timeZone) "
                "or 2027-03-14T02:30:00Z (an absolute instant)",
            ),
        ),
    ] = None
    """Deploy once, at this local date-time in timeZone: YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS. With an
    offset or Z (2027-03-14T07:30:00Z) it is that absolute instant instead."""

    schedule: str | None = Field(None, min_length=1, max_length=256)
    """Deploy repeatedly: a five-field cron expression (minute hour day-of-month month day-of-week, e.g.
    "30 2 * * 1-5") or one of @hourly, @daily, @weekly, @monthly, @yearly, evaluated in timeZone."""

    time_zone: str = Field("UTC", min_length=1, max_length=64)
    """The IANA time zone that runAt and schedule are read in, e.g. Europe/Berlin."""

    dst_policy: DstPolicy = Field(default_factory=DstPolicy, json_schema_extra={"default": {}})
    """How local times skipped or repeated by a daylight-saving change are handled."""

    depends_on: DependsOn | None = None
    """Another ScheduledDeployment in this namespace to run leadTime before each run of this one."""

    deployment: DeploymentTarget | None = None
    """Deploy by setting a container image on a Deployment."""

    ecs_service: EcsServiceTarget | None = None
    """Deploy by updating an Amazon ECS service."""

    patch: PatchTarget | None = None
    """Deploy by changing any object with a merge patch and waiting until it reports done."""

    job_template: JobTemplate | None = None
    """Deploy by running a Job made from this batch/v1 JobTemplateSpec."""

    service_account_name: str = Field(DEFAULT_SERVICE_ACCOUNT, min_length=1, max_length=253)
    """The service account the deploy Job runs as."""

    starting_deadline_seconds: int = Field(600, ge=1)
    """How late a run may still start, in seconds. A run the operator could not start within this long of
    its scheduled time is recorded as missed; a runAt already further in the past when the object is
    created makes it invalid (RunAtInPast)."""

    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.FORBID
    """For a schedule, what to do when a run is due while the previous one is still running: Allow both,
    Forbid the new one (it is recorded as skipped), or Replace the running one. Ignored for runAt."""

    approval: ApprovalPolicy | None = None
    """Whether each run waits for a person's approval (kubectl sundial approve, docs/approvals.md)."""

    suspend: bool = False
    """When true, no new runs start; runs that fall due while suspended are recorded as skipped and are
    never made up later."""

    successful_jobs_history_limit: int = Field(3, ge=0, le=MAX_HISTORY_LIMIT)
    """How many finished successful Jobs to keep."""

    failed_jobs_history_limit: int = Field(1, ge=0, le=MAX_HISTORY_LIMIT)
    """How many finished failed Jobs to keep."""

    @model_validator(mode="after")
    def _check_exactly_one(self) -> Self:
        """The same rules as the CRD's CEL validations, so that preview and the API server agree."""
        if self.run_at is not None and self.schedule is not None:
            raise ValueError(WHEN_MESSAGE)
        targets = [self.deployment, self.ecs_service, self.patch, self.job_template]
        if sum(target is not None for target in targets) != 1:
            raise ValueError(WHAT_MESSAGE)
        return self


class ConditionStatus(StrEnum):
    """A condition's status, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the object's state, exactly in the shape of metav1.Condition."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """The aspect, in CamelCase: Ready (the summary), Scheduled, DependencyReady, Progressing or
    Succeeded."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why, as one CamelCase word, e.g. InvalidTimeZone."""

    message: str = Field(max_length=32768)
    """What happened and what to do about it, for people."""

    last_transition_time: UtcTime
    """When status last changed (not when reason or message last changed)."""

    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation this condition was computed from."""


class RunRole(StrEnum):
    """Why a Job ran: this object's own deploy, or as the dependency of another object."""

    DEPLOY = "Deploy"
    DEPENDENCY = "Dependency"


class RunResult(StrEnum):
    """What became of one scheduled run."""

    PENDING = "Pending"
    """Due, Job not created yet."""
    RUNNING = "Running"
    """The Job exists and has not finished."""
    SUCCEEDED = "Succeeded"
    """The Job completed."""
    FAILED = "Failed"
    """The Job failed."""
    MISSED = "Missed"
    """Not started within startingDeadlineSeconds (the operator was down, or a Defer freeze outlasted it:
    reason FrozenPastDeadline), or superseded by a later run."""
    SKIPPED = "Skipped"
    """Not started on purpose: a nonexistent local time under dstPolicy Skip, suspend, or concurrencyPolicy
    Forbid while the previous run was still going; for a manual run, a trigger request that was refused."""
    HELD = "Held"
    """Not started because a dependency that must succeed did not, or because a release freeze with action
    Hold covered it (reason Frozen)."""
    CANCELLED = "Cancelled"
    """Started, then stopped before it finished: its Job was deleted by concurrencyPolicy Replace."""


class RunRecord(StatusModel):
    """One run, as remembered in status.runs."""

    scheduled_time: UtcTime
    """The instant the run was scheduled for (the name of its Job is derived from it)."""

    fired_time: UtcMillisTime | None = None
    """When the operator created the Job, with milliseconds; unset if it never did."""

    job_name: str | None = None
    """The Job's name."""

    role: RunRole = RunRole.DEPLOY
    """Deploy for this object's own run, Dependency for a run on behalf of a dependent object."""

    result: RunResult = RunResult.PENDING
    """Pending, Running, Succeeded, Failed, Missed, Skipped, Held or Cancelled."""

    reason: str | None = None
    """Why the run has this result, as one CamelCase word."""

    message: str | None = None
    """Details for people."""

    trigger: str | None = Field(None, max_length=64)
    """Set only for a manual run (kubectl sundial trigger): the request it served, the value of the
    sundial.dev/trigger annotation, which is the RFC 3339 instant it was requested at. scheduledTime is that
    instant."""


class ActiveJob(StatusModel):
    """A Job of this object that has not finished."""

    name: str
    """The Job's name."""

    role: RunRole = RunRole.DEPLOY
    """Deploy or Dependency."""

    scheduled_time: UtcTime
    """The instant the Job's run was scheduled for."""


class ScheduledDeploymentStatus(StatusModel):
    """What the operator has observed and decided; written only by the operator."""

    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation of the spec this status describes."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """Ready summarises; Scheduled, DependencyReady, Progressing and Succeeded give the details."""

    next_run_time: UtcTime | None = None
    """The next run, in UTC."""

    next_run_local_time: LocalTimestamp | None = None
    """The next run as local time in timeZone, with its offset."""

    next_dependency_run_time: UtcTime | None = None
    """When the dependency runs for the next run, in UTC."""

    next_run_approval: str | None = None
    """For an object with spec.approval.required: whether the next run is approved, e.g. "Approved by
    alice (DeploymentApproval api-20270210t080000z)" or "Awaiting approval"."""

    next_run_freeze: str | None = None
    """What a release freeze will do to the next run, as the freezes stand now, e.g. "Hold (ReleaseFreeze
    shop/year-end)" or "Defer to 2027-01-04T07:00:00Z (ClusterReleaseFreeze incident-4711)"; unset when
    no freeze concerns it."""

    last_run_time: UtcTime | None = None
    """The scheduled time of the last run that started."""

    last_successful_time: UtcTime | None = None
    """The scheduled time of the last run that succeeded."""

    last_job_name: str | None = None
    """The name of the last Job created."""

    active: list[ActiveJob] = Field(default_factory=list)
    """The Jobs of this object that have not finished."""

    runs: list[RunRecord] = Field(default_factory=list, max_length=MAX_RUN_RECORDS)
    """The last 10 runs, oldest first."""

    upcoming: list[UtcTime] = Field(default_factory=list, max_length=MAX_UPCOMING)
    """For a schedule, the next three run instants in UTC."""

    last_trigger: str | None = Field(None, max_length=64)
    """The last manual trigger request (sundial.dev/trigger annotation) the operator has served: run,
    refused or found too old. A request equal to it is never served again, even after its run has left
    runs."""
