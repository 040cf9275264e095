"""Which shard serves a namespace (sundial.api.shards): stable, total, and spread evenly."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sundial.api.shards import MAX_SHARDS, SCHEDULER_LEASE, Shard, lease_name, parse_shard, shard_of

# DNS-1123 labels, as namespace names are.
namespace_names = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)


# Pinned on purpose: a namespace's shard must not change between releases (that would move every namespace
# at an upgrade). These are sha256's first 8 bytes, big-endian, modulo N, worked out once by hand with
# `printf %s NAME | sha256sum`; a change of the function turns this table red.
@pytest.mark.parametrize(
    ("namespace", "count", "index"),
    [
        ("default", 2, int("37a8eec1ce19687d", 16) % 2),
        ("default", 3, int("37a8eec1ce19687d", 16) % 3),
        ("shop", 2, int("8d9001d32c6a703d", 16) % 2),
        ("shop", 7, int("8d9001d32c6a703d", 16) % 7),
        ("kube-system", 5, int("88007f70666dbd81", 16) % 5),
    ],
)
def test_a_namespaces_shard_is_sha256_of_its_name_modulo_the_count(
    namespace: str, count: int, index: int
) -> None:
    assert shard_of(namespace, count) == index


@given(namespace_names, st.integers(min_value=1, max_value=MAX_SHARDS))
def test_every_namespace_is_served_by_exactly_one_shard(namespace: str, count: int) -> None:
    serving = [index for index in range(count) if Shard(index, count).serves(namespace)]
    assert serving == [shard_of(namespace, count)]


def test_one_shard_serves_everything() -> None:
    assert all(Shard(0, 1).serves(f"team-{i}") for i in range(200))


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_namespaces_spread_evenly_over_the_shards(count: int) -> None:
    names = [f"team-{i}" for i in range(4000)]
    load = Counter(shard_of(name, count) for name in names)
    expected = len(names) / count
    assert set(load) == set(range(count))
    assert all(abs(load[index] - expected) < 0.1 * expected for index in range(count)), load


@pytest.mark.parametrize(
    ("text", "shard"),
    [("0/1", Shard(0, 1)), ("0/2", Shard(0, 2)), (" 1/2 ", Shard(1, 2)), ("255/256", Shard(255, 256))],
)
def test_shards_parse_from_index_slash_count(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2/2", "shard index 2 is out of range: with 2 shards the indexes are 0 to 1"),
        ("1/0", "the number of shards must be 1 to 256, not 0"),
        ("0/257", "the number of shards must be 1 to 256, not 257"),
        ("-1/2", "expected INDEX/COUNT, e.g. 0/2 and 1/2"),
        ("1", "expected INDEX/COUNT"),
        ("a/b", "expected INDEX/COUNT"),
        ("1/2/3", "expected INDEX/COUNT"),
    ],
)
def test_a_wrong_shard_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_shard(text)


def test_each_shard_has_its_own_lease_and_peering_object_never_the_unsharded_ones() -> None:
    assert lease_name(None) == SCHEDULER_LEASE == "sundial-scheduler"
    names = {lease_name(Shard(i, n)) for n in (1, 2, 3) for i in range(n)}
    assert len(names) == 6 and SCHEDULER_LEASE not in names
    assert lease_name(Shard(1, 2)) == "sundial-scheduler-1-of-2"
    assert Shard(1, 2).peering_name("sundial") == "sundial-1-of-2"
    assert str(Shard(1, 2)) == "1/2"
