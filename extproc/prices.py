"""Prices per provider and model, in USD per million tokens, and their lookup.

The config's `observability.prices` come first, then the shipped prices (each
provider spec's, `extproc/cost.py`; unless `no_default_prices`). A price names a provider (a configured name or
a provider type) and a model: exact, or "prefix*" where the longest matching
prefix wins, so "gpt-4o-mini*" beats "gpt-4o*" and a dated model name
("gpt-4o-2024-08-06") finds its family's price.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from extproc.usage import Usage

PER_TOKEN = 1e-6  # prices are per million tokens
_NONE: Mapping[str, str] = {}


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

    __slots__ = ("_layers", "_same_models")

    def __init__(self, *layers: Iterable[Price], same_models: Mapping[str, str] = _NONE) -> None:
        self._layers = tuple(
            layer for layer in (_Layer(x) for x in layers) if layer.exact or layer.prefix
        )
        # Provider types that serve another type's models under the same names.
        self._same_models = same_models

    def __bool__(self) -> bool:
        return bool(self._layers)

    def find(self, provider: str, provider_type: str, model: str) -> Price | None:
        if not model:
            return None
        same = self._same_models.get(provider_type, "")
        keys = [k for k in (provider, provider_type, same) if k]
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
