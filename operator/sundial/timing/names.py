"""Deterministic names for the Jobs that Sundial creates.

Notes
-----
The Job name is the lock (as in the CronJob controller, which names a Job ``<cronjob>-<scheduled
minute>`` and treats AlreadyExists as success): two operator replicas, a retry after a crash, or an object
that is the dependency of two others at the same instant all compute the same name, and the API server
lets only one Job of that name exist.

Form: ``<object name, shortened>-<YYYYMMDD>-<HHMMSS>-<8 hex digits>``, the instant in UTC. The hex digits
are the start of SHA-256 over the full object name and the instant, so names stay distinct when long
object names are shortened or when dots are replaced. sha256, never ``hash()``: Python salts ``hash()``
per process, and the name must be the same in every process and every release.

At most 63 characters, a DNS-1123 label: the Job controller copies the name into the
``batch.kubernetes.io/job-name`` label, whose values are limited to 63 characters.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

MAX_LENGTH = 63
_DIGEST_LENGTH = 8
_SUFFIX_LENGTH = len("-20270314-073000-") + _DIGEST_LENGTH
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def job_name(object_name: str, instant: datetime) -> str:
    """The name of the Job that runs ``object_name`` for the scheduled ``instant`` (timezone-aware)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"job_name needs a timezone-aware instant, got {instant.isoformat()}")
    utc = instant.astimezone(UTC)
    canonical = f"{object_name}@{utc.isoformat(timespec='microseconds')}"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    prefix = _NOT_LABEL.sub("-", object_name.lower())[: MAX_LENGTH - _SUFFIX_LENGTH].strip("-") or "run"
    return f"{prefix}-{utc:%Y%m%d-%H%M%S}-{digest}"


_MANUAL_SUFFIX_LENGTH = len("-manual-20270314-073000-") + _DIGEST_LENGTH


def manual_job_name(object_name: str, request: str, requested_at: datetime) -> str:
    """The name of the Job that serves the manual trigger ``request`` (made at ``requested_at``).

    Every replica and every retry derives the same name from the request, so a trigger runs at most once,
    and ``-manual-`` keeps it apart from every scheduled run's name (whose suffix is all digits).
    """
    if requested_at.tzinfo is None or requested_at.utcoffset() is None:
        raise ValueError(f"manual_job_name needs a timezone-aware instant, got {requested_at.isoformat()}")
    utc = requested_at.astimezone(UTC)
    digest = hashlib.sha256(f"{object_name}@manual@{request}".encode()).hexdigest()[:_DIGEST_LENGTH]
    shortened = _NOT_LABEL.sub("-", object_name.lower())[: MAX_LENGTH - _MANUAL_SUFFIX_LENGTH]
    prefix = shortened.strip("-") or "run"
    return f"{prefix}-manual-{utc:%Y%m%d-%H%M%S}-{digest}"
