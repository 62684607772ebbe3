"""Prices: lookup order, prefixes, cached input, the shipped table."""

from __future__ import annotations

import pytest

from extproc.cost import DEFAULT_PRICES, Price, PriceTable, price_table
from extproc.usage import Usage


def test_cost_per_million_tokens_with_cached_input() -> None:
    p = Price("openai", "gpt-4o", 2.5, 10.0, 1.25)
    u = Usage.of(1000, 200, cached_tokens=400)
    assert p.cost(u) == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10.0) / 1e6)
    # No cached price: cached tokens cost the input price.
    assert Price("x", "m", 1.0, 2.0).cost(u) == pytest.approx((1000 * 1.0 + 200 * 2.0) / 1e6)
    # Cached tokens above the input tokens (a broken upstream) are capped.
    assert p.cost(Usage.of(10, 0, cached_tokens=50)) == pytest.approx(10 * 1.25 / 1e6)


def test_longest_prefix_wins_and_exact_beats_prefix() -> None:
    t = price_table([], defaults=True)
    mini = t.find("my-openai", "openai", "gpt-4o-mini-2024-07-18")
    full = t.find("my-openai", "openai", "gpt-4o-2024-08-06")
    assert mini is not None and mini.model == "gpt-4o-mini*"
    assert full is not None and full.model == "gpt-4o*"
    t2 = PriceTable([Price("p", "m*", 1, 1), Price("p", "m-1", 2, 2)])
    found = t2.find("p", "", "m-1")
    assert found is not None and found.input == 2


def test_config_prices_come_before_the_shipped_table_and_match_names_first() -> None:
    mine = [Price("openai", "gpt-4o*", 1.0, 1.0), Price("corp-gpt", "gpt-4o-mini", 9.0, 9.0)]
    t = price_table(mine)
    # A configured "gpt-4o*" covers gpt-4o-mini too (the shipped table comes after).
    got = t.find("other", "openai", "gpt-4o-mini")
    assert got is not None and got.input == 1.0
    # A provider's name is matched before its type.
    got = t.find("corp-gpt", "openai", "gpt-4o-mini")
    assert got is not None and got.input == 9.0
    # Azure serves OpenAI's models under their names.
    assert t.find("az", "azure", "gpt-4.1") is not None
    assert t.find("x", "qwen", "gpt-4.1") is None


def test_no_default_prices_and_models_without_price() -> None:
    t = price_table([], defaults=False)
    assert not t
    assert t.cost("openai", "openai", ("gpt-4o",), Usage.of(1, 1)) is None
    t = price_table([Price("qwen", "qwen-turbo", 2.0, 6.0)], defaults=False)
    # The served model first, then the mapped one.
    assert t.cost("qwen", "qwen", ("qwen-turbo-2025", "qwen-turbo"), Usage.of(11, 7)) == (
        pytest.approx((11 * 2.0 + 7 * 6.0) / 1e6)
    )
    assert t.cost("qwen", "qwen", ("qwen-turbo",), None) is None
    assert t.find("qwen", "qwen", "") is None


def test_shipped_table_is_sane() -> None:
    seen = set()
    for p in DEFAULT_PRICES:
        assert (p.provider, p.model) not in seen
        seen.add((p.provider, p.model))
        assert 0 <= p.input < 100 and 0 <= p.output < 200
        assert p.cached_input is None or p.cached_input <= p.input
