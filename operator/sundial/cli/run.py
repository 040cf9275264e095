"""``sundial run``: start the operator.

Flags are explicit on purpose: credentials come from ``--kubeconfig PATH`` or ``--in-cluster`` and nothing
else; the peering name is Sundial's own (never kopf's shared ``default``); every replica gets a distinct
priority that favours the oldest one, so a rolling update hands over once instead of at every new pod.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from sundial.decide.jobs import DEPLOYER_IMAGE_ENV, malformed_image_reason, unpinned_image_reason

DEFAULT_PEERING = "sundial"
# Larger than any epoch millisecond we will live to see; an older start gives a larger priority.
_PRIORITY_EPOCH_CEILING_MS = 5_000_000_000_000  # 2128


def oldest_first_priority(started_at: float, tie_breaker: int) -> int:
    """A peering priority that is higher for a replica that started earlier.

    kopf pauses every replica that sees a peer with a higher *or equal* priority, so equal priorities freeze
    them all; the tie-breaker (0-999) keeps two replicas started within the same millisecond apart.
    Milliseconds, not seconds: two replicas started within one second used to be ordered by the tie-breaker
    alone, so the younger won half the time (seen in CI: a replica started 0.6 s later took over).
    The result stays below 2**53, exact as a JSON number everywhere.
    """
    return (_PRIORITY_EPOCH_CEILING_MS - int(started_at * 1000)) * 1000 + tie_breaker


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator",
        description="Run the Sundial operator: arm every ScheduledDeployment and create its Jobs on time.",
        epilog=(
            "examples:\n"
            "  sundial run --kubeconfig ./kubeconfig --all-namespaces --standalone\n"
            "  sundial run --in-cluster --all-namespaces --peering sundial \\\n"
            "      --liveness http://0.0.0.0:8080/healthz --metrics-bind 0.0.0.0:9090"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    creds = parser.add_mutually_exclusive_group(required=True)
    creds.add_argument("--kubeconfig", type=Path, help="the kubeconfig file to use (nothing else is read)")
    creds.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    parser.add_argument("--context", help="the kubeconfig context (default: its current-context)")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument(
        "--peering",
        default=DEFAULT_PEERING,
        help=f"the (Cluster)KopfPeering object the replicas coordinate through (default: {DEFAULT_PEERING})",
    )
    peering.add_argument("--standalone", action="store_true", help="no peering: for a single replica only")
    parser.add_argument("--priority", type=int, help="peering priority (default: older replicas win)")
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=10,
        help="seconds after which a silent peer counts as dead; bounds take-over after a crash (default: 10)",
    )
    parser.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--metrics-bind",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 0.0.0.0:9090 (default: off)",
    )
    parser.add_argument(
        "--kube-api-qps",
        type=float,
        help="at most this many of the operator's own API requests a second, like kube-controller-manager's "
        "flag of that name (default: no limit; kopf's watches and peering are never limited)",
    )
    parser.add_argument(
        "--kube-api-burst",
        type=int,
        help="requests allowed at once above --kube-api-qps (default: 1.5 x QPS, kube-controller-manager's "
        "ratio of 30 to 20)",
    )
    parser.add_argument(
        "--cluster-freezes",
        action="store_true",
        help="with --namespace: also honour ClusterReleaseFreezes (needs list and watch on them "
        "cluster-wide; always on with --all-namespaces, docs/freezes.md)",
    )
    parser.add_argument("--log-format", choices=("plain", "json"), default="plain")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease that shows which replica is active (default: $POD_NAMESPACE or default)",
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="serve only the namespaces whose hash falls in shard I of N (0-based: 0/2 and 1/2 for two "
        "shards); the shard peers through its own PEERING-I-of-N object and signs Lease "
        "sundial-scheduler-I-of-N (default: one shard, every namespace in scope)",
    )
    parser.add_argument(
        "--allow-unpinned-deployer-image",
        action="store_true",
        help="for development only: start even when SUNDIAL_DEPLOYER_IMAGE names the tag latest or no tag, "
        "so that each deploy Job runs whatever that tag points to when it starts",
    )
    parser.set_defaults(handler=run_command)


def deployer_image_from_env(environ: Mapping[str, str], allow_unpinned: bool) -> str:
    """The deploy Jobs' image, from SUNDIAL_DEPLOYER_IMAGE; ValueError says why it cannot be used.

    Checked before the operator starts, not when the first Job is built: a wrong image would otherwise show
    only at the first deploy, possibly weeks later. Unset is refused even with ``allow_unpinned``: there is
    no image to fall back to that would be right for this operator.
    """
    image = environ.get(DEPLOYER_IMAGE_ENV)
    if image is None:
        raise ValueError(
            f"{DEPLOYER_IMAGE_ENV} is not set: set it to the image the deploy Jobs run, pinned by a version "
            "tag or a digest (the shipped manifests set it to the operator's own image)"
        )
    malformed = malformed_image_reason(image)
    if malformed is not None:
        raise ValueError(f"{DEPLOYER_IMAGE_ENV}: {malformed}")
    reason = unpinned_image_reason(image)
    if reason is not None and not allow_unpinned:
        raise ValueError(
            f"{DEPLOYER_IMAGE_ENV}: {reason}; deploy Jobs would run whatever it points to when they start. "
            "Name a version tag or a digest (or, for development only, pass --allow-unpinned-deployer-image)"
        )
    return image


class JsonLogFormatter(JsonFormatter):
    """One JSON object a line: ``time`` (UTC, milliseconds, ``Z``), ``level``, ``logger``, ``message``, and
    ``exception`` and ``object`` (kopf's reference to the object a message is about) when there is one, as
    docs/operations.md describes. kopf's other extras (its settings, a flag) are its internals."""

    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"

    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "exc_info": "exception",
                "k8s_ref": "object",
            },
            reserved_attrs=[*RESERVED_ATTRS, "k8s_skip", "settings"],
        )
        self.converter = time.gmtime

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["level"] = str(log_data["level"]).lower()
        return log_data


def configure_logging(log_format: str, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # kopf logs every handled event at INFO; at 10,000 objects that is noise, not information.
    logging.getLogger("kopf").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    from sundial.runtime.kubeclient import load_credentials
    from sundial.runtime.metrics import MetricsBindError, parse_bind

    try:
        deployer_image = deployer_image_from_env(os.environ, args.allow_unpinned_deployer_image)
    except ValueError as error:
        print(f"sundial run: {error}", file=sys.stderr)
        return 2
    configure_logging(args.log_format, args.verbose)
    try:
        credentials = load_credentials(args.kubeconfig, args.in_cluster, args.context)
        metrics_bind = None if args.metrics_bind is None else parse_bind(args.metrics_bind)
    except ValueError as error:
        print(f"sundial run: {error}", file=sys.stderr)
        return 2
    if (args.kube_api_qps is not None and args.kube_api_qps <= 0) or (
        args.kube_api_burst is not None and (args.kube_api_qps is None or args.kube_api_burst < 1)
    ):
        print(
            "sundial run: --kube-api-qps must be above 0; --kube-api-burst needs it, at 1 or more",
            file=sys.stderr,
        )
        return 2
    from sundial.api.shards import parse_shard

    try:
        shard = None if args.shard is None else parse_shard(args.shard)
    except ValueError as error:
        print(f"sundial run: {error}", file=sys.stderr)
        return 2
    peering_name = None if args.standalone else args.peering
    if shard is not None and peering_name is not None:
        peering_name = shard.peering_name(peering_name)
    priority = args.priority
    if priority is None:
        priority = oldest_first_priority(time.time(), random.SystemRandom().randrange(1000))
    from sundial.runtime.main import run_operator
    from sundial.runtime.options import OperatorOptions

    options = OperatorOptions(
        credentials=credentials,
        namespaces=None if args.all_namespaces else tuple(args.namespace),
        peering_name=peering_name,
        priority=priority,
        peering_lifetime=args.peering_lifetime,
        liveness_endpoint=args.liveness,
        lease_namespace=args.lease_namespace,
        identity=os.environ.get("POD_NAME") or f"{os.uname().nodename}-{os.getpid()}",
        deployer_image=deployer_image,
        metrics_bind=metrics_bind,
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
        shard=shard,
        cluster_freezes=args.cluster_freezes,
    )
    logging.getLogger("sundial").info(
        "starting: %s, %s%s, peering %s (priority %d), Lease %s/%s",
        credentials.source,
        "all namespaces" if options.namespaces is None else "namespaces " + ",".join(options.namespaces),
        "" if shard is None else f" (those in shard {shard})",
        options.peering_name or "off (standalone)",
        priority,
        options.lease_namespace,
        options.lease_name,
    )
    try:
        asyncio.run(run_operator(options))
    except MetricsBindError as error:
        print(f"sundial run: {error}", file=sys.stderr)
        return 2
    return 0
