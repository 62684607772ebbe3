"""AWS Bedrock through the real Envoy with the official openai and anthropic
SDKs. The fake Bedrock recomputes every request's SigV4 signature with
botocore from what it received (a wrong one is a 403, failing the test) and
answers Converse JSON and event-stream frames cut across TCP writes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from harness import Stack

pytestmark = pytest.mark.e2e

AK, SK = "AKIDBEDROCKE2E", "bedrock-e2e-secret/key+EXAMPLE"
CHAIN_AK, CHAIN_SK, CHAIN_TOKEN = "ASIACHAINE2E", "chain-secret-e2e", "chain-session-token-e2e"
CLIENT_KEY = "ck-bedrock-client-7a7a"
PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"

CONFIG = f"""
providers:
- name: bedrock
  type: bedrock
  options: {{region: us-east-1}}
  aws: {{access_key_id: {AK}, secret_access_key_env: E2E_AWS_SECRET}}
  default_model: {PROFILE}
  model_mapping:
    "gpt-4o": "{PROFILE}"
    "log-me": "{PROFILE}"
    "llama": "meta.llama3-1-8b-instruct-v1:0"
    "arn-profile": "{ARN}"
    "slow": "us.anthropic.claude-throttle-v1:0"
    "text-embedding-3-small": "amazon.titan-embed-text-v2:0"
    "cohere": "cohere.embed-english-v3"
- name: bedrock-chain
  type: bedrock
  options: {{region: eu-west-1}}
  default_model: eu.anthropic.claude-3-haiku-20240307-v1:0
- name: bedrock-slow
  type: bedrock
  options: {{region: us-west-2}}
  aws: {{access_key_id: {AK}, secret_access_key_env: E2E_AWS_SECRET}}
  default_model: us.anthropic.claude-throttle-v1:0
- name: bedrock-wrong-key
  type: bedrock
  options: {{region: us-east-1}}
  aws: {{access_key_id: {AK}, secret_access_key: not-the-secret}}
  default_model: {PROFILE}
routes:
- name: fallback
  match: {{hosts: [fallback.test]}}
  provider: bedrock-slow
  fallback: [bedrock]
- name: wrong-key
  match: {{hosts: [wrongkey.test]}}
  provider: bedrock-wrong-key
- name: bedrock
  match: {{hosts: [bedrock.test]}}
  provider: bedrock
  client_api: auto
  auth: {{required: true}}
- name: bedrock-chain
  match: {{hosts: [chain.test]}}
  provider: bedrock-chain
consumers:
- name: app
  keys: [{CLIENT_KEY}]
"""

KEYS: dict[str, Any] = {
    "bedrock": {AK: {"secret_key": SK}, CHAIN_AK: {"secret_key": CHAIN_SK, "token": CHAIN_TOKEN}}
}
ENV = {
    "E2E_AWS_SECRET": SK,
    # The second provider has no keys in the config: botocore's chain finds these.
    "AWS_ACCESS_KEY_ID": CHAIN_AK,
    "AWS_SECRET_ACCESS_KEY": CHAIN_SK,
    "AWS_SESSION_TOKEN": CHAIN_TOKEN,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # drip: each piece of a frame cut by the fake is its own TCP write, a moment
    # apart, so Envoy hands the gateway frames split across body chunks.
    with Stack(
        tmp_path_factory.mktemp("bedrock"), CONFIG, env=ENV, fake_keys=KEYS, drip_s=0.002
    ) as s:
        yield s


@pytest.fixture
def oai(stack: Stack) -> Iterator[openai.OpenAI]:
    stack.fake.take()
    with openai.OpenAI(
        base_url=stack.url + "/v1",
        api_key=CLIENT_KEY,
        default_headers={"host": "bedrock.test"},
        max_retries=0,
        timeout=20,
    ) as c:
        yield c


@pytest.fixture
def claude(stack: Stack) -> Iterator[anthropic.Anthropic]:
    stack.fake.take()
    with anthropic.Anthropic(
        base_url=stack.url,
        api_key=CLIENT_KEY,
        default_headers={"host": "bedrock.test"},
        max_retries=0,
        timeout=20,
    ) as c:
        yield c


def _only_bedrock_request(stack: Stack) -> Any:
    (rec,) = [r for r in stack.fake.take() if r.path.startswith("/model/")]
    return rec


def _assert_signed_and_clean(rec: Any, region: str = "us-east-1") -> None:
    # The fake verified the signature (it answers 403 otherwise); here: what it covered.
    assert rec.headers["host"] == f"bedrock-runtime.{region}.amazonaws.com"
    assert rec.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert f"/{region}/bedrock/aws4_request" in rec.headers["authorization"]
    assert "x-amz-date" in rec.headers and "x-amz-content-sha256" in rec.headers
    assert CLIENT_KEY not in json.dumps(rec.headers) and CLIENT_KEY.encode() not in rec.body
    assert "x-api-key" not in rec.headers
    assert "accept-encoding" not in rec.headers  # the gateway reads every answer


def test_openai_chat_goes_through_converse_signed(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi there"},
        ],
        max_tokens=50,
        temperature=0.2,
    )
    assert (
        r.choices[0].message.content
        == f"Hello from fake Bedrock. model={PROFILE} last_user=hi there"
    )
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 7)
    assert r.model == PROFILE
    rec = _only_bedrock_request(stack)
    assert rec.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    _assert_signed_and_clean(rec)
    body = rec.json()
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"] == {"maxTokens": 50, "temperature": 0.2}
    assert "model" not in body


def test_openai_stream_decodes_the_event_stream(stack: Stack, oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Hello from fake Bedrock. model={PROFILE} last_user=stream please"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 19
    rec = _only_bedrock_request(stack)
    assert rec.path.endswith("/converse-stream")
    _assert_signed_and_clean(rec)


def test_openai_tools(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice="required",
    )
    (call,) = r.choices[0].message.tool_calls or []
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Oslo"
    }
    body = _only_bedrock_request(stack).json()
    assert body["toolConfig"]["toolChoice"] == {"any": {}}
    assert body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    # The tool's answer goes back as a toolResult, and the model answers in text.
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
    assert r2.choices[0].message.content and r2.choices[0].finish_reason == "stop"
    sent = _only_bedrock_request(stack).json()["messages"]
    assert sent[1]["content"][0]["toolUse"]["toolUseId"] == call.id
    assert sent[2]["content"][0] == {
        "toolResult": {"toolUseId": call.id, "content": [{"json": {"temp_c": 3}}]}
    }


def test_openai_tools_stream(stack: Stack, oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        )
    )
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    args = "".join((tc.function.arguments or "") for tc in calls if tc.function)
    assert json.loads(args) == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_titan_embeddings(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model="text-embedding-3-small", input="embed me", dimensions=8)
    assert r.data[0].embedding == [0.25] * 8
    assert r.usage.prompt_tokens == 5
    rec = _only_bedrock_request(stack)
    assert rec.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert rec.json() == {"inputText": "embed me", "dimensions": 8}
    _assert_signed_and_clean(rec)


def test_cohere_embeddings_take_a_list(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model="cohere", input=["a", "b"])
    assert [d.embedding for d in r.data] == [[0.1, 0.2], [0.1, 0.2]]


def test_titan_embeddings_with_a_list_is_a_clear_400(stack: Stack, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="one input per request"):
        oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert not [r for r in stack.fake.take() if r.path.startswith("/model/")]


def test_throttling_is_a_429_in_openai_shape(stack: Stack, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as e:
        oai.chat.completions.create(model="slow", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 429
    assert "Too many requests" in str(e.value.body)
    assert e.value.body["type"] == "rate_limit_error"  # type: ignore[index]


def test_throttling_inside_a_stream_is_an_error_event(stack: Stack, oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream-throttle"}], stream=True
    )
    with pytest.raises(openai.APIError, match="Too many tokens"):
        list(stream)


def test_arn_model_id_is_path_safe(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.chat.completions.create(
        model="arn-profile", messages=[{"role": "user", "content": "a"}]
    )
    assert ARN in (r.choices[0].message.content or "")
    rec = _only_bedrock_request(stack)
    assert rec.path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        "application-inference-profile%2Fabc123/converse"
    )


def test_anthropic_sdk_to_claude_on_bedrock_invoke_model(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    msg = claude.messages.create(
        model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "hola"}]
    )
    assert msg.content[0].type == "text"
    assert msg.content[0].text.endswith(f"model={PROFILE} last_user=hola")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (14, 9)
    rec = _only_bedrock_request(stack)
    assert rec.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/invoke"
    body = rec.json()
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert "model" not in body and "stream" not in body
    _assert_signed_and_clean(rec)


def test_anthropic_sdk_stream_from_invoke_with_response_stream(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    with claude.messages.stream(
        model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "stream it"}]
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text.endswith("last_user=stream it")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 9
    rec = _only_bedrock_request(stack)
    assert rec.path.endswith("/invoke-with-response-stream")


def test_anthropic_sdk_to_a_non_claude_model_goes_through_converse(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    msg = claude.messages.create(
        model="llama", max_tokens=64, messages=[{"role": "user", "content": "via converse"}]
    )
    assert msg.content[0].type == "text"
    assert "model=meta.llama3-1-8b-instruct-v1:0 last_user=via converse" in msg.content[0].text
    assert _only_bedrock_request(stack).path.endswith("/converse")
    with claude.messages.stream(
        model="llama", max_tokens=64, messages=[{"role": "user", "content": "s"}]
    ) as s:
        assert "last_user=s" in "".join(s.text_stream)


def test_anthropic_sdk_throttling_is_a_429_in_anthropic_shape(
    stack: Stack, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(anthropic.RateLimitError) as e:
        claude.messages.create(
            model="slow", max_tokens=8, messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


def test_credentials_from_the_aws_chain_with_a_session_token(stack: Stack) -> None:
    stack.fake.take()
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"host": "chain.test"},
        json={"messages": [{"role": "user", "content": "chain"}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    rec = _only_bedrock_request(stack)
    _assert_signed_and_clean(rec, "eu-west-1")
    assert rec.headers["x-amz-security-token"] == CHAIN_TOKEN
    assert f"Credential={CHAIN_AK}/" in rec.headers["authorization"]


def test_usage_and_model_recorded_and_no_secret_logged(stack: Stack, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="log-me", messages=[{"role": "user", "content": "log me"}])
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not lines:
        parsed = [json.loads(x) for x in stack.logs().splitlines() if x.startswith("{")]
        lines = [
            x for x in parsed if x.get("msg") == "request" and x.get("model_requested") == "log-me"
        ]
        time.sleep(0.1)
    (line,) = lines
    assert line["provider"] == "bedrock" and line["status"] == 200
    assert line["model_served"] == PROFILE
    assert (line["input_tokens"], line["output_tokens"], line["total_tokens"]) == (12, 7, 19)
    logs = stack.logs()
    for secret in (SK, CHAIN_SK, CHAIN_TOKEN):
        assert secret not in logs


def test_fallback_from_a_throttled_region_signs_each_attempt(stack: Stack) -> None:
    stack.fake.take()
    r = httpx.post(
        stack.url + "/v1/chat/completions",
        headers={"host": "fallback.test"},
        json={"messages": [{"role": "user", "content": "fall back"}]},
        timeout=20,
    )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].endswith("last_user=fall back")
    assert r.headers["x-llm-provider"] == "bedrock"
    first, second = [x for x in stack.fake.take() if x.path.startswith("/model/")]
    # Each attempt signed for its own region, host and model path.
    assert first.headers["host"] == "bedrock-runtime.us-west-2.amazonaws.com"
    assert "/us-west-2/bedrock/" in first.headers["authorization"]
    assert "claude-throttle" in first.path
    _assert_signed_and_clean(second, "us-east-1")
    assert second.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"


def test_a_wrong_secret_fails_the_fakes_signature_check(stack: Stack) -> None:
    stack.fake.take()
    with (
        openai.OpenAI(
            base_url=stack.url + "/v1",
            api_key="x",
            default_headers={"host": "wrongkey.test"},
            max_retries=0,
        ) as c,
        pytest.raises(openai.PermissionDeniedError, match="signature does not match"),
    ):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert "not-the-secret" not in stack.logs()


def test_responses_api_client_to_bedrock(stack: Stack, oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="gpt-4o", input="responses hello")
    assert r.output_text.endswith("last_user=responses hello")
    assert r.usage is not None and r.usage.total_tokens == 19
    rec = _only_bedrock_request(stack)
    assert rec.path.endswith("/converse")
    _assert_signed_and_clean(rec)
    with oai.responses.stream(model="gpt-4o", input="streamed responses") as s:
        final = s.get_final_response()
    assert final.output_text.endswith("last_user=streamed responses")
    assert _only_bedrock_request(stack).path.endswith("/converse-stream")
