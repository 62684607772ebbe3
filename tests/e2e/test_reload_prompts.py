"""A reload rebuilds everything a stream takes from the config, the prompt
capture too: turning `debug_log_prompts` on and adding a consumer take effect
without a restart, and the new consumer's key is masked in the prompt log."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from harness import Stack

ALICE = "ck-alice-4b1e0d"
BOB = "ck-bob-9e27c3"

CONFIG = f"""
providers:
- name: qwen
  type: qwen
  api_tokens: [sk-provider-77a1]
  default_model: qwen-turbo
routes:
- name: chat
  match: {{hosts: ["api.test"]}}
  provider: qwen
  auth: {{required: true, key_sources: [authorization]}}
consumers:
- name: alice
  keys: [{ALICE}]
"""

RELOADED = (
    CONFIG
    + f"""- name: bob
  keys: [{BOB}]
observability: {{debug_log_prompts: true}}
"""
)


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def request_lines(logs: str) -> list[dict[str, object]]:
    return [orjson.loads(x) for x in logs.splitlines() if '"msg":"request"' in x]


def test_reload_turns_on_prompt_logging_and_masks_a_new_consumers_key(tmp_path: Path) -> None:
    with Stack(tmp_path, CONFIG) as s, httpx.Client(base_url=s.url, timeout=10) as c:

        def chat(key: str, text: str) -> int:
            return c.post(
                "/v1/chat/completions",
                headers={"host": "api.test", "authorization": f"Bearer {key}"},
                json={"messages": [{"role": "user", "content": text}]},
            ).status_code

        assert chat(ALICE, "before") == 200
        assert chat(BOB, "before") == 401
        assert wait_for(lambda: len(request_lines(s.logs())) == 2)
        assert all("prompts" not in line for line in request_lines(s.logs()))

        (tmp_path / "config.yaml").write_text(RELOADED)
        s.procs[0].send_signal(signal.SIGHUP)
        assert wait_for(lambda: chat(BOB, f"my key is {BOB}") == 200), s.logs()[-2000:]

        def bobs_line() -> dict[str, object] | None:
            return next((x for x in request_lines(s.logs()) if x["consumer"] == "bob"), None)

        assert wait_for(lambda: bobs_line() is not None)
        line = bobs_line()
        assert line is not None and line.get("prompts") == ["my key is [redacted]"]
    assert BOB not in s.logs() and ALICE not in s.logs()
