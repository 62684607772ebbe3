from __future__ import annotations

import gc

import pytest

from extproc.guard.cache import VerdictCache
from extproc.guard.verdict import Verdict


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ALLOW = Verdict("allow", "ok")
DENY = Verdict("deny", "pii")


def test_hit_and_miss() -> None:
    cache = VerdictCache(clock=FakeClock())
    key = cache.key("text", "model", "prompt")
    assert cache.get(key) is None
    cache.put(key, DENY)
    assert cache.get(key) == DENY
    assert (cache.hits, cache.misses) == (1, 1)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("t", "m", "p"), ("t2", "m", "p")),
        (("t", "m", "p"), ("t", "m2", "p")),
        (("t", "m", "p"), ("t", "m", "p2")),
        (("ab", "c", "p"), ("a", "bc", "p")),  # field boundaries matter
    ],
)
def test_key_covers_text_model_prompt(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    cache = VerdictCache()
    assert cache.key(*a) != cache.key(*b)
    assert cache.key(*a) == cache.key(*a)


def test_errors_are_not_cached() -> None:
    cache = VerdictCache()
    key = cache.key("t", "m", "p")
    cache.put(key, Verdict.error("timeout"))
    assert cache.get(key) is None
    assert len(cache) == 0


def test_ttl() -> None:
    clock = FakeClock()
    cache = VerdictCache(ttl_s=10, clock=clock)
    key = cache.key("t", "m", "p")
    cache.put(key, ALLOW)
    clock.now = 9.99
    assert cache.get(key) == ALLOW
    clock.now = 10
    assert cache.get(key) is None
    assert len(cache) == 0


def test_lru_bound() -> None:
    cache = VerdictCache(max_entries=2, clock=FakeClock())
    k1, k2, k3 = (cache.key(t, "m", "p") for t in ("1", "2", "3"))
    cache.put(k1, ALLOW)
    cache.put(k2, ALLOW)
    assert cache.get(k1) == ALLOW  # k1 becomes most recently used
    cache.put(k3, DENY)
    assert len(cache) == 2
    assert cache.get(k2) is None
    assert cache.get(k1) == ALLOW
    assert cache.get(k3) == DENY


def test_cache_holds_no_text() -> None:
    cache = VerdictCache()
    text = "my-very-private-text-" + "x" * 10
    cache.put(cache.key(text, "m", "p"), ALLOW)
    gc.collect()
    for key, (_, verdict) in cache._entries.items():
        assert len(key) == 20
        assert text.encode() not in key
        assert text not in verdict.reason
    assert text not in repr(cache)


def test_keys_are_salted_per_cache() -> None:
    assert VerdictCache().key("t", "m", "p") != VerdictCache().key("t", "m", "p")


@pytest.mark.parametrize(("kwargs"), [{"max_entries": 0}, {"ttl_s": 0}])
def test_invalid(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VerdictCache(**kwargs)  # type: ignore[arg-type]
