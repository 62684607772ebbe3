"""The OpenAI-compatible family (openai, qwen, deepseek, groq, mistral, ...).

These providers speak the OpenAI chat-completions API and differ only in host,
base path and defaults (see ``registry.PROVIDER_CATALOG``), so one translator
class covers them all; responses pass through untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from extproc.prices import Price
from extproc.streaming.sse import SSEDecoder, encode_sse
from extproc.translators.base import (
    Framing,
    HeaderAuth,
    ProviderSpec,
    ProviderTarget,
    SettingPaths,
    StreamFacts,
    TranslatedResponse,
    UpstreamRequest,
)
from extproc.translators.common import (
    SSE,
    join_path,
    json_request,
    loads_object,
    map_error,
    usage_from_openai,
)
from extproc.translators.responses import API as RESPONSES_API
from extproc.usage import Usage


def wants_upstream_usage(target: ProviderTarget) -> bool:
    """Whether we ask the provider for stream usage (settings["include_usage"], default on).

    The gateway meters tokens, so by default every stream asks for the usage
    chunk; set ``include_usage: false`` for a provider that rejects
    ``stream_options``.
    """
    return bool(target.settings.get("include_usage", True))


class OpenAICompatTranslator:
    """One instance per provider type; the type only names it in logs/metrics."""

    spec: ProviderSpec

    def __init__(self, name: str) -> None:
        self.name = name

    # -- request -------------------------------------------------------

    def prepare_chat_body(self, body: dict[str, Any], target: ProviderTarget) -> dict[str, Any]:
        out = dict(body)  # shallow copy: never mutate the caller's parsed body
        if target.model:
            out["model"] = target.model
        if target.stream:
            out["stream"] = True
            if wants_upstream_usage(target):
                so = out.get("stream_options")
                so = dict(so) if isinstance(so, dict) else {}
                so["include_usage"] = True
                out["stream_options"] = so
        elif out.get("stream"):
            out["stream"] = False
        return out

    def chat_path(self, target: ProviderTarget) -> str:
        return join_path(target.base_path, "/chat/completions")

    def embeddings_path(self, target: ProviderTarget) -> str:
        return join_path(target.base_path, "/embeddings")

    def removed_headers(self) -> tuple[str, ...]:
        return ()

    def chat_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        return json_request(
            self.chat_path(target),
            self.prepare_chat_body(body, target),
            self.spec.upstream_headers(target),
            self.removed_headers(),
        )

    def embeddings_request(self, body: dict[str, Any], target: ProviderTarget) -> UpstreamRequest:
        out = dict(body)
        if target.model:
            out["model"] = target.model
        return json_request(
            self.embeddings_path(target),
            out,
            self.spec.upstream_headers(target),
            self.removed_headers(),
        )

    # -- response ------------------------------------------------------

    def chat_response(self, status: int, body: bytes, target: ProviderTarget) -> TranslatedResponse:
        obj = loads_object(body)
        if obj is None:  # not ours to fix: pass through what the provider said
            return TranslatedResponse(body, None, None)
        model = obj.get("model")
        return TranslatedResponse(
            body, usage_from_openai(obj.get("usage")), model if isinstance(model, str) else None
        )

    def embeddings_response(
        self, status: int, body: bytes, target: ProviderTarget
    ) -> TranslatedResponse:
        return self.chat_response(status, body, target)

    def chat_stream(
        self, target: ProviderTarget, include_usage: bool, max_line_bytes: int | None = None
    ) -> OpenAIStreamTap:
        # We only need to hide the usage chunk when *we* asked for it and the
        # client did not; otherwise the client gets the upstream bytes as-is.
        drop = target.stream and wants_upstream_usage(target) and not include_usage
        return OpenAIStreamTap(drop_usage_chunk=drop, max_line_bytes=max_line_bytes)

    def error_response(self, status: int, body: bytes) -> bytes:
        obj = loads_object(body)
        err = obj.get("error") if obj else None
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return body  # already the OpenAI shape: keep every provider detail
        return map_error(status, body)


class OpenAIStreamTap(StreamFacts):
    """Passes an OpenAI SSE stream through while reading usage and model.

    Pass-through mode returns each upstream chunk unchanged (same bytes object)
    and only JSON-parses the events that can carry something we need: the
    first (for ``model``) and those mentioning ``"usage"``. In drop mode the
    events are re-framed (data is never re-serialised) so the usage-only chunk
    the client did not ask for can be removed.
    """

    content_type = SSE

    def __init__(self, drop_usage_chunk: bool, max_line_bytes: int | None = None) -> None:
        self._drop = drop_usage_chunk
        self._decoder = SSEDecoder(max_line_bytes) if max_line_bytes else SSEDecoder()
        self._usage: Usage | None = None
        self._model: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        events = self._decoder.feed(chunk)
        if not self._drop:
            for ev in events:
                self._inspect(ev.data)
            return chunk
        out: list[bytes] = []
        for ev in events:
            if self._inspect(ev.data):
                continue
            out.append(encode_sse(ev.data, None if ev.event == "message" else ev.event))
        return b"".join(out)

    def finish(self) -> bytes:
        self._decoder.finish()
        return b""

    def _inspect(self, data: str) -> bool:
        """Record model/usage; True when this event is a usage-only chunk."""
        # Cheap substring screen before parsing: with include_usage OpenAI puts
        # "usage":null in every chunk, and only the last one has real usage.
        if self._model is not None and ('"usage"' not in data or '"usage":null' in data):
            return False
        if data == "[DONE]":
            return False
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(obj, dict):
            return False
        if self._model is None and isinstance(obj.get("model"), str) and obj["model"]:
            self._model = obj["model"]
        usage = usage_from_openai(obj.get("usage"))
        if usage is None:
            return False
        self._usage = usage
        return not obj.get("choices")


OPENAI = OpenAICompatTranslator("openai")

OPENAI_SETTINGS: SettingPaths = {
    "max_tokens": (("max_tokens",), ("max_completion_tokens",)),
    "temperature": (("temperature",),),
    "top_p": (("top_p",),),
    "seed": (("seed",),),
}


WIRE = "openai"
BEARER = HeaderAuth("authorization", "Bearer")
OPTIONAL_BEARER = HeaderAuth("authorization", "Bearer", optional=True)
# OpenAI (and Azure) answer 400 to a field they do not know: no top_k.
OPENAI_SAMPLING = frozenset({"temperature", "top_p", "seed"})


def _spec(
    type_: str,
    host: str | None,
    base_path: str,
    *,
    embeddings: bool,
    auth: HeaderAuth = BEARER,
    sampling: frozenset[str] = OPENAI_SAMPLING | {"top_k"},
    prices: tuple[Price, ...] = (),
    genai_name: str = "",
    responses: bool = False,
) -> ProviderSpec:
    return ProviderSpec(
        type=type_,
        translator=OPENAI if type_ == "openai" else OpenAICompatTranslator(type_),
        wire=WIRE,
        host=host,
        base_path=base_path,
        scheme="https" if host else "http",
        auth=auth,
        framing=Framing.SSE,
        sampling=sampling,
        # OpenAI clients: the body can go on as it came (Responses clients too
        # where the vendor serves that API).
        native_apis=frozenset({WIRE, RESPONSES_API} if responses else {WIRE}),
        embeddings=embeddings,
        settings_paths=OPENAI_SETTINGS,
        prices=prices,
        genai_name=genai_name,
    )


# List prices, late 2025 (USD per million tokens: input, output, cached input).
OPENAI_PRICES = (
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
)
DEEPSEEK_PRICES = (
    Price("deepseek", "deepseek-chat", 0.27, 1.1, 0.07),
    Price("deepseek", "deepseek-reasoner", 0.55, 2.19, 0.14),
)

# The OpenAI-compatible family: same API, different default host and base path.
SPECS: tuple[ProviderSpec, ...] = (
    _spec(
        "openai",
        "api.openai.com",
        "/v1",
        embeddings=True,
        sampling=OPENAI_SAMPLING,
        prices=OPENAI_PRICES,
        genai_name="openai",
        responses=True,
    ),
    _spec("qwen", "dashscope.aliyuncs.com", "/compatible-mode/v1", embeddings=True),
    _spec("dashscope", "dashscope.aliyuncs.com", "/compatible-mode/v1", embeddings=True),
    _spec(
        "deepseek",
        "api.deepseek.com",
        "",
        embeddings=False,
        prices=DEEPSEEK_PRICES,
        genai_name="deepseek",
    ),
    _spec("moonshot", "api.moonshot.cn", "/v1", embeddings=False),
    _spec("groq", "api.groq.com", "/openai/v1", embeddings=False, genai_name="groq"),
    _spec("mistral", "api.mistral.ai", "/v1", embeddings=True, genai_name="mistral_ai"),
    _spec("zhipuai", "open.bigmodel.cn", "/api/paas/v4", embeddings=True),
    _spec("baichuan", "api.baichuan-ai.com", "/v1", embeddings=True),
    _spec("yi", "api.lingyiwanwu.com", "/v1", embeddings=False),
    _spec("stepfun", "api.stepfun.com", "/v1", embeddings=False),
    _spec("ai360", "api.360.cn", "/v1", embeddings=True),
    _spec("together", "api.together.xyz", "/v1", embeddings=True),
    _spec("openrouter", "openrouter.ai", "/api/v1", embeddings=False),
    _spec("fireworks", "api.fireworks.ai", "/inference/v1", embeddings=True),
    _spec("vllm", None, "/v1", embeddings=True, auth=OPTIONAL_BEARER),
    _spec("generic", None, "", embeddings=True, auth=OPTIONAL_BEARER),
)
