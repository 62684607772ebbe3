"""Google Vertex AI through the real Envoy with the official openai and
anthropic SDKs. The gateway gets its token from a fake Google token endpoint
(the service-account key's token_uri on loopback, the JWT assertion's
signature checked); the fake Vertex accepts only tokens that endpoint issued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from fake_cloud import Google, service_account
from harness import Stack

pytestmark = pytest.mark.e2e

CLIENT_KEY = "ck-vertex-client-3b3b"
SA_INFO, SA_PUBLIC = service_account("set-per-stack")
# A key the fake token endpoint does not know: its provider never gets a token.
ROGUE_INFO, _ = service_account("set-per-stack")
BASE = "/v1/projects/proj-e2e/locations/us-east5/publishers"


def config(tmp: Path) -> Any:
    def render(port: int) -> str:
        good = tmp / "sa.json"
        good.write_text(json.dumps({**SA_INFO, "token_uri": f"http://127.0.0.1:{port}/token"}))
        rogue = tmp / "rogue.json"
        rogue.write_text(json.dumps({**ROGUE_INFO, "token_uri": f"http://127.0.0.1:{port}/token"}))
        return f"""
providers:
- name: vertex
  type: vertex
  options: {{project: proj-e2e, region: us-east5}}
  gcp: {{service_account_json_file: {good}}}
  default_model: gemini-2.0-flash
  model_mapping:
    "gpt-4o": gemini-2.0-flash
    "claude-alias": "claude-sonnet-4@20250514"
    "slow": gemini-throttle
    "text-embedding-3-small": text-embedding-005
- name: vertex-no-token
  type: vertex
  options: {{project: proj-e2e, region: us-east5}}
  gcp: {{service_account_json_file: {rogue}}}
  default_model: gemini-2.0-flash
routes:
- name: vertex
  match: {{hosts: [vertex.test]}}
  provider: vertex
  client_api: auto
  auth: {{required: true}}
- name: vertex-no-token
  match: {{hosts: [notoken.test]}}
  provider: vertex-no-token
  client_api: auto
consumers:
- name: app
  keys: [{CLIENT_KEY}]
"""

    return render


@pytest.fixture(scope="module")
def google() -> Google:
    return Google(SA_PUBLIC)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, google: Google) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("vertex")
    with Stack(tmp, config(tmp), fake_keys={"google": google}) as s:
        yield s


def _client(stack: Stack, host: str = "vertex.test") -> openai.OpenAI:
    stack.fake.take()
    return openai.OpenAI(
        base_url=stack.url + "/v1",
        api_key=CLIENT_KEY,
        default_headers={"host": host},
        max_retries=0,
        timeout=20,
    )


@pytest.fixture
def oai(stack: Stack) -> Iterator[openai.OpenAI]:
    with _client(stack) as c:
        yield c


@pytest.fixture
def claude(stack: Stack) -> Iterator[anthropic.Anthropic]:
    stack.fake.take()
    with anthropic.Anthropic(
        base_url=stack.url,
        api_key=CLIENT_KEY,
        default_headers={"host": "vertex.test"},
        max_retries=0,
        timeout=20,
    ) as c:
        yield c


def _vertex_request(stack: Stack, google: Google) -> Any:
    (rec,) = [r for r in stack.fake.take() if r.path.startswith("/v1/projects/")]
    assert rec.headers["host"] == "us-east5-aiplatform.googleapis.com"
    assert google.valid(rec.headers["authorization"])  # a token our endpoint issued
    assert CLIENT_KEY not in json.dumps(rec.headers)
    # The SDKs accept gzip and Google compresses when asked: never forwarded.
    assert "accept-encoding" not in rec.headers
    return rec


def test_openai_chat_to_gemini(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi vertex"}], max_tokens=20
    )
    assert r.choices[0].message.content == (
        "Hello from fake Vertex Gemini. model=gemini-2.0-flash last_user=hi vertex"
    )
    assert r.usage is not None and r.usage.total_tokens == 16
    assert r.model == "gemini-2.0-flash-001"
    rec = _vertex_request(stack, google)
    assert rec.path == f"{BASE}/google/models/gemini-2.0-flash:generateContent"
    assert rec.json()["generationConfig"] == {"maxOutputTokens": 20}


def test_openai_stream_from_gemini(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("last_user=stream")
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 16
    rec = _vertex_request(stack, google)
    assert rec.path == f"{BASE}/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"


def test_openai_chat_to_claude_on_vertex(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="claude-alias", messages=[{"role": "user", "content": "hello claude"}]
    )
    assert (r.choices[0].message.content or "").endswith("last_user=hello claude")
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (14, 9)
    rec = _vertex_request(stack, google)
    assert rec.path == f"{BASE}/anthropic/models/claude-sonnet-4%4020250514:rawPredict"
    body = rec.json()
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body


def test_openai_stream_from_claude_on_vertex(
    stack: Stack, google: Google, oai: openai.OpenAI
) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="claude-alias", messages=[{"role": "user", "content": "s"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("last_user=s")
    assert _vertex_request(stack, google).path.endswith(":streamRawPredict")


def test_anthropic_sdk_to_claude_raw_predict(
    stack: Stack, google: Google, claude: anthropic.Anthropic
) -> None:
    msg = claude.messages.create(
        model="claude-alias", max_tokens=32, messages=[{"role": "user", "content": "native"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text.endswith("last_user=native")
    assert msg.usage.input_tokens == 14
    body = _vertex_request(stack, google).json()
    assert body["anthropic_version"] == "vertex-2023-10-16"
    assert body["max_tokens"] == 32 and "model" not in body


def test_anthropic_sdk_stream_raw_predict(
    stack: Stack, google: Google, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model="claude-alias", max_tokens=32, messages=[{"role": "user", "content": "live"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.endswith("last_user=live") and final.usage.output_tokens == 9
    rec = _vertex_request(stack, google)
    assert rec.path.endswith(":streamRawPredict") and rec.json()["stream"] is True


def test_anthropic_sdk_to_gemini_on_vertex(
    stack: Stack, google: Google, claude: anthropic.Anthropic
) -> None:
    msg = claude.messages.create(
        model="gpt-4o", max_tokens=32, messages=[{"role": "user", "content": "to gemini"}]
    )
    assert msg.content[0].type == "text" and msg.content[0].text.endswith("last_user=to gemini")
    assert _vertex_request(stack, google).path.endswith(":generateContent")


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_openai_tools_with_gemini(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    )
    (call,) = r.choices[0].message.tool_calls or []
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    body = _vertex_request(stack, google).json()
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    # The result goes back as a functionResponse; the model answers in text.
    r2 = oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            r.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 3}'},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    )
    assert r2.choices[0].message.content
    sent = _vertex_request(stack, google).json()["contents"]
    assert sent[-1]["parts"][0] == {
        "functionResponse": {"name": "get_weather", "response": {"temp_c": 3}}
    }


def test_openai_tools_stream_with_gemini(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert calls and calls[0].function is not None and calls[0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    _vertex_request(stack, google)


def test_embeddings(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.embedding for d in r.data] == [[0.5, 0.5], [0.5, 0.5]]
    assert r.usage.prompt_tokens == 4
    assert _vertex_request(stack, google).path.endswith("/text-embedding-005:predict")


def test_quota_exhausted_is_a_429(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "RESOURCE_EXHAUSTED"  # type: ignore[index]


def test_no_token_is_a_503_in_openai_shape(stack: Stack) -> None:
    with _client(stack, "notoken.test") as c, pytest.raises(openai.InternalServerError) as e:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503
    assert e.value.body["code"] == "no_upstream_credentials"  # type: ignore[index]
    assert "vertex-no-token" in e.value.body["message"]  # type: ignore[index]
    assert e.value.response.headers.get("retry-after")
    assert not [r for r in stack.fake.take() if r.path.startswith("/v1/projects/")]


def test_no_token_is_a_503_in_anthropic_shape(stack: Stack) -> None:
    with (
        anthropic.Anthropic(
            base_url=stack.url,
            api_key="unused",
            default_headers={"host": "notoken.test"},
            max_retries=0,
        ) as c,
        pytest.raises(anthropic.APIStatusError) as e,
    ):
        c.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503
    assert e.value.body["type"] == "error"  # type: ignore[index]
    err = e.value.body["error"]  # type: ignore[index]
    assert err["type"] == "api_error" and err["code"] == "no_upstream_credentials"


def test_tokens_and_keys_never_logged(stack: Stack, google: Google) -> None:
    logs = stack.logs()
    with google.lock:
        issued = list(google.issued)
    assert issued
    for tok in issued:
        assert tok not in logs
    assert SA_INFO["private_key"].splitlines()[1] not in logs


def test_responses_api_client_to_vertex(stack: Stack, google: Google, oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="gpt-4o", input="responses to gemini")
    assert r.output_text.endswith("last_user=responses to gemini")
    assert _vertex_request(stack, google).path.endswith(":generateContent")
    r = oai.responses.create(model="claude-alias", input="responses to claude")
    assert r.output_text.endswith("last_user=responses to claude")
    assert _vertex_request(stack, google).path.endswith(":rawPredict")
