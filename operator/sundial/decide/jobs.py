"""Build the Job that carries out one run of a ScheduledDeployment. Pure: build here, create elsewhere.

The Job's name is derived from the object and the scheduled UTC instant, so it doubles as a lock: a retry,
a restarted operator or a second replica that tries to create the same run gets AlreadyExists and treats it
as done. Everything a script might want to know about the run travels with the Job twice: as annotations
(for people and for the operator's own bookkeeping after a restart) and as environment variables.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sundial.api.durations import parse_seconds
from sundial.api.keys import (
    ANNOTATION_APPROVED_BY,
    ANNOTATION_FIRED,
    ANNOTATION_LOCAL,
    ANNOTATION_OVERRIDE_FREEZE,
    ANNOTATION_SCHEDULED,
    ANNOTATION_TIME_ZONE,
    ANNOTATION_TRIGGER,
    GROUP,
    KIND,
    LABEL_MANUAL,
    LABEL_OWNER,
    LABEL_ROLE,
    MANAGED_BY,
    MANAGER,
    SUNDIAL_KEY_PREFIX,
    VERSION,
)
from sundial.api.timestamps import format_utc, format_with_offset

DEPLOY_CONTAINER = "deploy"
DEPLOYER_IMAGE_ENV = "SUNDIAL_DEPLOYER_IMAGE"
"""The environment variable naming the image of the built-in targets' deploy Jobs. There is no default: a
default would have to be a tag that moves with each release, and a Job started months after the operator
would then run a Sundial other than the operator's own."""


def malformed_image_reason(image: str) -> str | None:
    """Why ``image`` cannot be an image reference at all, or None; checked before the tag or digest."""
    if not image or any(char.isspace() for char in image):
        return f"{image!r} is not an image reference (it is empty or contains white space)"
    _, at, digest = image.partition("@")
    algorithm, colon, encoded = digest.partition(":")
    if at and not (algorithm and colon and encoded):
        return f"{image!r} has an '@' but no digest of the form ALGORITHM:HEX after it"
    return None


def unpinned_image_reason(image: str) -> str | None:
    """Why a well-formed ``image`` names no fixed build, or None (a digest, or a tag other than latest).

    A deploy Job pulls its image when it starts, possibly long after the operator started; ``latest``, or no
    tag (which means latest), can then be another release. Any other tag counts as pinned: a registry can
    move any tag, but naming a version is a choice, and the shipped manifests copy the operator's own.
    """
    name, at, _ = image.partition("@")
    if at:
        return None
    # The tag follows the ':' in the last path component; a ':' before a '/' is a registry's port.
    _, colon, tag = name.rsplit("/", 1)[-1].partition(":")
    if not colon:
        return f"{image!r} has neither a tag nor a digest, which means the moving tag latest"
    if tag == "latest":
        return f"{image!r} names the moving tag latest"
    return None


DEPLOY_DEADLINE_SECONDS = 20 * 60
"""How long a built-in deploy Job may run before Kubernetes stops it (``activeDeadlineSeconds``).

Why this number: both deployers give up on their own after ``--timeout`` (15 minutes by default) and say
where the rollout stood. The other 5 minutes are for pulling the image, starting the pod, the API calls
around the wait (boto3 retries a read for up to a minute) and writing the termination message. Only a
deployer that hangs outside its own timeout, or a pod that never starts, reaches this deadline; the Job
then fails with reason DeadlineExceeded instead of holding its run Running forever."""


def deploy_deadline_seconds(spec: Mapping[str, Any]) -> int:
    """A built-in deploy Job's ``activeDeadlineSeconds``: DEPLOY_DEADLINE_SECONDS, or for a patch target
    its own ``timeout`` plus the same 5 minutes, so a long wait (a Rollout's analysis) is never cut off by
    Kubernetes before the deployer's own timeout says where it stood."""
    patch = spec.get("patch")
    if isinstance(patch, Mapping) and patch.get("timeout"):
        try:
            return max(DEPLOY_DEADLINE_SECONDS, int(parse_seconds(str(patch["timeout"]))) + 5 * 60)
        except ValueError:
            return DEPLOY_DEADLINE_SECONDS  # refused by validation before any Job is built
    return DEPLOY_DEADLINE_SECONDS


ECS_CREDENTIAL_KEYS: tuple[tuple[str, bool], ...] = (
    ("AWS_ACCESS_KEY_ID", False),
    ("AWS_SECRET_ACCESS_KEY", False),
    ("AWS_SESSION_TOKEN", True),
)
"""The keys of a ``credentialsSecret`` the ECS deployer reads, each with whether it may be absent.

Why by key and not ``envFrom``: the pod gets exactly the credentials boto3 reads from the environment, not
whatever else the Secret holds (``AWS_ENDPOINT_URL``, ``AWS_CA_BUNDLE``, ``PYTHONPATH`` would all change what
the deployer does). The key pair is required: a Secret without it keeps the pod from starting
(CreateContainerConfigError, until the deadline) rather than letting boto3 fall back to the node's IAM
role. A session token is needed only with temporary credentials."""


def owner_label_value(name: str) -> str:
    """``name`` as a label value: itself up to 63 characters, else a prefix and 8 hex digits of its SHA-256.

    Object names may have 253 characters, label values only 63; a longer value makes the API server refuse
    the Job, so such an object could never run. Names are DNS subdomains, whose characters labels allow.
    """
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[:54].rstrip('-.')}-{digest}"


def is_sundial_key(key: object) -> bool:
    """Whether a label or annotation key is one of Sundial's: ``sundial.dev/…``, and the managed-by label,
    by which Sundial selects its Jobs."""
    return isinstance(key, str) and (key == MANAGED_BY or key.startswith(SUNDIAL_KEY_PREFIX))


def without_sundial_keys(values: object) -> dict[str, Any]:
    """A user's labels or annotations with Sundial's own keys removed.

    Why: the operator reads its Jobs' keys (the scheduled instant, the trigger request, the role) as facts
    about the run. A jobTemplate that carried them could make a scheduled run look manual, or claim another
    instant; only the operator may write them.
    """
    if not isinstance(values, Mapping):
        return {}
    return {key: value for key, value in values.items() if not is_sundial_key(key)}


def controller_reference(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference that makes a ScheduledDeployment this object's controller, if there is one.

    Only this reference (kind, group and ``controller: true``, as `metav1.GetControllerOf` reads it) says
    whose child a Job is; labels can be written by anyone who can create a Job and prove nothing.
    """
    references = metadata.get("ownerReferences")
    if not isinstance(references, list):
        return None
    for reference in references:
        if (
            isinstance(reference, Mapping)
            and reference.get("controller") is True
            and reference.get("kind") == KIND
            and isinstance(reference.get("apiVersion"), str)
            and reference["apiVersion"].partition("/")[0] == GROUP
            and isinstance(reference.get("uid"), str)
            and isinstance(reference.get("name"), str)
        ):
            return reference
    return None


@dataclass(frozen=True)
class JobRun:
    """One run to carry out: which instant, in which role, and when we actually fired it."""

    job_name: str
    role: str
    """``Deploy`` (the object's own deploy) or ``Dependency`` (run ahead of a dependent's deploy)."""
    scheduled_time: datetime
    """The nominal UTC instant of this run."""
    local_time: datetime
    """The same instant in the object's time zone (aware, with its offset)."""
    time_zone: str
    fired_time: datetime
    """When the operator created the Job (UTC); lateness is ``fired_time - scheduled_time``."""
    trigger: str | None = None
    """For a manual run, the trigger request it serves; ``scheduled_time`` is then the request's instant."""
    start_by: datetime | None = None
    """The last moment its Job may still be created (``startingDeadlineSeconds`` after ``scheduled_time``).
    A plan carried out later than this is stale: the run must be decided again (and recorded missed)."""
    overrides_freeze: str | None = None
    """For a manual run let through a release freeze (``--override-freeze``): the freeze, for the record."""
    approved_by: str | None = None
    """For a run that needed approval: who gave it and in which DeploymentApproval, for the record."""


def effective_service_account(spec: Mapping[str, Any]) -> str:
    """The service account the run's pod will use: the jobTemplate's own, else spec.serviceAccountName."""
    template = spec.get("jobTemplate") or {}
    pod_spec = ((template.get("spec") or {}).get("template") or {}).get("spec") or {}
    return str(pod_spec.get("serviceAccountName") or spec.get("serviceAccountName") or "sundial-deployer")


def run_environment(sd_name: str, run: JobRun) -> list[dict[str, str]]:
    # SUNDIAL_TRIGGER only on a manual run: a script tells one from a scheduled run by its presence.
    manual = [{"name": "SUNDIAL_TRIGGER", "value": run.trigger}] if run.trigger is not None else []
    return [
        {"name": "SUNDIAL_SCHEDULED_DEPLOYMENT", "value": sd_name},
        {"name": "SUNDIAL_ROLE", "value": run.role},
        {"name": "SUNDIAL_JOB_NAME", "value": run.job_name},
        {"name": "SUNDIAL_SCHEDULED_TIME", "value": format_utc(run.scheduled_time)},
        {"name": "SUNDIAL_LOCAL_TIME", "value": format_with_offset(run.local_time)},
        {"name": "SUNDIAL_TIME_ZONE", "value": run.time_zone},
        {"name": "SUNDIAL_FIRED_TIME", "value": format_utc(run.fired_time, millis=True)},
        *manual,
    ]


def restricted_security_context() -> dict[str, Any]:
    """The built-in deployers need no privileges at all: the Pod Security "restricted" profile."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def patch_arguments(target: Mapping[str, Any], namespace: str) -> list[str]:
    """``sundial deploy patch …`` for a patch target. The patch goes as compact JSON with sorted keys, so the
    same spec always builds the same Job."""
    args = [
        "deploy",
        "patch",
        "--namespace",
        namespace,
        "--api-version",
        str(target["apiVersion"]),
        "--kind",
        str(target["kind"]),
        "--name",
        str(target["name"]),
        *(
            ("--merge-patch", _canonical_json(target["mergePatch"]))
            if target.get("mergePatch") is not None
            else ("--json-patch", _canonical_json(target.get("jsonPatch")))
        ),
        "--timeout",
        str(target.get("timeout") or "10m"),
    ]
    for key in target.get("stampAnnotations") or ():
        args += ["--stamp", str(key)]
    wait_for = target.get("waitFor")
    if isinstance(wait_for, Mapping) and wait_for.get("condition"):
        args += [
            "--wait-condition",
            str(wait_for["condition"]),
            "--wait-status",
            str(wait_for.get("status") or "True"),
        ]
    return args


def deployer_pod_spec(spec: Mapping[str, Any], namespace: str, deployer_image: str) -> dict[str, Any]:
    """The pod for a built-in target: ``sundial deploy …`` from the Sundial image."""
    if "deployment" in spec and spec["deployment"] is not None:
        target = spec["deployment"]
        args = [
            "deploy",
            "kubernetes",
            "--namespace",
            namespace,
            "--deployment",
            target["name"],
            "--container",
            target["container"],
            "--image",
            target["image"],
        ]
        env: list[dict[str, Any]] = []
        needs_kubernetes_api = True
    elif "patch" in spec and spec["patch"] is not None:
        args = patch_arguments(spec["patch"], namespace)
        env = []
        needs_kubernetes_api = True
    else:
        target = spec["ecsService"]
        args = [
            "deploy",
            "ecs",
            "--cluster",
            target["cluster"],
            "--service",
            target["service"],
            "--container",
            target["container"],
            "--image",
            target["image"],
            "--region",
            target["region"],
        ]
        secret = target.get("credentialsSecret")
        # Credentials stay in the Secret: the pod reads them as environment, nothing copies them anywhere.
        credentials = [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": optional}},
            }
            for key, optional in ECS_CREDENTIAL_KEYS
        ]
        env = credentials if secret else []
        needs_kubernetes_api = False
    container: dict[str, Any] = {
        "name": DEPLOY_CONTAINER,
        "image": deployer_image,
        "args": args,
        "securityContext": restricted_security_context(),
        # The deployer writes its one-line reason to /dev/termination-log; the logs' tail is the fallback.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }
    if env:
        container["env"] = env
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.get("serviceAccountName") or "sundial-deployer",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if not needs_kubernetes_api:
        # The ECS deployer talks to AWS only: a Kubernetes token in its pod would be a credential it never
        # uses, readable by anything that runs there. (The Deployment deployer patches a Deployment.) IRSA and
        # EKS Pod Identity still work: their webhooks mount a token volume of their own.
        pod_spec["automountServiceAccountToken"] = False
    return pod_spec


def build_job(sd: Mapping[str, Any], run: JobRun, deployer_image: str) -> dict[str, Any]:
    """The Job for ``run`` of the ScheduledDeployment ``sd`` (the object as the API server returned it)."""
    metadata = sd["metadata"]
    spec = sd["spec"]
    labels = {
        MANAGED_BY: MANAGER,
        LABEL_OWNER: owner_label_value(metadata["name"]),
        LABEL_ROLE: run.role.lower(),
    }
    annotations = {
        ANNOTATION_SCHEDULED: format_utc(run.scheduled_time),
        ANNOTATION_LOCAL: format_with_offset(run.local_time),
        ANNOTATION_TIME_ZONE: run.time_zone,
        ANNOTATION_FIRED: format_utc(run.fired_time, millis=True),
    }
    if run.trigger is not None:
        labels[LABEL_MANUAL] = "true"
        annotations[ANNOTATION_TRIGGER] = run.trigger
    if run.overrides_freeze is not None:
        annotations[ANNOTATION_OVERRIDE_FREEZE] = run.overrides_freeze
    if run.approved_by is not None:
        annotations[ANNOTATION_APPROVED_BY] = run.approved_by
    environment = run_environment(metadata["name"], run)

    template = spec.get("jobTemplate")
    if template:
        job_spec = copy.deepcopy(template.get("spec") or {})
        user_labels = without_sundial_keys((template.get("metadata") or {}).get("labels"))
        user_annotations = without_sundial_keys((template.get("metadata") or {}).get("annotations"))
        pod_template = job_spec.setdefault("template", {})
        pod_metadata = pod_template.setdefault("metadata", {})
        pod_metadata["labels"] = {**without_sundial_keys(pod_metadata.get("labels")), **labels}
        if "annotations" in pod_metadata:
            pod_metadata["annotations"] = without_sundial_keys(pod_metadata.get("annotations"))
        pod_spec = pod_template.setdefault("spec", {})
        pod_spec.setdefault("restartPolicy", "Never")
        pod_spec.setdefault("serviceAccountName", spec.get("serviceAccountName") or "sundial-deployer")
        for container in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
            # Sundial's variables come last so they win over a same-named one in the template.
            names = {entry["name"] for entry in environment}
            container["env"] = [
                e for e in container.get("env") or [] if e.get("name") not in names
            ] + environment
    else:
        user_labels, user_annotations = {}, {}
        pod_spec = deployer_pod_spec(spec, metadata["namespace"], deployer_image)
        deploy_container = pod_spec["containers"][0]
        deploy_container["env"] = [*deploy_container.get("env", []), *environment]
        job_spec = {
            # A deploy is not blindly retried: the built-in deployers are idempotent, but a failed deploy is
            # a fact the user must see, not something to paper over with a second attempt.
            "backoffLimit": 0,
            "activeDeadlineSeconds": deploy_deadline_seconds(spec),
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        }

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.job_name,
            "namespace": metadata["namespace"],
            "labels": {**user_labels, **labels},
            "annotations": {**user_annotations, **annotations},
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
