"""Plays the container runtime for Sundial's own deployer pods on the local control plane.

kwok starts pods without running anything in them. For a deploy Job whose pod runs Sundial's image, that
would prove nothing about the deploy itself, so in the tests and `make demo` the operator is told
(``SUNDIAL_DEPLOYER_IMAGE``) to use the image name ``sundial.local/deployer:dev``, which kwok's stages
leave alone once the pod runs, and this runner executes the pod's command for real, in this machine's
Python (the one running the runner, with Sundial installed):

* as the pod's service account: it asks the API server for a token of that account (TokenRequest) and
  writes a kubeconfig holding only that token, so the deployer has exactly the rights the Job would have;
* with the pod's environment, including ``envFrom`` Secrets and ``secretKeyRef`` values, resolved the way
  the kubelet would;
* then it writes the outcome into the pod's status (Succeeded or Failed, exit code, and the last line of
  stderr as the termination message), which the Job controller and the operator take from there.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEPLOYER_IMAGE = "sundial.local/deployer:dev"


def service_account_kubeconfig(api_client: Any, server_kubeconfig: Path, namespace: str, account: str,
                               path: Path) -> Path:  # fmt: skip
    """A kubeconfig that authenticates as ``namespace/account`` with a fresh TokenRequest token only, for
    the API server of ``server_kubeconfig`` (whose credentials are not copied)."""
    import yaml
    from kubernetes import client

    spec = client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    request = client.AuthenticationV1TokenRequest(spec=spec)
    core = client.CoreV1Api(api_client)
    token = core.create_namespaced_service_account_token(account, namespace, request).status.token
    admin = yaml.safe_load(server_kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": "local", "user": account}}],
        "current-context": account,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


class PodRunner:
    """``with PodRunner(api_client, kubeconfig, namespace, workdir):`` runs the namespace's deployer pods
    while the block lasts. ``api_client``: a kubernetes.client.ApiClient for the pods and tokens;
    ``kubeconfig``: the file it was built from (the deployer's kubeconfig takes its server from it)."""

    def __init__(self, api_client: Any, kubeconfig: Path, namespace: str, workdir: Path) -> None:
        from kubernetes import client

        self._api_client = api_client
        self._kubeconfig = kubeconfig
        self._core = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._workdir = workdir
        self._stop = threading.Event()
        self._seen: set[str] = set()
        self._thread = threading.Thread(target=self._loop, name=f"pod-runner {namespace}", daemon=True)
        self.executed: list[dict[str, Any]] = []
        """One entry per pod run: name, argv, exit code, stdout, stderr."""

    def __enter__(self) -> PodRunner:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _loop(self) -> None:
        core = self._core
        while not self._stop.wait(0.2):
            pods = core.list_namespaced_pod(
                self._namespace, label_selector="app.kubernetes.io/managed-by=sundial"
            )
            for pod in pods.items:
                name = pod.metadata.name
                containers = pod.spec.containers
                if (
                    name in self._seen
                    or pod.status.phase != "Running"
                    or pod.metadata.deletion_timestamp is not None
                    or containers[0].image != DEPLOYER_IMAGE
                ):
                    continue
                self._seen.add(name)
                threading.Thread(target=self._run, args=(pod,), daemon=True).start()

    def _kubeconfig_for(self, service_account: str) -> Path:
        path = self._workdir / f"kubeconfig-{service_account}-{len(self.executed)}"
        return service_account_kubeconfig(
            self._api_client, self._kubeconfig, self._namespace, service_account, path
        )

    def _environment(self, container: Any) -> dict[str, str]:
        core = self._core
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self._workdir),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        for source in container.env_from or []:
            if source.secret_ref is not None:
                secret = core.read_namespaced_secret(source.secret_ref.name, self._namespace)
                env.update({k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
        for variable in container.env or []:
            reference = variable.value_from.secret_key_ref if variable.value_from else None
            if reference is None:
                env[variable.name] = variable.value or ""
                continue
            data = core.read_namespaced_secret(reference.name, self._namespace).data or {}
            if reference.key in data:
                env[variable.name] = base64.b64decode(data[reference.key]).decode()
            elif not reference.optional:
                raise AssertionError(f"the kubelet would not start this pod: no key {reference.key}")
        return env

    def _run(self, pod: Any) -> None:
        container = pod.spec.containers[0]
        argv = [sys.executable, "-m", "sundial", *(container.args or [])]
        # The deployers that talk to the Kubernetes API get the pod's account as a kubeconfig (a pod would
        # have its token mounted); the ECS deployer gets none, as its pod has none.
        if (container.args or [])[:2] in (["deploy", "kubernetes"], ["deploy", "patch"]):
            argv += ["--kubeconfig", str(self._kubeconfig_for(pod.spec.service_account_name or "default"))]
        started = datetime.now(UTC)
        result = subprocess.run(
            argv, capture_output=True, text=True, env=self._environment(container), timeout=600
        )
        self.executed.append(
            {
                "pod": pod.metadata.name,
                "argv": argv,
                "exit": result.returncode,
                "stdout": result.stdout,
                "stderr": result.stderr,
            }
        )
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        message = lines[-1].removeprefix("sundial deploy: ") if lines else ""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        terminated = {
            "exitCode": result.returncode,
            "reason": "Completed" if result.returncode == 0 else "Error",
            "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finishedAt": now,
        }
        if result.returncode != 0:
            terminated["message"] = message
        phase = "Succeeded" if result.returncode == 0 else "Failed"
        status = {
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now},
                    {
                        "type": "ContainersReady",
                        "status": "False",
                        "reason": "PodCompleted",
                        "lastTransitionTime": now,
                    },
                ],
                "containerStatuses": [
                    {
                        "name": container.name,
                        "image": container.image,
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"terminated": terminated},
                    }
                ],
            }
        }
        self._core.patch_namespaced_pod_status(pod.metadata.name, self._namespace, status)
