"""What an API server's answer means, said one way for the operator, the kubectl plugin and the deployers.

Nothing here imports the Kubernetes client when the module loads: the plugin's offline commands (``preview``,
``timeline``) import this module and must start without paying for the client.
"""

from __future__ import annotations

import json
from typing import Any

RETRYABLE = frozenset({429, 500, 502, 503, 504})
"""Answers that say "not now" rather than "no": the call is retried instead of failing what it was for."""
REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}
"""The one-word reason recorded for a refusal, by HTTP status; any other status is ``ApiError``."""


def api_message(error: Any) -> str:
    """The server's own sentence from an ``ApiException`` (its Status ``message``), else status and reason."""
    try:
        return str(json.loads(error.body or "").get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return f"{error.status} {error.reason}"


def api_reason(error: Any) -> str:
    """One CamelCase word for an ``ApiException``, as a condition or a run record carries it."""
    return REASONS.get(error.status, "ApiError")


def is_outage(error: BaseException) -> bool:
    """An error that says the API server is unreachable, overloaded or slow, not that our code is wrong."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return error.status in RETRYABLE or error.status == 0
    return isinstance(error, urllib3.exceptions.HTTPError | OSError)
