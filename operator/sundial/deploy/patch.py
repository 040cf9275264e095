"""``sundial deploy patch``: change one object with a merge or JSON patch, then wait until it reports done.

The general target: resume a suspended Flux Kustomization or HelmRelease, move a GitRepository's ref, set a
Rollout's image, start an Argo CD sync, or change any other object, and judge the outcome by the object's
own status (`sundial.deploy.readiness`). The object is found by apiVersion and kind through the API
server's discovery document, so any kind served in the cluster works, built-in or custom.

``--stamp KEY`` sets annotation KEY to the run's scheduled time (``SUNDIAL_SCHEDULED_TIME``), in the merge
patch, or beside a JSON patch in a merge patch of its own, sent first: a value that changes with every run,
for annotations a controller acts on when they change, such as Flux's ``reconcile.fluxcd.io/requestedAt``.
A patch that changes nothing (a rerun of the same Job) is harmless: the wait then finds the object done at
once.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from sundial.api.durations import parse_seconds
from sundial.deploy import DeployFailed, add_kubeconfig_argument, kubernetes_api_client, reported
from sundial.deploy.readiness import Progress, WaitFor, describe, readiness
from sundial.runtime.apierrors import api_message, api_reason

SCHEDULED_TIME_ENV = "SUNDIAL_SCHEDULED_TIME"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def group_path(api_version: str) -> str:
    """``apps/v1`` -> ``/apis/apps/v1``; ``v1`` (the core group) -> ``/api/v1``. Pure."""
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def plural_of(discovery: Mapping[str, Any], api_version: str, kind: str) -> str:
    """The namespaced resource that serves ``kind`` in a group-version's discovery document. Pure."""
    for resource in discovery.get("resources") or ():
        if resource.get("kind") == kind and "/" not in str(resource.get("name")):
            if not resource.get("namespaced"):
                raise DeployFailed(
                    f"{kind} ({api_version}) is cluster-scoped; the patch target changes objects in the "
                    "ScheduledDeployment's own namespace only",
                    reason="ClusterScopedKind",
                )
            return str(resource["name"])
    raise DeployFailed(
        f"the API server serves no kind {kind} in {api_version}; check apiVersion and kind "
        "(kubectl api-resources lists what is served) and that the CRD is installed",
        reason="KindNotServed",
    )


def with_stamps(merge_patch: Mapping[str, Any], stamps: list[str], scheduled_time: str) -> dict[str, Any]:
    """``merge_patch`` with each annotation in ``stamps`` set to ``scheduled_time``. Pure."""
    patched = dict(merge_patch)
    if not stamps:
        return patched
    metadata = dict(patched.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.update({key: scheduled_time for key in stamps})
    metadata["annotations"] = annotations
    patched["metadata"] = metadata
    return patched


def requested_changes(
    merge_patch: str | None, json_patch: str | None, stamps: list[str], environ: Mapping[str, str]
) -> list[Mapping[str, Any] | list[Any]]:
    """The patches to send, in order. Stamps ride in the merge patch; beside a JSON patch they go first, as a
    merge patch of their own (a JSON patch cannot add an annotation to an object that has none). Pure."""
    scheduled = environ.get(SCHEDULED_TIME_ENV) or ""
    if stamps and not scheduled:
        raise DeployFailed(
            f"--stamp needs {SCHEDULED_TIME_ENV} (set in every deploy Job)", reason="NoRunTime"
        )
    if merge_patch is not None:
        change = json.loads(merge_patch)
        if not isinstance(change, dict):
            raise DeployFailed("--merge-patch must be a JSON object", reason="InvalidPatch")
        return [with_stamps(change, stamps, scheduled)]
    operations = json.loads(json_patch or "null")
    if not isinstance(operations, list) or not operations:
        raise DeployFailed("--json-patch must be a JSON list of operations", reason="InvalidPatch")
    return [*([with_stamps({}, stamps, scheduled)] if stamps else []), operations]


def _pointer(document: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) at an RFC 6901 JSON pointer. Pure."""
    node = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def failed_test(current: Mapping[str, Any], operations: list[Any]) -> str | None:
    """What the first ``test`` operation of a JSON patch finds instead of its value, judged on the object as
    read before patching (the API server's own test still guards the patch itself). Pure."""
    for operation in operations:
        if not isinstance(operation, Mapping) or operation.get("op") != "test":
            continue
        path, wanted = str(operation.get("path")), operation.get("value")
        found, value = _pointer(current, path)
        if not found:
            return f"the JSON patch tests {path}, which {describe(current)} does not have"
        if value != wanted:
            what = describe(current)
            return f"the JSON patch tests {path} for {json.dumps(wanted)}, and {what} has {json.dumps(value)}"
    return None


class ObjectApi:
    """GET and PATCH (merge or JSON) one object through the client's REST layer (any group, core too)."""

    def __init__(self, api_client: Any, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._api = api_client
        self._what = f"{kind.lower()}/{name} in namespace {namespace}"
        self._missing = ("TargetNotFound", f"{self._what} does not exist")
        unserved = (
            "KindNotServed",
            f"the API server serves no {api_version}: check apiVersion (kubectl api-versions) and that the "
            f"CRDs of {kind} are installed",
        )
        discovery = self._call(
            "GET", group_path(api_version), f"cannot read the API of {api_version}", None, unserved
        )
        plural = plural_of(discovery, api_version, kind)
        self._path = f"{group_path(api_version)}/namespaces/{namespace}/{plural}/{name}"

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        missing: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """``missing``: (reason, message) for a 404; other refusals say ``what`` and the API's answer."""
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = JSON_PATCH if isinstance(body, list) else MERGE_PATCH
        try:
            response = self._api.call_api(
                path,
                method,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=(10, 60),
            )
        except ApiException as error:
            if error.status == 404 and missing is not None:
                raise DeployFailed(missing[1], reason=missing[0]) from None
            raise DeployFailed(f"{what}: {api_message(error)}", reason=api_reason(error)) from None
        return dict(json.loads(response.data))

    def read(self) -> dict[str, Any]:
        return self._call("GET", self._path, f"cannot read {self._what}", None, self._missing)

    def patch(self, change: Mapping[str, Any] | list[Any]) -> dict[str, Any]:
        """A merge patch (a mapping) or a JSON patch (a list of operations)."""
        return self._call(
            "PATCH",
            self._path,
            f"cannot patch {self._what}",
            change if isinstance(change, list) else dict(change),
            self._missing,
        )


def patch_and_wait(
    target: ObjectApi | Any,
    changes: list[Mapping[str, Any] | list[Any]],
    wait_for: WaitFor,
    *,
    timeout: float,
    poll_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: Callable[[str], None] = print,
) -> str:
    """Apply ``changes`` in order (merge patches and JSON patches), then wait by the readiness rules; return
    the success line or raise DeployFailed."""
    current = target.read()  # a missing object or a refused read is reported before anything is changed
    for change in changes:
        if isinstance(change, list) and (mismatch := failed_test(current, change)) is not None:
            raise DeployFailed(f"{mismatch}; nothing was changed", reason="PatchTestFailed")
    patched: dict[str, Any] = {}
    for change in changes:
        patched = target.patch(change)
    what = describe(patched)
    generation = (patched.get("metadata") or {}).get("generation")
    out(f"{what}: patched" + (f" (generation {generation})" if isinstance(generation, int) else ""))
    deadline = clock() + timeout
    last = ""
    current = patched
    while True:
        verdict = readiness(current, wait_for, generation if isinstance(generation, int) else None)
        if verdict.message != last:
            out(f"{what}: {verdict.message}")
            last = verdict.message
        if verdict.progress is Progress.CURRENT:
            return f"{what} done: {verdict.message}"
        if verdict.progress is Progress.FAILED:
            raise DeployFailed(verdict.message, reason=verdict.reason or "TargetFailed")
        if clock() >= deadline:
            raise DeployFailed(
                f"{what} was not done within {timeout:.0f}s: {verdict.message}", reason="Timeout"
            )
        sleep(poll_interval)
        current = target.read()


def add_parser(targets: Any) -> None:
    parser = targets.add_parser(
        "patch",
        help="change an object with a JSON merge patch and wait until it reports done",
        description="Merge-patch one object in a namespace, then wait until its status says the change is "
        "done (observedGeneration, Ready/Healthy conditions, or a named condition).",
        epilog="example:\n  sundial deploy patch --namespace flux-system --api-version "
        "kustomize.toolkit.fluxcd.io/v1 --kind Kustomization --name apps --merge-patch "
        '\'{"spec":{"suspend":false}}\' --stamp reconcile.fluxcd.io/requestedAt',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--api-version", required=True)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--name", required=True)
    change = parser.add_mutually_exclusive_group(required=True)
    change.add_argument("--merge-patch", help="a JSON object (RFC 7386)")
    change.add_argument("--json-patch", help="a JSON list of operations (RFC 6902)")
    parser.add_argument("--stamp", action="append", default=[], help="an annotation set to the run's time")
    parser.add_argument(
        "--wait-condition", help="a condition type to wait for (default: the readiness rules)"
    )
    parser.add_argument("--wait-status", default="True", help="the status it must have (default: True)")
    parser.add_argument("--timeout", type=parse_seconds, default=parse_seconds("10m"), help="default 10m")
    parser.add_argument("--poll-interval", type=parse_seconds, default=2.0, help="default 2s")
    add_kubeconfig_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    def deploy() -> str:
        changes = requested_changes(args.merge_patch, args.json_patch, args.stamp, os.environ)
        target = ObjectApi(
            kubernetes_api_client(args.kubeconfig), args.api_version, args.kind, args.namespace, args.name
        )
        return patch_and_wait(
            target,
            changes,
            WaitFor(args.wait_condition, args.wait_status),
            timeout=args.timeout,
            poll_interval=args.poll_interval,
        )

    return reported(deploy)
