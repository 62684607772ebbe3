"""`llm-extproc serve --watch-config`: a changed file is served without a
restart; a broken one is logged and the running config kept; SIGHUP reloads."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from harness import Stack

BODY = b'{"messages":[{"role":"user","content":"hello there"}]}'


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_config_file_changes_are_served_and_broken_ones_refused(tmp_path: Path) -> None:
    cfg = 'hosts: ["dashscope.aliyuncs.com"]\napi_key: "sk-one"\ndeny_patterns: ["nothing-matches-this"]\n'
    with Stack(tmp_path, cfg, extra_args=("--watch-config", "--watch-interval", "0.2")) as s:
        c = httpx.Client(base_url=s.url, timeout=10, headers={"host": "dashscope.aliyuncs.com"})

        def status() -> int:
            return c.post("/v1/chat/completions", content=BODY).status_code

        assert status() == 200
        config = tmp_path / "config.yaml"
        config.write_text(cfg.replace("nothing-matches-this", "hello"))
        assert wait_for(lambda: status() == 403), s.logs()[-2000:]
        # Info lines are written in batches (every 100 ms).
        assert wait_for(lambda: "config reloaded" in s.logs())

        config.write_text("hosts: [dashscope.aliyuncs.com]\nbogus_field: 1\n")
        assert wait_for(lambda: "config reload failed" in s.logs()), s.logs()[-2000:]
        assert "bogus_field" in s.logs()
        assert status() == 403  # still the last good config

        config.write_text(cfg)  # the deny pattern gone again, reloaded by SIGHUP too
        s.procs[0].send_signal(signal.SIGHUP)
        assert wait_for(lambda: status() == 200)
        assert "sk-one" not in s.logs()
        c.close()


def test_a_reload_that_raises_anything_keeps_serving_and_reloading(tmp_path: Path) -> None:
    """A config whose loading raises something other than a config error
    (a ValueError from an unparsable base_url, a RecursionError from deep
    YAML) is logged with its cause; the old config serves and later SIGHUPs
    still reload (issue 22)."""
    cfg = 'hosts: ["dashscope.aliyuncs.com"]\napi_key: "sk-one"\ndeny_patterns: ["nothing-matches-this"]\n'
    with Stack(tmp_path, cfg) as s:
        c = httpx.Client(base_url=s.url, timeout=10, headers={"host": "dashscope.aliyuncs.com"})

        def status() -> int:
            return c.post("/v1/chat/completions", content=BODY).status_code

        assert status() == 200
        config = tmp_path / "config.yaml"
        server = s.procs[0]
        bad = (
            'providers: [{name: v, type: vllm, base_url: "http://[::1"}]\n'
            "routes: [{name: r, provider: v}]\n",
            "hosts: " + "[" * 5000 + "]" * 5000 + "\n",
        )
        for i, text in enumerate(bad, 1):
            config.write_text(text)
            server.send_signal(signal.SIGHUP)
            assert wait_for(lambda i=i: s.logs().count("config reload failed") == i), s.logs()[
                -2000:
            ]
            assert server.poll() is None and status() == 200
        assert "ValueError" in s.logs()
        config.write_text(cfg.replace("nothing-matches-this", "hello"))
        server.send_signal(signal.SIGHUP)
        assert wait_for(lambda: status() == 403), s.logs()[-2000:]
        c.close()
