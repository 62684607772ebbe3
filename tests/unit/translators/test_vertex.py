"""Vertex AI: Gemini and Claude models under one project and region."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.translators.base import ProviderTarget, TranslationError
from extproc.translators.vertex import VERTEX, vertex_host


def t(model: str, stream: bool = False) -> ProviderTarget:
    return ProviderTarget(
        "vertex",
        vertex_host("us-central1"),
        "/v1",
        "ya29.tok",
        model,
        stream,
        {"project": "proj-1", "region": "us-central1"},
    )


MSGS: dict[str, Any] = {
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
}


def test_hosts() -> None:
    assert vertex_host("europe-west4") == "europe-west4-aiplatform.googleapis.com"
    assert vertex_host("global") == "aiplatform.googleapis.com"


def test_gemini_generate_content_reuses_the_gemini_body() -> None:
    req = VERTEX.chat_request({**MSGS, "max_tokens": 5}, t("gemini-2.0-flash"))
    assert (
        req.path
        == "/v1/projects/proj-1/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
    )
    assert ("authorization", "Bearer ya29.tok") in req.headers
    assert orjson.loads(req.body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 5},
    }
    stream = VERTEX.chat_request(MSGS, t("gemini-2.0-flash", True))
    assert stream.path.endswith(":streamGenerateContent?alt=sse")


def test_claude_raw_predict_from_openai_body() -> None:
    req = VERTEX.chat_request(MSGS, t("claude-3-5-haiku@20241022", True))
    assert req.path.endswith(
        "/publishers/anthropic/models/claude-3-5-haiku%4020241022:streamRawPredict"
    )
    body = orjson.loads(req.body)
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in body and body["stream"] is True
    assert body["system"] == "Be brief." and body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_answers_read_by_the_model_family() -> None:
    g = VERTEX.chat_response(
        200,
        orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "yo"}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 3,
                    "candidatesTokenCount": 1,
                    "totalTokenCount": 4,
                },
                "modelVersion": "gemini-2.0-flash-001",
            }
        ),
        t("gemini-2.0-flash"),
    )
    assert orjson.loads(g.body)["choices"][0]["message"]["content"] == "yo"
    assert g.model == "gemini-2.0-flash-001" and g.usage is not None and g.usage.total_tokens == 4
    c = VERTEX.chat_response(
        200,
        orjson.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-3-5-haiku-20241022",
                "content": [{"type": "text", "text": "hey"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 4, "output_tokens": 2},
            }
        ),
        t("claude-3-5-haiku@20241022"),
    )
    assert orjson.loads(c.body)["choices"][0]["message"]["content"] == "hey"
    assert c.usage is not None and c.usage.input_tokens == 4


def test_embeddings_predict() -> None:
    req = VERTEX.embeddings_request({"input": ["a", "b"], "dimensions": 8}, t("text-embedding-005"))
    assert req.path.endswith("/publishers/google/models/text-embedding-005:predict")
    assert orjson.loads(req.body) == {
        "instances": [{"content": "a"}, {"content": "b"}],
        "parameters": {"outputDimensionality": 8},
    }
    out = VERTEX.embeddings_response(
        200,
        orjson.dumps(
            {
                "predictions": [
                    {"embeddings": {"values": [0.5], "statistics": {"token_count": 2}}},
                    {"embeddings": {"values": [0.25], "statistics": {"token_count": 1}}},
                ]
            }
        ),
        t("text-embedding-005"),
    )
    obj = orjson.loads(out.body)
    assert [d["embedding"] for d in obj["data"]] == [[0.5], [0.25]]
    assert obj["usage"]["prompt_tokens"] == 3
    with pytest.raises(TranslationError):
        VERTEX.embeddings_request({"input": "a"}, t("claude-3-5-haiku"))


def test_google_error_maps_to_openai_shape() -> None:
    body = VERTEX.error_response(
        429,
        orjson.dumps(
            {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
        ),
    )
    err = orjson.loads(body)["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "RESOURCE_EXHAUSTED"


def test_gemini_models_on_vertex_are_priced_as_gemini() -> None:
    from extproc.cost import price_table

    price = price_table(()).find("my-vertex", "vertex", "gemini-2.0-flash-001")
    assert price is not None and price.input > 0
