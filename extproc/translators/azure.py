"""Azure OpenAI: the OpenAI wire format behind per-deployment paths.

Differences from OpenAI: the deployment (not the body's model) selects the
model and is part of the path, ``api-version`` is a required query parameter,
and the key goes in an ``api-key`` header; the client's ``authorization``
(a gateway key) must not leak upstream.
"""

from __future__ import annotations

from urllib.parse import quote

from extproc.translators.base import Framing, HeaderAuth, ProviderSpec, ProviderTarget
from extproc.translators.common import join_path
from extproc.translators.openai_compat import (
    OPENAI_SAMPLING,
    OPENAI_SETTINGS,
    WIRE,
    OpenAICompatTranslator,
)
from extproc.translators.responses import API as RESPONSES_API

DEFAULT_API_VERSION = "2024-10-21"


class AzureTranslator(OpenAICompatTranslator):
    def __init__(self) -> None:
        super().__init__("azure")

    def _path(self, target: ProviderTarget, op: str) -> str:
        deployment = str(target.settings.get("deployment") or target.model)
        version = str(target.settings.get("api_version") or DEFAULT_API_VERSION)
        return join_path(
            target.base_path,
            f"/openai/deployments/{quote(deployment, safe='')}/{op}"
            f"?api-version={quote(version, safe='')}",
        )

    def chat_path(self, target: ProviderTarget) -> str:
        return self._path(target, "chat/completions")

    def embeddings_path(self, target: ProviderTarget) -> str:
        return self._path(target, "embeddings")

    def removed_headers(self) -> tuple[str, ...]:
        return ("authorization",)


AZURE = AzureTranslator()
# No default host: every Azure resource has its own.
SPEC = ProviderSpec(
    type="azure",
    translator=AZURE,
    wire=WIRE,
    host=None,
    base_path="",
    auth=HeaderAuth("api-key"),
    framing=Framing.SSE,
    sampling=OPENAI_SAMPLING,
    native_apis=frozenset({WIRE, RESPONSES_API}),  # OpenAI chat and Responses clients
    embeddings=True,
    settings_paths=OPENAI_SETTINGS,
    models_of="openai",  # OpenAI's models, priced as OpenAI's
    genai_name="azure.ai.openai",
)
