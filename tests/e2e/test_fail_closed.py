"""With the ext_proc service gone, Envoy fails closed: no LLM request reaches a
provider without its checks (failure_mode_allow: false). Virtual hosts with
ext_proc disabled per route are not affected."""

from __future__ import annotations

from pathlib import Path

import httpx

from harness import Stack, stop


def test_requests_fail_closed_when_the_service_is_down(tmp_path: Path) -> None:
    with Stack(tmp_path, 'hosts: ["dashscope.aliyuncs.com"]\napi_key: "sk-x"\n') as s:
        body = b'{"messages":[{"role":"user","content":"hi"}]}'
        with httpx.Client(base_url=s.url, timeout=10) as c:
            ok = c.post(
                "/v1/chat/completions", content=body, headers={"host": "dashscope.aliyuncs.com"}
            )
            assert ok.status_code == 200
            s.fake.take()
            stop(s.procs[0])  # the ext_proc server, by PID
            r = c.post(
                "/v1/chat/completions", content=body, headers={"host": "dashscope.aliyuncs.com"}
            )
            # A host on an ext_proc virtual host fails closed even when the
            # service would have skipped it.
            skipped = c.post("/x", content=b"x", headers={"host": "elsewhere.test"})
            assert s.fake.take() == []
            # envoy-demo.yaml disables ext_proc on the catch-all virtual host:
            # non-LLM traffic does not depend on the service at all.
            other = c.post("/x", content=b"x", headers={"host": "elsewhere.example"})
        assert r.status_code >= 500
        assert skipped.status_code >= 500
        assert other.status_code == 200
        (seen,) = s.fake.take()
        assert seen.headers["host"] == "elsewhere.example"
