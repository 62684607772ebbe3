"""Provider type -> translator and default upstream.

Adding a provider: write its translator module (or reuse ``openai_compat``)
and add one :class:`ProviderSpec` entry to :data:`PROVIDER_CATALOG`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from extproc.translators.azure import AZURE
from extproc.translators.base import Translator
from extproc.translators.claude import CLAUDE
from extproc.translators.gemini import GEMINI
from extproc.translators.ollama import OLLAMA
from extproc.translators.openai_compat import make

AuthStyle = Literal["bearer", "optional-bearer", "api-key", "x-api-key", "x-goog-api-key"]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    translator: Translator
    host: str | None  # None: no public default, the config must give one
    base_path: str
    auth: AuthStyle  # how the provider key is sent ("optional-" when none may be needed)
    supports_embeddings: bool


def _compat(
    name: str, host: str | None, base_path: str, *, embeddings: bool, auth: AuthStyle = "bearer"
) -> ProviderSpec:
    return ProviderSpec(make(name), host, base_path, auth, embeddings)


PROVIDER_CATALOG: dict[str, ProviderSpec] = {
    "openai": _compat("openai", "api.openai.com", "/v1", embeddings=True),
    "qwen": _compat("qwen", "dashscope.aliyuncs.com", "/compatible-mode/v1", embeddings=True),
    "dashscope": _compat(
        "dashscope", "dashscope.aliyuncs.com", "/compatible-mode/v1", embeddings=True
    ),
    "deepseek": _compat("deepseek", "api.deepseek.com", "", embeddings=False),
    "moonshot": _compat("moonshot", "api.moonshot.cn", "/v1", embeddings=False),
    "groq": _compat("groq", "api.groq.com", "/openai/v1", embeddings=False),
    "mistral": _compat("mistral", "api.mistral.ai", "/v1", embeddings=True),
    "zhipuai": _compat("zhipuai", "open.bigmodel.cn", "/api/paas/v4", embeddings=True),
    "baichuan": _compat("baichuan", "api.baichuan-ai.com", "/v1", embeddings=True),
    "yi": _compat("yi", "api.lingyiwanwu.com", "/v1", embeddings=False),
    "stepfun": _compat("stepfun", "api.stepfun.com", "/v1", embeddings=False),
    "ai360": _compat("ai360", "api.360.cn", "/v1", embeddings=True),
    "together": _compat("together", "api.together.xyz", "/v1", embeddings=True),
    "openrouter": _compat("openrouter", "openrouter.ai", "/api/v1", embeddings=False),
    "fireworks": _compat("fireworks", "api.fireworks.ai", "/inference/v1", embeddings=True),
    "vllm": _compat("vllm", None, "/v1", embeddings=True, auth="optional-bearer"),
    "generic": _compat("generic", None, "", embeddings=True, auth="optional-bearer"),
    "azure": ProviderSpec(AZURE, None, "", "api-key", True),
    "claude": ProviderSpec(CLAUDE, "api.anthropic.com", "", "x-api-key", False),
    "gemini": ProviderSpec(
        GEMINI, "generativelanguage.googleapis.com", "/v1beta", "x-goog-api-key", True
    ),
    "ollama": ProviderSpec(OLLAMA, None, "", "optional-bearer", True),
}


def get_translator(provider_type: str) -> Translator:
    spec = PROVIDER_CATALOG.get(provider_type)
    if spec is None:
        known = ", ".join(sorted(PROVIDER_CATALOG))
        raise ValueError(f"unknown provider type {provider_type!r}; known types: {known}")
    return spec.translator
