"""What a request cost: prices per provider and model, in USD per million tokens.

The config's `observability.prices` come first, then the shipped table below
(unless `no_default_prices`). A price names a provider (a configured name or
a provider type) and a model: exact, or "prefix*" where the longest matching
prefix wins, so "gpt-4o-mini*" beats "gpt-4o*" and a dated model name
("gpt-4o-2024-08-06") finds its family's price.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from extproc.usage import Usage

PER_TOKEN = 1e-6  # prices are per million tokens


@dataclass(frozen=True, slots=True)
class Price:
    provider: str
    model: str
    input: float
    output: float
    cached_input: float | None = None

    def cost(self, u: Usage) -> float:
        """USD for `u`; cached input tokens are a part of the input tokens."""
        cached = min(max(u.cached_tokens, 0), max(u.input_tokens, 0))
        cached_price = self.input if self.cached_input is None else self.cached_input
        fresh = max(u.input_tokens, 0) - cached
        total = fresh * self.input + cached * cached_price + max(u.output_tokens, 0) * self.output
        return total * PER_TOKEN


# Published list prices (USD per million tokens; input, output, cached input)
# of common models, late 2025. Indicative only: a config's `prices` replace
# any entry (same provider and model) and add others. Keyed by provider type.
DEFAULT_PRICES: tuple[Price, ...] = (
    # OpenAI
    Price("openai", "gpt-5*", 1.25, 10.0, 0.125),
    Price("openai", "gpt-5-mini*", 0.25, 2.0, 0.025),
    Price("openai", "gpt-5-nano*", 0.05, 0.4, 0.005),
    Price("openai", "gpt-4.1*", 2.0, 8.0, 0.5),
    Price("openai", "gpt-4.1-mini*", 0.4, 1.6, 0.1),
    Price("openai", "gpt-4.1-nano*", 0.1, 0.4, 0.025),
    Price("openai", "gpt-4o*", 2.5, 10.0, 1.25),
    Price("openai", "gpt-4o-mini*", 0.15, 0.6, 0.075),
    Price("openai", "o3*", 2.0, 8.0, 0.5),
    Price("openai", "o3-mini*", 1.1, 4.4, 0.55),
    Price("openai", "o4-mini*", 1.1, 4.4, 0.275),
    Price("openai", "text-embedding-3-small", 0.02, 0.0),
    Price("openai", "text-embedding-3-large", 0.13, 0.0),
    # Anthropic (cached input: cache reads)
    Price("claude", "claude-opus-4-5*", 5.0, 25.0, 0.5),
    Price("claude", "claude-opus-4*", 15.0, 75.0, 1.5),
    Price("claude", "claude-sonnet-4*", 3.0, 15.0, 0.3),
    Price("claude", "claude-3-7-sonnet*", 3.0, 15.0, 0.3),
    Price("claude", "claude-3-5-sonnet*", 3.0, 15.0, 0.3),
    Price("claude", "claude-haiku-4-5*", 1.0, 5.0, 0.1),
    Price("claude", "claude-3-5-haiku*", 0.8, 4.0, 0.08),
    # Google Gemini (prompts up to 200k tokens)
    Price("gemini", "gemini-2.5-pro*", 1.25, 10.0, 0.31),
    Price("gemini", "gemini-2.5-flash*", 0.3, 2.5, 0.075),
    Price("gemini", "gemini-2.5-flash-lite*", 0.1, 0.4, 0.025),
    Price("gemini", "gemini-2.0-flash*", 0.1, 0.4, 0.025),
    # DeepSeek
    Price("deepseek", "deepseek-chat", 0.27, 1.1, 0.07),
    Price("deepseek", "deepseek-reasoner", 0.55, 2.19, 0.14),
)

# Provider types that serve another type's models under the same names.
_SAME_MODELS = {"azure": "openai"}


class _Layer:
    __slots__ = ("exact", "prefix")

    def __init__(self, prices: Iterable[Price]) -> None:
        exact: dict[tuple[str, str], Price] = {}
        prefix: dict[str, list[tuple[str, Price]]] = {}
        for p in prices:  # earlier entries win
            if p.model.endswith("*"):
                entries = prefix.setdefault(p.provider, [])
                if all(m != p.model[:-1] for m, _ in entries):
                    entries.append((p.model[:-1], p))
            else:
                exact.setdefault((p.provider, p.model), p)
        for entries in prefix.values():
            entries.sort(key=lambda e: len(e[0]), reverse=True)
        self.exact = exact
        self.prefix = {k: tuple(v) for k, v in prefix.items()}

    def find(self, keys: Iterable[str], model: str) -> Price | None:
        for key in keys:
            p = self.exact.get((key, model))
            if p is not None:
                return p
            for pre, price in self.prefix.get(key, ()):
                if model.startswith(pre):
                    return price
        return None


class PriceTable:
    """Immutable lookup: (provider name, provider type, model) -> Price or None.

    The configured prices are searched whole before the shipped ones: a
    configured "gpt-4o*" also covers "gpt-4o-mini", which the shipped table
    prices on its own."""

    __slots__ = ("_layers",)

    def __init__(self, *layers: Iterable[Price]) -> None:
        self._layers = tuple(
            layer for layer in (_Layer(x) for x in layers) if layer.exact or layer.prefix
        )

    def __bool__(self) -> bool:
        return bool(self._layers)

    def find(self, provider: str, provider_type: str, model: str) -> Price | None:
        if not model:
            return None
        keys = [k for k in (provider, provider_type, _SAME_MODELS.get(provider_type, "")) if k]
        for layer in self._layers:
            p = layer.find(keys, model)
            if p is not None:
                return p
        return None

    def cost(
        self, provider: str, provider_type: str, models: Iterable[str], usage: Usage | None
    ) -> float | None:
        """USD for `usage` at the first of `models` with a price; None when none has one."""
        if usage is None:
            return None
        for m in models:
            p = self.find(provider, provider_type, m)
            if p is not None:
                return p.cost(usage)
        return None


def price_table(configured: Iterable[Price], defaults: bool = True) -> PriceTable:
    return PriceTable(tuple(configured), DEFAULT_PRICES if defaults else ())
