from __future__ import annotations

import pytest

from extproc.providers.token_pool import NoTokenAvailable, TokenPool

TOKENS = ["sk-alpha-SECRET", "sk-beta-SECRET", "sk-gamma-SECRET"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(tokens: list[str] | None = None, cooldown_s: float = 60) -> tuple[TokenPool, FakeClock]:
    clock = FakeClock()
    return TokenPool(TOKENS if tokens is None else tokens, cooldown_s, clock=clock), clock


def assert_no_secret(text: str) -> None:
    assert "SECRET" not in text
    assert "sk-" not in text


def test_round_robin() -> None:
    pool, _ = make()
    assert [pool.pick() for _ in range(7)] == [*TOKENS, *TOKENS, TOKENS[0]]


def test_duplicates_are_collapsed() -> None:
    pool, _ = make(["a", "b", "a"])
    assert len(pool) == 2
    assert [pool.pick() for _ in range(4)] == ["a", "b", "a", "b"]


# (status, retry_after, seconds the token stays aside)
@pytest.mark.parametrize(
    ("status", "retry_after", "aside_s"),
    [
        (401, None, 60),
        (429, None, 60),
        (429, 5, 5),
        (429, 0, 0),
        (401, 5, 60),  # retry_after only applies to 429
        (429, -1, 60),  # a nonsensical retry_after falls back to the cooldown
    ],
)
def test_set_aside_statuses(status: int, retry_after: float | None, aside_s: float) -> None:
    pool, clock = make()
    assert pool.pick() == TOKENS[0]
    pool.report(TOKENS[0], status, retry_after=retry_after)
    if aside_s:
        assert [pool.pick() for _ in range(4)] == [TOKENS[1], TOKENS[2], TOKENS[1], TOKENS[2]]
        clock.advance(aside_s - 0.01)
        assert TOKENS[0] not in {pool.pick() for _ in range(4)}
    clock.advance(0.01)
    assert TOKENS[0] in {pool.pick() for _ in range(3)}


def test_a_403_cools_only_through_set_aside() -> None:
    # A 403 may be a content-policy refusal any client can trigger: the status
    # alone never cools the key; the caller sets it aside when the body says
    # the key is refused.
    pool, clock = make()
    pool.report(TOKENS[0], 403)
    assert pool.available() == 3
    pool.set_aside(TOKENS[0])
    assert pool.available() == 2
    clock.advance(60)
    assert pool.available() == 3
    pool.set_aside("sk-unknown-SECRET")
    assert pool.available() == 3


@pytest.mark.parametrize("status", [400, 403, 404, 500, 502, 503, 504, 302])
def test_other_statuses_change_nothing(status: int) -> None:
    pool, _ = make()
    pool.report(TOKENS[0], status)
    assert pool.available() == 3


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_clears_cooldown(status: int) -> None:
    pool, _ = make()
    pool.report(TOKENS[1], 429)
    assert pool.available() == 2
    pool.report(TOKENS[1], status)
    assert pool.available() == 3


def test_unknown_token_report_is_ignored() -> None:
    pool, _ = make()
    pool.report("sk-unknown-SECRET", 401)
    assert pool.available() == 3


def test_longest_cooldown_is_kept() -> None:
    pool, clock = make(["only"], cooldown_s=60)
    pool.report("only", 401)
    pool.report("only", 429, retry_after=1)
    clock.advance(30)
    with pytest.raises(NoTokenAvailable):
        pool.pick()


def test_all_cooling_raises_without_secrets() -> None:
    pool, clock = make(cooldown_s=60)
    pool.report(TOKENS[0], 401)
    clock.advance(10)
    pool.set_aside(TOKENS[1])
    pool.report(TOKENS[2], 429, retry_after=120)
    with pytest.raises(NoTokenAvailable) as info:
        pool.pick()
    message = str(info.value)
    assert_no_secret(message)
    assert_no_secret(repr(info.value))
    assert "all 3 tokens are cooling down" in message
    assert "50.0s" in message
    assert info.value.size == 3
    assert info.value.retry_in_s == pytest.approx(50)
    clock.advance(50)
    assert pool.pick() == TOKENS[0]


def test_single_token_message() -> None:
    pool, _ = make(["sk-one-SECRET"], cooldown_s=5)
    pool.report("sk-one-SECRET", 429)
    with pytest.raises(NoTokenAvailable, match="the token is cooling down; the first returns in 5"):
        pool.pick()


def test_round_robin_continues_after_recovery() -> None:
    pool, clock = make(cooldown_s=10)
    pool.report(TOKENS[1], 401)
    assert [pool.pick() for _ in range(3)] == [TOKENS[0], TOKENS[2], TOKENS[0]]
    clock.advance(10)
    assert [pool.pick() for _ in range(3)] == [TOKENS[1], TOKENS[2], TOKENS[0]]


def test_repr_and_str_hide_tokens() -> None:
    pool, _ = make()
    pool.report(TOKENS[0], 401)
    for text in (repr(pool), str(pool), f"{pool}"):
        assert_no_secret(text)
    assert repr(pool) == "TokenPool(size=3, cooling=1)"


@pytest.mark.parametrize(
    ("tokens", "error"),
    [
        ([], ValueError),
        (["ok", ""], ValueError),
        ("sk-a-string-SECRET", TypeError),
    ],
)
def test_invalid_pools(tokens: list[str], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        TokenPool(tokens)
    assert_no_secret(str(info.value))


def test_negative_cooldown_rejected() -> None:
    with pytest.raises(ValueError, match="cooldown_s"):
        TokenPool(["a"], cooldown_s=-1)


def test_soonest_is_the_token_that_returns_first() -> None:
    pool, clock = make(cooldown_s=30)
    a, b, c = TOKENS
    pool.report(a, 429, retry_after=20)
    pool.report(b, 429, retry_after=5)
    pool.report(c, 401)
    with pytest.raises(NoTokenAvailable):
        pool.pick()
    assert pool.soonest() == b
    clock.advance(6)
    assert pool.pick() == b
