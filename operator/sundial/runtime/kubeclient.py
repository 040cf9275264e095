"""Credentials for the operator: exactly the ones the user named, and nothing found by accident.

The Kubernetes client and kopf both fall back on their own to in-cluster credentials and to
``~/.kube/config``/``$KUBECONFIG``. An operator that silently talks to whatever cluster a laptop happens to
point at can deploy to production by mistake, so Sundial takes either an explicit ``--kubeconfig PATH`` or
an explicit ``--in-cluster``, and hands the same credentials to kopf (through a login handler, which also
switches kopf's fallbacks off) and to its own client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from sundial.runtime.ratelimit import Priority, TokenBucket, throttle


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it; the source is named for log lines."""

    source: str
    configuration: Any  # kubernetes.client.Configuration (untyped library)


def load_credentials(kubeconfig: Path | None, in_cluster: bool, context: str | None = None) -> Credentials:
    if (kubeconfig is None) == (not in_cluster):
        raise ValueError("give exactly one of --kubeconfig PATH or --in-cluster")
    configuration = client.Configuration()
    if in_cluster:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in kubernetes 37; Any before it
        source = "in-cluster service account"
    else:
        assert kubeconfig is not None
        if not kubeconfig.is_file():
            raise ValueError(f"--kubeconfig {kubeconfig}: no such file")
        # persist_config=False: never write refreshed tokens back into the user's file.
        config.load_kube_config(  # type: ignore[no-untyped-call, unused-ignore]  # unannotated in kubernetes 37; Any before it
            config_file=str(kubeconfig),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
        source = f"kubeconfig {kubeconfig}"
    return Credentials(source=source, configuration=configuration)


def api_client(
    credentials: Credentials,
    pool_size: int,
    rate_limit: TokenBucket | None = None,
    priority: Priority = Priority.FIRE,
) -> Any:
    """A client whose connection pool matches the number of threads that will use it; with ``rate_limit``,
    every request it sends first takes a token of ``priority`` (``--kube-api-qps``/``--kube-api-burst``)."""
    configuration = credentials.configuration
    configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration)
    if rate_limit is not None:
        throttle(api, rate_limit, priority)
    return api


def raw_body(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """Call the client's ``fn`` for its raw body: no model objects built, and the connection goes back to
    the pool. Building a client model costs milliseconds of CPU under the GIL; the callers parse JSON."""
    response = fn(*args, _preload_content=False, **kwargs)
    try:
        return bytes(response.data)
    finally:
        response.release_conn()


def kopf_connection_info(credentials: Credentials) -> Any:
    """The same credentials in the shape kopf's login handlers return."""
    import kopf

    configuration = credentials.configuration
    # In-cluster tokens rotate; the client refreshes them through this hook, and kopf calls the login
    # handler again on a 401, so refresh before handing the token over.
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook(configuration)
    token = None
    scheme = None
    api_key = configuration.api_key or {}
    authorization = api_key.get("BearerToken") or api_key.get("authorization")
    if authorization:
        scheme, _, token = str(authorization).partition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme,
        token=token,
        default_namespace=None,
    )
