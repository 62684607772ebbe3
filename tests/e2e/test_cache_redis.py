"""The response cache shared by TWO ext_proc replicas through one real Redis
(each behind its own Envoy, each with its own fake provider), with the
official openai and anthropic SDKs as clients.

A hit answers from either replica without reaching a provider, in the shape
the request asks for (a stream after a buffered answer and the reverse);
consumers never see each other's entries; Cache-Control no-cache/no-store
work; with Redis stopped the answers still come, from the provider."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
import redis

from harness import Stack, free_port, stop, wait_port

pytestmark = pytest.mark.e2e

ALICE, BOB = "ck-cache-alice-71c2", "ck-cache-bob-83d4"


def config(redis_port: int) -> str:
    return f"""
providers:
- {{name: qwen, type: qwen, api_tokens: [sk-qwen-cache-e2e]}}
- {{name: claude, type: claude, api_tokens: [sk-ant-cache-e2e]}}
- {{name: local-ollama, type: ollama, base_url: "http://127.0.0.1:@FAKE_PORT@"}}
routes:
- name: chat
  match: {{hosts: ["chat.test"]}}
  provider: qwen
  auth: {{required: true}}
  processors:
  - regex_guard: {{deny_patterns: ["forbidden-word"]}}
  cache: {{ttl: 600s, backend: redis}}
- name: messages
  match: {{hosts: ["claude.test"]}}
  provider: claude
  client_api: anthropic
  auth: {{required: true}}
  cache: {{ttl: 600s, backend: redis}}
- name: ollama
  match: {{hosts: ["127.0.0.1"]}}      # the Ollama listener's host, any port
  provider: local-ollama
  client_api: ollama
  cache: {{ttl: 600s, backend: redis, shared: true}}
consumers:
- {{name: alice, keys: [{ALICE}]}}
- {{name: bob, keys: [{BOB}]}}
budgets: {{redis_url: "redis://127.0.0.1:{redis_port}/0"}}
"""


def redis_binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )
    if not found:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    return found


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *(redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        stop(proc)


@pytest.fixture
def replicas(
    redis_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Stack]]:
    cfg = config(redis_port)
    with (
        Stack(tmp_path_factory.mktemp("a"), cfg) as a,
        Stack(tmp_path_factory.mktemp("b"), cfg) as b,
    ):
        yield a, b


def oai(s: Stack, key: str = ALICE) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key,
        base_url=f"{s.url}/v1",
        default_headers={"Host": "chat.test"},
        max_retries=0,
        timeout=15,
    )


def ant(s: Stack, key: str = ALICE) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=s.url,
        api_key=key,
        default_headers={"host": "claude.test"},
        max_retries=0,
        timeout=15,
    )


MSGS: Any = [{"role": "user", "content": "Why is the sky blue?"}]


def wait_stored(r: redis.Redis, n: int) -> None:
    """Stores happen after the answer, off the client's path: wait for them."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(r.keys("llm_extproc:cache:*")) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{len(r.keys('llm_extproc:cache:*'))} entries stored, expected {n}")


def test_openai_hits_across_replicas_both_shapes(
    replicas: tuple[Stack, Stack], redis_port: int
) -> None:
    a, b = replicas
    r = redis.Redis(port=redis_port)
    raw = oai(a).chat.completions.with_raw_response.create(model="qwen-plus", messages=MSGS)
    assert raw.headers["x-llm-cache"] == "miss"
    first = raw.parse()
    assert len(a.fake.take()) == 1
    wait_stored(r, 1)

    # The second identical request, to the OTHER replica: a hit, no provider call.
    raw = oai(b).chat.completions.with_raw_response.create(model="qwen-plus", messages=MSGS)
    assert raw.headers["x-llm-cache"] == "hit"
    hit = raw.parse()
    assert hit.choices[0].message.content == first.choices[0].message.content
    assert hit.usage is not None and hit.usage.total_tokens == 18
    # Envoy's access log has the hit's metadata (no upstream; the tokens it saved).
    deadline = time.monotonic() + 3
    while not any("upstream=- route=chat" in ln for ln in b.access_lines()):
        assert time.monotonic() < deadline, b.access_lines()
        time.sleep(0.05)
    (line,) = [ln for ln in b.access_lines() if "upstream=- route=chat" in ln]
    assert "provider=qwen consumer=alice" in line and "total_tokens=18" in line
    # The same request streaming: the cached answer as an SDK-readable stream.
    raw = oai(a).chat.completions.with_raw_response.create(
        model="qwen-plus", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-llm-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 18
    assert a.fake.take() == [] and b.fake.take() == []

    # The reverse: a stream first (a miss, reassembled and stored), then buffered hits.
    other: Any = [{"role": "user", "content": "And why is the sunset red?"}]
    with oai(b).chat.completions.create(model="qwen-plus", messages=other, stream=True) as st:
        streamed = "".join(c.choices[0].delta.content or "" for c in st if c.choices)
    assert len(b.fake.take()) == 1
    wait_stored(r, 2)
    raw = oai(a).chat.completions.with_raw_response.create(model="qwen-plus", messages=other)
    assert raw.headers["x-llm-cache"] == "hit"
    assert raw.parse().choices[0].message.content == streamed
    assert a.fake.take() == []

    # stream/user/metadata do not change the key; temperature does.
    raw = oai(b).chat.completions.with_raw_response.create(
        model="qwen-plus", messages=MSGS, user="someone"
    )
    assert raw.headers["x-llm-cache"] == "hit"
    raw = oai(b).chat.completions.with_raw_response.create(
        model="qwen-plus", messages=MSGS, temperature=0.3
    )
    assert raw.headers["x-llm-cache"] == "miss"
    assert len(b.fake.take()) == 1

    # The checks run first: a cached route still refuses what its guard denies.
    with pytest.raises(openai.PermissionDeniedError):
        oai(a).chat.completions.create(
            model="qwen-plus", messages=[{"role": "user", "content": "forbidden-word"}]
        )
    # Entries hold no prompt in their key and no consumer key anywhere.
    for k in r.keys("llm_extproc:cache:*"):
        assert b"sky" not in k
        assert ALICE.encode() not in (r.get(k) or b"")
    for s in (a, b):
        assert ALICE not in s.logs()
        assert "x-llm-cache" not in s.logs()
        assert '"cache": "hit"' in s.logs() or '"cache":"hit"' in s.logs()


def test_consumers_isolated_and_client_directives(
    replicas: tuple[Stack, Stack], redis_port: int
) -> None:
    a, b = replicas
    r = redis.Redis(port=redis_port)
    oai(a, ALICE).chat.completions.create(model="qwen-plus", messages=MSGS)
    wait_stored(r, 1)
    # Bob sends the same request: alice's entry is not his.
    raw = oai(b, BOB).chat.completions.with_raw_response.create(model="qwen-plus", messages=MSGS)
    assert raw.headers["x-llm-cache"] == "miss"
    assert len(b.fake.take()) == 1
    wait_stored(r, 2)
    raw = oai(a, BOB).chat.completions.with_raw_response.create(model="qwen-plus", messages=MSGS)
    assert raw.headers["x-llm-cache"] == "hit"

    # no-cache: the lookup is skipped (the provider answers); no-store: nothing stored.
    raw = oai(a).chat.completions.with_raw_response.create(
        model="qwen-plus", messages=MSGS, extra_headers={"Cache-Control": "no-cache"}
    )
    assert raw.headers["x-llm-cache"] == "miss"
    fresh: Any = [{"role": "user", "content": "A question never asked before"}]
    a.fake.take()
    for _ in range(2):
        raw = oai(a).chat.completions.with_raw_response.create(
            model="qwen-plus", messages=fresh, extra_headers={"Cache-Control": "no-store"}
        )
        assert raw.headers["x-llm-cache"] == "miss"
    assert len(a.fake.take()) == 2
    time.sleep(0.2)
    # alice's and bob's entries (no-cache refreshed alice's); the no-store answers are not there.
    assert len(r.keys("llm_extproc:cache:*")) == 2


def test_anthropic_sdk_both_shapes(replicas: tuple[Stack, Stack], redis_port: int) -> None:
    a, b = replicas
    r = redis.Redis(port=redis_port)
    raw = ant(a).messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=100, messages=MSGS
    )
    assert raw.headers["x-llm-cache"] == "miss"
    first = raw.parse()
    wait_stored(r, 1)
    assert len(a.fake.take()) == 1
    with ant(b).messages.stream(model="claude-sonnet-4", max_tokens=100, messages=MSGS) as st:
        text = "".join(st.text_stream)
        final = st.get_final_message()
    assert text == first.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == first.stop_reason
    assert final.usage.output_tokens == first.usage.output_tokens
    assert b.fake.take() == []

    other: Any = [{"role": "user", "content": "Stream first, please."}]
    with ant(b).messages.stream(model="claude-sonnet-4", max_tokens=100, messages=other) as st:
        streamed = st.get_final_message()
    assert len(b.fake.take()) == 1
    wait_stored(r, 2)
    raw = ant(a).messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=100, messages=other
    )
    assert raw.headers["x-llm-cache"] == "hit"
    hit = raw.parse()
    assert [b.model_dump(exclude={"parsed_output"}) for b in hit.content] == [
        b.model_dump(exclude={"parsed_output"}) for b in streamed.content
    ]
    assert hit.stop_reason == streamed.stop_reason and hit.id == streamed.id
    assert a.fake.take() == []


def test_redis_stopped_mid_test(replicas: tuple[Stack, Stack], redis_port: int) -> None:
    a, b = replicas
    r = redis.Redis(port=redis_port)
    oai(a).chat.completions.create(model="qwen-plus", messages=MSGS)
    wait_stored(r, 1)
    raw = oai(b).chat.completions.with_raw_response.create(model="qwen-plus", messages=MSGS)
    assert raw.headers["x-llm-cache"] == "hit"
    a.fake.take()
    r.shutdown(nosave=True)
    for s in (a, b, a, b):
        t0 = time.monotonic()
        resp = httpx.post(
            f"{s.url}/v1/chat/completions",
            headers={"host": "chat.test", "authorization": f"Bearer {ALICE}"},
            content=json.dumps({"model": "qwen-plus", "messages": MSGS}),
            timeout=15,
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-llm-cache"] == "miss"
        assert resp.json()["choices"][0]["message"]["content"]
        assert time.monotonic() - t0 < 5
    assert len(a.fake.take()) == 2 and len(b.fake.take()) == 2
    time.sleep(0.3)
    for s in (a, b):
        logs = s.logs()
        assert "cache lookup failed" in logs
        assert f"{redis_port}" not in logs.split("cache lookup failed", 1)[1].split("\n", 1)[0]
        metrics = httpx.get(f"http://127.0.0.1:{s.metrics_port}/metrics").text
        assert 'llm_extproc_cache_lookups_total{result="unavailable",route="chat"}' in metrics


def test_ollama_client_both_shapes(replicas: tuple[Stack, Stack], redis_port: int) -> None:
    a, b = replicas
    r = redis.Redis(port=redis_port)

    def ol(s: Stack) -> ollama.Client:
        return ollama.Client(host=f"http://127.0.0.1:{s.ollama_listener}", timeout=15)

    first = ol(a).chat(model="llama3", messages=MSGS, stream=False)
    assert first.message.content
    assert len(a.fake.take()) == 1
    wait_stored(r, 1)
    # Ollama streams by default: the cached answer as NDJSON the client reads.
    chunks = list(ol(b).chat(model="llama3", messages=MSGS, stream=True))
    assert chunks[-1].done and chunks[-1].eval_count == first.eval_count
    assert "".join(c.message.content or "" for c in chunks) == first.message.content
    assert b.fake.take() == []
    # generate: a stream first (reassembled from NDJSON), then a buffered hit.
    text = "".join(c.response for c in ol(b).generate(model="llama3", prompt="Sky?", stream=True))
    assert len(b.fake.take()) == 1
    wait_stored(r, 2)
    g = ol(a).generate(model="llama3", prompt="Sky?", stream=False)
    assert g.response == text and g.done
    assert a.fake.take() == []
