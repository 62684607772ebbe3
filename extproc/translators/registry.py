"""Provider type -> spec (translator, wire API, default upstream, auth, headers, ...).

Adding a provider: write its module with a translator and a ``SPEC`` (or reuse
``openai_compat`` and add one entry to its ``SPECS``), then list it here. What
the rest of the gateway needs to know about all providers at once is derived
below from the specs, never spelled out elsewhere.
"""

from __future__ import annotations

from extproc.translators import azure, claude, gemini, ollama, openai_compat
from extproc.translators.base import ProviderSpec

PROVIDER_CATALOG: dict[str, ProviderSpec] = {
    s.type: s for s in (*openai_compat.SPECS, claude.SPEC, azure.SPEC, gemini.SPEC, ollama.SPEC)
}


def _union(names: object) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))  # type: ignore[call-overload]


# Where clients (OpenAI, Anthropic, Azure, Gemini SDKs) put a key: every
# provider's key header. Never forwarded unless the provider's own key overwrites it.
CLIENT_KEY_HEADERS: tuple[str, ...] = _union(
    n for s in PROVIDER_CATALOG.values() for n in s.auth.header_names
)
# Headers only some providers take (anthropic-version): one provider's attempt
# must not hand them to the next provider's.
PROVIDER_ONLY_HEADERS: tuple[str, ...] = _union(
    h.name for s in PROVIDER_CATALOG.values() for h in s.headers
)
# The type of a provider the config leaves untyped (the plugin's, an ASM
# LLMProvider on an unknown host): any OpenAI-compatible upstream.
DEFAULT_TYPE = "generic"
# Each type's OpenTelemetry `gen_ai.provider.name` (traces).
GENAI_PROVIDER_NAMES: dict[str, str] = {t: s.genai_name or t for t, s in PROVIDER_CATALOG.items()}
# Where an LLM guard (or rewriter) without a provider sends its chat call: the
# seed plugin's dashscope.
GUARD_DEFAULT: ProviderSpec = PROVIDER_CATALOG["dashscope"]


def spec_of(provider_type: str) -> ProviderSpec:
    spec = PROVIDER_CATALOG.get(provider_type)
    if spec is None:
        known = ", ".join(sorted(PROVIDER_CATALOG))
        raise ValueError(f"unknown provider type {provider_type!r}; known types: {known}")
    return spec
