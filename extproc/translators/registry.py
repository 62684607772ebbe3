"""Provider type -> spec (translator, wire API, default upstream, auth, settings).

Adding a provider: write its module with a translator and a ``SPEC`` (or reuse
``openai_compat`` and add one entry to its ``SPECS``), then list it here.
"""

from __future__ import annotations

from extproc.translators import azure, bedrock, claude, gemini, ollama, openai_compat, vertex
from extproc.translators.base import ProviderSpec

PROVIDER_CATALOG: dict[str, ProviderSpec] = {
    s.type: s
    for s in (
        *openai_compat.SPECS,
        azure.SPEC,
        claude.SPEC,
        gemini.SPEC,
        ollama.SPEC,
        bedrock.SPEC,
        vertex.SPEC,
    )
}


def spec_of(provider_type: str) -> ProviderSpec:
    spec = PROVIDER_CATALOG.get(provider_type)
    if spec is None:
        known = ", ".join(sorted(PROVIDER_CATALOG))
        raise ValueError(f"unknown provider type {provider_type!r}; known types: {known}")
    return spec
