"""How every tool of this repository reaches a Kubernetes API server without touching anyone else's.

``hack/local-cluster``, ``hack/demo``, ``tests/conftest.py`` and ``bench/common.py`` all start processes that
talk to a cluster (kubectl, the operator, the control plane's own components), and they all use this module
for it, so the safety rules are written once:

* Every child process gets `isolated_env`: no ``KUBE*`` or ``KWOK*`` variables (so no ``$KUBECONFIG``), no
  HTTP proxy, ``NO_PROXY`` for the loopback addresses, and ``HOME`` pointed at a state directory of ours (so
  neither ``~/.kube/config`` nor ``~/.kwok`` is found, and kubectl's caches stay out of the real home).
* kubectl runs only as `Kubectl`: bound to one kubeconfig file, passed with ``--kubeconfig`` every time.
* `loopback_server` refuses a kubeconfig that points anywhere but 127.0.0.1.

``hack/local-cluster`` runs before any virtualenv exists, so this module uses the standard library only. The
scripts in ``hack/`` import it from their own directory; pytest finds it through ``pythonpath`` in
pyproject.toml, and ``bench/common.py`` puts ``hack/`` on ``sys.path``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import urllib.parse
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCAL_CLUSTER = REPO / "hack" / "local-cluster"
LOOPBACK = "127.0.0.1,localhost"
AMBIENT_PREFIXES = ("KUBE", "KWOK")
"""Variables that could point a client at a cluster or a configuration other than the one we pass."""
KWOK_DEPLOYER_IMAGE = "sundial.local/sundial:kwok"
"""SUNDIAL_DEPLOYER_IMAGE for `sundial run` in hack/demo and bench/: kwok plays the kubelet, so nothing is
pulled and the deploy pods simply succeed. A version tag, because `sundial run` refuses latest or none; not
the tests' ``sundial.local/deployer:dev``, whose pods kwok's stages keep running for the tests' pod runner."""
PROXIES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def scrub(environ: MutableMapping[str, str]) -> None:
    """Apply the rule to an environment in place: no ambient cluster settings, no proxy for loopback.

    For a process's own ``os.environ`` (a benchmark's API clients); children get `isolated_env`.
    """
    for key in [key for key in environ if key.startswith(AMBIENT_PREFIXES) or key in PROXIES]:
        del environ[key]
    environ["NO_PROXY"] = environ["no_proxy"] = LOOPBACK


def isolated_env(home: Path) -> dict[str, str]:
    """The environment for a child process: this one's, scrubbed, with ``HOME`` at ``home``."""
    env = dict(os.environ)
    scrub(env)
    env["HOME"] = str(home)
    return env


class KubectlFailed(Exception):
    """kubectl exited non-zero; the message names the command, its exit status and its stderr."""

    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        self.result = result


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig, run in `isolated_env` with ``HOME`` at ``home``."""

    binary: Path
    kubeconfig: Path
    home: Path
    timeout: float = 120

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig KUBECONFIG ARGS``; raise `KubectlFailed` on failure if ``check``."""
        argv = [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            env=isolated_env(self.home),
        )
        if check and result.returncode != 0:
            raise KubectlFailed(args, result)
        return result


def loopback_server(kubeconfig: Path) -> str:
    """The API server URL of a kubeconfig written by ``hack/local-cluster``; refused unless on 127.0.0.1."""
    config = json.loads(kubeconfig.read_text())  # local-cluster writes JSON, which is also YAML
    server = str(config["clusters"][0]["cluster"]["server"])
    host = urllib.parse.urlsplit(server).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"{kubeconfig} points at {host}, not 127.0.0.1; refusing to use it")
    return server


# ------------------------------------------------------------------------------ hack/local-cluster's CLI


class LocalClusterFailed(Exception):
    """``hack/local-cluster`` exited non-zero; the message ends with the end of what it said."""


def local_cluster(
    *args: str, state_dir: Path | None = None, timeout: float | None = None, show_progress: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``hack/local-cluster [--state-dir STATE_DIR] ARGS``; raise `LocalClusterFailed` if it fails.

    Its log goes to stderr: kept for the error message, or passed through if ``show_progress`` (a first
    build takes a quarter of an hour, and a person waiting wants to see it move).
    """
    argv = [str(LOCAL_CLUSTER), *(("--state-dir", str(state_dir)) if state_dir else ()), *args]
    stderr = None if show_progress else subprocess.PIPE
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout)
    if result.returncode != 0:
        said = "see above" if show_progress else result.stderr[-4000:]
        raise LocalClusterFailed(f"hack/local-cluster {' '.join(args)} failed:\n{said}")
    return result


def start_local_cluster(state_dir: Path, kcm_args: Sequence[str] = (), show_progress: bool = False) -> Path:
    """``hack/local-cluster up`` (harmless when it is up already); returns the kubeconfig it wrote."""
    kcm_flags = (f"--kcm-arg={arg}" for arg in kcm_args)
    up = local_cluster("up", *kcm_flags, state_dir=state_dir, show_progress=show_progress)
    return Path(up.stdout.strip().splitlines()[-1])


def stop_local_cluster(state_dir: Path) -> None:
    """``hack/local-cluster down``: stop the processes it recorded and remove the state; never raises."""
    subprocess.run([str(LOCAL_CLUSTER), "--state-dir", str(state_dir), "down"], check=False)


def local_cluster_running(state_dir: Path) -> bool:
    """Whether every component under ``state_dir`` runs and the API server is ready."""
    status = [str(LOCAL_CLUSTER), "--state-dir", str(state_dir), "status"]
    return subprocess.run(status, capture_output=True, check=False).returncode == 0


@functools.cache
def local_kubectl() -> Path:
    """The kubectl that ``hack/local-cluster`` built, asked once per process (the answer hashes go.sum)."""
    return Path(local_cluster("bin-dir").stdout.strip().splitlines()[-1]) / "kubectl"
