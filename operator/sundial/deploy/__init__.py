"""``sundial deploy …``: the built-in deployers that run inside a deploy Job, from the Sundial image.

The operator never deploys with its own credentials: it creates a Job that runs one of these commands as
the ScheduledDeployment's ``serviceAccountName``. Each deployer makes one change, follows it to the end and
exits 0, or exits 1 with a single line on stderr that says what went wrong. That line becomes the
container's termination message, which the operator copies into the run's record, so the reason a deploy
failed shows up in ``kubectl get scheduleddeployments`` without anyone reading pod logs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
TERMINATION_LOG = "/dev/termination-log"


class DeployFailed(Exception):
    """A deploy that did not succeed; the message is the one line the user will read.

    ``reason`` is one CamelCase word (``Forbidden``, ``ProgressDeadlineExceeded``, ``CredentialsRejected``…).
    The termination message is ``<reason>: <message>``, and the operator reads the reason back from it into
    the run's record and the object's conditions.
    """

    def __init__(self, message: str, reason: str = "DeployFailed") -> None:
        super().__init__(message)
        self.reason = reason


def report_failure(error: DeployFailed) -> int:
    """Print the one-line reason, and leave it where Kubernetes picks up a termination message."""
    line = f"{error.reason}: {' '.join(str(error).split())}"
    print(f"sundial deploy: {line}", file=sys.stderr)
    # The kubelet creates the file in every container; outside a pod there is none, and we create none.
    if os.path.exists(TERMINATION_LOG):
        try:
            with open(TERMINATION_LOG, "w") as termination_log:
                termination_log.write(line[:4000])
        except OSError:
            pass  # a read-only /dev: the FallbackToLogsOnError policy still finds the line on stderr
    return EXIT_FAILED


def add_kubeconfig_argument(parser: Any) -> None:
    """``--kubeconfig``, for the deployers that talk to the Kubernetes API (default: the pod's account)."""
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="use this kubeconfig instead of the pod's service account (for running outside a pod)",
    )


def kubernetes_api_client(kubeconfig: Path | None) -> Any:
    """A client from ``--kubeconfig``, or from the pod's service account when it is not given."""
    from kubernetes import client

    from sundial.runtime.kubeclient import load_credentials

    credentials = load_credentials(kubeconfig, in_cluster=kubeconfig is None)
    return client.ApiClient(credentials.configuration)


def reported(deploy: Callable[[], str]) -> int:
    """Run a deploy to its exit code: its success line on stdout, or its one-line reason (never a bare
    traceback: any other error is reported as DeployerError)."""
    try:
        message = deploy()
    except DeployFailed as error:
        return report_failure(error)
    except Exception as error:
        return report_failure(DeployFailed(f"{type(error).__name__}: {error}", reason="DeployerError"))
    print(message)
    return 0


def add_parser(subparsers: Any) -> None:
    from sundial.deploy import ecs, kubernetes, patch

    parser = subparsers.add_parser(
        "deploy",
        help="carry out a deploy (what a deploy Job runs)",
        description="Carry out one deploy and follow it to the end; exit 1 with a one-line reason if not.",
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    kubernetes.add_parser(targets)
    ecs.add_parser(targets)
    patch.add_parser(targets)
