"""What a request cost: the config's `observability.prices` first, then the
shipped list prices, which each provider's spec carries (`ProviderSpec.prices`),
unless `no_default_prices`. The lookup itself is `extproc/prices.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

from extproc.prices import PER_TOKEN, Price, PriceTable
from extproc.translators.registry import PROVIDER_CATALOG

__all__ = ["DEFAULT_PRICES", "PER_TOKEN", "SAME_MODELS", "Price", "PriceTable", "price_table"]

# Published list prices of common models (USD per million tokens; input,
# output, cached input), keyed by provider type. Indicative only: a config's
# `prices` replace any entry (same provider and model) and add others.
DEFAULT_PRICES: tuple[Price, ...] = tuple(p for s in PROVIDER_CATALOG.values() for p in s.prices)
# Provider types that serve another type's models under the same names.
SAME_MODELS: dict[str, str] = {t: s.models_of for t, s in PROVIDER_CATALOG.items() if s.models_of}


def price_table(configured: Iterable[Price], defaults: bool = True) -> PriceTable:
    return PriceTable(
        tuple(configured), DEFAULT_PRICES if defaults else (), same_models=SAME_MODELS
    )
