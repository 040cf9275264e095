"""``sundial deploy kubernetes``: set one container's image on a Deployment and follow the rollout.

The rollout is judged the way ``kubectl rollout status`` judges it: the controller must have observed the
new generation; every replica must be updated, old replicas gone, and the updated ones available; a
``Progressing`` condition with reason ``ProgressDeadlineExceeded`` is a failure. Rerunning with the image
already rolled out changes nothing and succeeds, so a retried Job never causes a second rollout.

The image is set with a JSON patch that first *tests* the container's name at its index, so a concurrent
edit that reorders containers makes the patch fail instead of changing the wrong container.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sundial.api.durations import parse_seconds
from sundial.deploy import DeployFailed, add_kubeconfig_argument, kubernetes_api_client, reported
from sundial.runtime.apierrors import api_message, api_reason


@dataclass(frozen=True)
class RolloutState:
    done: bool
    progress: str
    """What a person would want to see while waiting, e.g. "2 of 3 updated replicas are available"."""


def rollout_state(deployment: Mapping[str, Any]) -> RolloutState:
    """Where a Deployment's rollout stands; raises DeployFailed when it has failed. Pure."""
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = metadata.get("name", "?")
    if (metadata.get("generation") or 0) > (status.get("observedGeneration") or 0):
        return RolloutState(False, "waiting for the deployment controller to observe the new spec")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise DeployFailed(
                f"deployment/{name} exceeded its progress deadline "
                f"({spec.get('progressDeadlineSeconds', 600)}s): {condition.get('message', '')}".strip(),
                reason="ProgressDeadlineExceeded",
            )
    wanted = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    if updated < wanted:
        return RolloutState(False, f"{updated} of {wanted} replicas updated")
    if total > updated:
        return RolloutState(False, f"{total - updated} old replicas are pending termination")
    if available < updated:
        return RolloutState(False, f"{available} of {updated} updated replicas are available")
    return RolloutState(True, f"{available} of {wanted} replicas updated and available")


def image_patch(deployment: Mapping[str, Any], container: str, image: str) -> list[dict[str, Any]] | None:
    """The JSON patch that sets ``container``'s image; None when it already has it. Pure."""
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    names = [c.get("name") for c in containers]
    if container not in names:
        raise DeployFailed(
            f"deployment/{deployment['metadata']['name']} has no container {container!r}; "
            f"its containers are {', '.join(map(str, names)) or 'none'}",
            reason="ContainerNotFound",
        )
    index = names.index(container)
    if containers[index].get("image") == image:
        return None
    path = f"/spec/template/spec/containers/{index}"
    return [
        {"op": "test", "path": f"{path}/name", "value": container},
        {"op": "replace", "path": f"{path}/image", "value": image},
    ]


def _api_failure(error: Any, what: str) -> DeployFailed:
    return DeployFailed(f"{what}: {api_message(error)}", reason=api_reason(error))


def deploy_deployment(
    apps: Any,
    namespace: str,
    name: str,
    container: str,
    image: str,
    *,
    timeout: float,
    poll_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: Callable[[str], None] = print,
) -> str:
    """Set the image and wait for the rollout; return the success line or raise DeployFailed."""
    from kubernetes.client.exceptions import ApiException

    def read() -> dict[str, Any]:
        try:
            raw = apps.read_namespaced_deployment(name, namespace)
        except ApiException as error:
            raise _api_failure(error, f"cannot read deployment/{name} in namespace {namespace}") from None
        return dict(apps.api_client.sanitize_for_serialization(raw))

    deployment = read()
    patch = image_patch(deployment, container, image)
    if patch is None:
        out(f"deployment/{name} container {container} already has image {image}")
    else:
        try:
            apps.patch_namespaced_deployment(name, namespace, patch)
        except ApiException as error:
            raise _api_failure(error, f"cannot update deployment/{name} in namespace {namespace}") from None
        out(f"deployment/{name}: set container {container} to {image}")

    deadline = clock() + timeout
    last = ""
    while True:
        state = rollout_state(read())
        if state.progress != last:
            out(f"deployment/{name}: {state.progress}")
            last = state.progress
        if state.done:
            verb = "already rolled out" if patch is None else "rolled out"
            return f"deployment/{name} {verb} with {container}={image}"
        if clock() >= deadline:
            raise DeployFailed(
                f"deployment/{name} did not finish rolling out within {timeout:.0f}s: {state.progress}",
                reason="Timeout",
            )
        sleep(poll_interval)


def add_parser(targets: Any) -> None:
    parser = targets.add_parser(
        "kubernetes",
        help="set a Deployment's container image and follow the rollout",
        description="Set one container's image on a Deployment and wait until the rollout completes.",
        epilog="example:\n  sundial deploy kubernetes --namespace shop --deployment api --container api "
        "--image registry.example/api:v42",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--timeout", type=parse_seconds, default=parse_seconds("15m"), help="default 15m")
    parser.add_argument("--poll-interval", type=parse_seconds, default=2.0, help="default 2s")
    add_kubeconfig_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from kubernetes import client

    def deploy() -> str:
        apps = client.AppsV1Api(kubernetes_api_client(args.kubeconfig))
        return deploy_deployment(
            apps,
            args.namespace,
            args.deployment,
            args.container,
            args.image,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
        )

    return reported(deploy)
