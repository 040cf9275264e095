"""Where hack/'s Go builds are cached, and the lock that lets two of them share a cache.

Shared by ``hack/local-cluster`` (the control plane) and ``hack/gitops-controllers`` (Flux and Argo
Rollouts). Standard library only: both run before any virtualenv exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """``$SUNDIAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/sundial``, else ``~/.cache/sundial``: never the repo."""
    explicit = os.environ.get("SUNDIAL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "sundial"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
