"""Google Vertex AI <-> OpenAI: Gemini and Claude models under one project/region.

* Gemini: ``/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:generateContent``
  and ``:streamGenerateContent?alt=sse``; the body, answers and streams are
  the Gemini API's (`gemini_body.build_body`, the Gemini translator's reading).
* Claude (a model named ``claude…``): ``…/publishers/anthropic/models/{m}:rawPredict``
  and ``:streamRawPredict``; Anthropic's Messages body with
  ``anthropic_version: vertex-2023-10-16`` and no ``model``; answers and
  streams are Anthropic's (the Claude translator's reading).
* Embeddings: ``…/publishers/google/models/{m}:predict`` (text-embedding models).

The bearer token comes from `cloud/gcp.py` (refreshed in the background)
through ``target.api_key``: this module stays sans-IO.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from extproc.cloud.setup import vertex_host, vertex_setup
from extproc.translators.base import (
    Framing,
    HeaderAuth,
    ProviderSpec,
    ProviderTarget,
    SettingPaths,
    StreamTranslator,
    TranslatedResponse,
    TranslationError,
    UpstreamRequest,
)
from extproc.translators.claude import CLAUDE
from extproc.translators.claude import build_body as claude_body
from extproc.translators.common import (
    as_int,
    as_obj,
    as_objs,
    embedding_inputs,
    embeddings_body,
    json_request,
    map_error,
)
from extproc.translators.gemini import GEMINI
from extproc.translators.gemini_body import build_body as gemini_body
from extproc.translators.hosted_anthropic import VERTEX_VERSION, hosted_payload
from extproc.usage import Usage

# Never forwarded to Google: where the client's own key might be, and
# accept-encoding (Google compresses when asked; the gateway reads every
# answer and decodes no compression).
_REMOVE = ("x-api-key", "x-goog-api-key", "accept-encoding")


def is_claude(model: str) -> bool:
    return model.lower().startswith("claude")


def _model(body: dict[str, Any], target: ProviderTarget) -> str:
    model = target.model or str(body.get("model") or "")
    if not model:
        raise TranslationError("vertex needs a model (model, default_model or model_mapping)")
    return model.removeprefix("models/")


def model_path(target: ProviderTarget, model: str, op: str) -> str:
    project = str(target.settings.get("project") or "")
    region = str(target.settings.get("region") or "")
    publisher = "anthropic" if is_claude(model) else "google"
    return (
        f"{target.base_path.rstrip('/')}/projects/{quote(project, safe='')}"
        f"/locations/{quote(region, safe='')}/publishers/{publisher}"
        f"/models/{quote(model, safe='')}:{op}"
    )


def _headers(target: ProviderTarget) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {target.api_key}"),) if target.api_key else ()


class VertexTranslator:
    name = "vertex"
    spec: ProviderSpec

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        model = _model(body, target)
        if is_claude(model):
            version = str(target.settings.get("anthropic_version") or VERTEX_VERSION)
            payload = hosted_payload(claude_body(body, target), version, True, target.stream)
            op = "streamRawPredict" if target.stream else "rawPredict"
        else:
            payload = gemini_body(body, target)
            op = "streamGenerateContent?alt=sse" if target.stream else "generateContent"
        return json_request(model_path(target, model, op), payload, _headers(target), _REMOVE)

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        inner = CLAUDE if is_claude(target.model) else GEMINI
        return inner.chat_response(status, body, target)

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> StreamTranslator:
        inner = CLAUDE if is_claude(target.model) else GEMINI
        return inner.chat_stream(target, include_usage, max_line_bytes)

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        model = _model(body, target)
        if is_claude(model):
            raise TranslationError("Claude models have no embeddings API")
        params: dict[str, Any] = {}
        if isinstance(body.get("dimensions"), int):
            params["outputDimensionality"] = body["dimensions"]
        payload: dict[str, Any] = {"instances": [{"content": t} for t in embedding_inputs(body)]}
        if params:
            payload["parameters"] = params
        return json_request(
            model_path(target, model, "predict"), payload, _headers(target), _REMOVE
        )

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        from extproc.translators.common import require_object

        obj = require_object(body, "vertex embeddings response")
        vectors, tokens = [], 0
        for p in as_objs(obj.get("predictions")):
            emb = as_obj(p.get("embeddings"))
            if isinstance(emb.get("values"), list):
                vectors.append(emb["values"])
                tokens += as_int(as_obj(emb.get("statistics")).get("token_count"))
        usage = Usage(input_tokens=tokens, output_tokens=0, total_tokens=tokens)
        return TranslatedResponse(embeddings_body(vectors, target.model, usage), usage, None)

    def error_response(self, status: int, body: bytes) -> bytes:
        return map_error(status, body)

    # Anthropic Messages clients: Claude models through rawPredict, Gemini
    # through the (Anthropic, OpenAI) + this translator composition.

    def anthropic_native(self, target: ProviderTarget) -> bool:
        return is_claude(target.model)

    def anthropic_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        model = _model(body, target)
        version = str(target.settings.get("anthropic_version") or VERTEX_VERSION)
        op = "streamRawPredict" if target.stream else "rawPredict"
        return json_request(
            model_path(target, model, op),
            hosted_payload(body, version, True, target.stream),
            _headers(target),
            (*_REMOVE, "anthropic-version"),
        )

    def anthropic_stream(self, target: ProviderTarget, max_line_bytes: int | None) -> Any:
        from extproc.translators.anthropic.native import NativeStreamTap

        return NativeStreamTap(max_line_bytes)


VERTEX = VertexTranslator()
# Custom settings land in Gemini's places (a Claude model reads the Anthropic
# body, where these names are top-level: use raw settings for it).
SETTINGS: SettingPaths = {
    "max_tokens": (("generationConfig", "maxOutputTokens"),),
    "temperature": (("generationConfig", "temperature"),),
    "top_p": (("generationConfig", "topP"),),
    "top_k": (("generationConfig", "topK"),),
    "seed": (("generationConfig", "seed"),),
}
# The host depends on the region (options.region); config/providers fills it.
SPEC = ProviderSpec(
    type="vertex",
    translator=VERTEX,
    wire="vertex",
    host=None,  # from options.region (or options.endpoint): cloud/setup.py
    base_path="/v1",
    # The OAuth token the background refresh keeps (target.api_key).
    auth=HeaderAuth("authorization", "Bearer", optional=True),
    framing=Framing.SSE,
    embeddings=True,
    settings_paths=SETTINGS,
    genai_name="gcp.vertex_ai",
    models_of="gemini",  # Gemini models under the Gemini API's names, priced as there
    upstream_auth=vertex_setup,
)

__all__ = ["SPEC", "VERTEX", "VertexTranslator", "is_claude", "vertex_host"]
