"""Which operator shard serves a namespace (``sundial run --shard I/N``), and the names a shard goes by.

A namespace belongs to shard ``sha256(name) mod N``: the same answer in every process, on every machine and
in every Python (the built-in ``hash`` of a string is salted per process, so it cannot be used). Whole
namespaces, because a dependsOn chain never leaves its namespace: a chain is always served by one shard,
which plans its instants together.

Each shard is an ordinary Sundial deployment of its own, with replicas of its own: its own kopf peering
object (the replicas of one shard elect one active among themselves, never across shards) and its own Lease,
so ``kubectl get leases`` shows which replica fires for which shard. Changing N moves namespaces between
shards; a run falling due while two shards both serve a namespace is still created once, because the Job's
name, derived from the instant, is the lock (docs/operator.md, "Sharding").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_SHARDS = 256
"""Far more than one machine's cores; a bound keeps a typo (``--shard 1/20000``) from passing."""

SCHEDULER_LEASE = "sundial-scheduler"
"""The Lease that shows which replica fires, for an operator that is not sharded."""

_SHARD = re.compile(r"(\d+)/(\d+)")


def shard_of(namespace: str, count: int) -> int:
    """The index, 0 to ``count`` - 1, of the shard that serves ``namespace``."""
    digest = hashlib.sha256(namespace.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    index: int
    """0-based, as StatefulSet ordinals are."""
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"the number of shards must be 1 to {MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"shard index {self.index} is out of range: with {self.count} shards the indexes are "
                f"0 to {self.count - 1} (--shard 0/{self.count} ... {self.count - 1}/{self.count})"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        return f"{self.index}-of-{self.count}"

    def serves(self, namespace: str) -> bool:
        return shard_of(namespace, self.count) == self.index

    def peering_name(self, base: str) -> str:
        """The peering object of this shard's replicas: never the unsharded name, or one shard's active
        replica would pause every other shard's."""
        return f"{base}-{self.suffix}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` -> Shard; ValueError says what is wrong and what is expected."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"--shard {text!r}: expected INDEX/COUNT, e.g. 0/2 and 1/2 for two shards")
    return Shard(int(match.group(1)), int(match.group(2)))


def lease_name(shard: Shard | None) -> str:
    """The Lease the scheduler runs on and signs: one per shard."""
    return SCHEDULER_LEASE if shard is None else f"{SCHEDULER_LEASE}-{shard.suffix}"
