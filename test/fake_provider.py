"""A fake LLM provider for the demo and the end-to-end tests.

One asyncio HTTP/1.1 server that answers in each provider's native format,
chosen by path: OpenAI-compatible (dashscope's /compatible-mode/v1/...),
Anthropic (/v1/messages), Gemini (/v1beta/models/M:generateContent), Ollama
(/api/chat, /api/generate, /api/embed), Azure (/openai/deployments/...).
It checks the credentials each provider expects, records every request it
receives (method, path, headers, body), and can drip stream chunks with
pauses. Scripted answers: `script()` in-process, or the request header
`x-fake-fail: <path part>=<status>` (e.g. `/compatible-mode=429`). It also
plays the guard model (denies text containing CONFIDENTIAL) and the
query-rewrite model.

Run alone: python test/fake_provider.py --port 18001 --key sk-demo ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import fake_claude
import fake_tools

GUARD_MARKER = "inspector"  # the guard's system prompt says what it is
REWRITE_MARKER = "Rewrite the user's message"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Scripted:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay_s: float = 0.0
    # A hostile upstream: after `body`, keep sending `endless` (chunked, 200)
    # until the peer goes away or `endless_max` bytes were sent.
    endless: bytes = b""
    endless_max: int = 256 << 20


class FakeProvider:
    def __init__(
        self,
        keys: dict[str, Any] | None = None,
        drip_s: float = 0.0,
        chunks: int = 5,
    ) -> None:
        # Expected credential per provider kind: openai, claude, gemini, azure, ollama.
        self.keys = keys or {}
        self.drip_s = drip_s
        self.chunks = chunks
        self.records: list[Recorded] = []
        self.scripted: dict[str, list[Scripted]] = {}
        self._lock = threading.Lock()
        self._server: asyncio.AbstractServer | None = None
        self._received: dict[int, tuple[str, str]] = {}
        self.endless_sent = 0  # bytes the last endless script sent before it stopped
        self.port = 0

    # -- control -------------------------------------------------------------

    def script(self, path_contains: str, *responses: Scripted) -> None:
        with self._lock:
            self.scripted.setdefault(path_contains, []).extend(responses)

    def unscript(self) -> None:
        """Drop the scripted answers nobody asked for."""
        with self._lock:
            self.scripted.clear()

    def take(self) -> list[Recorded]:
        with self._lock:
            out, self.records = self.records, []
            return out

    def seen(self) -> list[Recorded]:
        with self._lock:
            return list(self.records)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._conn, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- HTTP ------------------------------------------------------------------

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await r.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = await r.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int((await r.readline()).split(b";")[0], 16)
                        if size == 0:
                            await r.readline()
                            break
                        body += await r.readexactly(size)
                        await r.readline()
                else:
                    body = await r.readexactly(int(headers.get("content-length", "0")))
                await self._handle(method, target, headers, body, w)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                w.close()

    def _received_headers(self, w: asyncio.StreamWriter) -> dict[str, str]:
        # Say what arrived, so a client (test/test.sh) can check the rewrite.
        host, path = self._received.get(id(w), ("", ""))
        return {"x-fake-received-host": host, "x-fake-received-path": path}

    async def _send(
        self,
        w: asyncio.StreamWriter,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        hs = {"content-type": "application/json", **(headers or {}), **self._received_headers(w)}
        head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hs.items()
        )
        w.write(head.encode() + b"\r\n" + body)
        await w.drain()

    async def _send_stream(self, w: asyncio.StreamWriter, ctype: str, parts: list[bytes]) -> None:
        w.write(
            f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n".encode()
        )
        await w.drain()
        for i, p in enumerate(parts):
            if i and self.drip_s:
                await asyncio.sleep(self.drip_s)
            w.write(f"{len(p):x}\r\n".encode() + p + b"\r\n")
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()

    async def _send_endless(self, w: asyncio.StreamWriter, script: Scripted) -> None:
        head = f"HTTP/1.1 {script.status} X\r\ntransfer-encoding: chunked\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in script.headers.items()
        )
        w.write(head.encode() + b"\r\n")
        self.endless_sent = 0
        part = script.body
        while self.endless_sent < script.endless_max and not w.is_closing():
            w.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await w.drain()  # raises ConnectionError once the peer is gone
            self.endless_sent += len(part)
            part = script.endless
            await asyncio.sleep(0.001)

    async def _handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        w: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        self._received[id(w)] = (headers.get("host", ""), target)
        with self._lock:
            self.records.append(Recorded(method, target, headers, body))
            script = None
            for key, queue in self.scripted.items():
                if key in target and queue:
                    script = queue.pop(0)
                    break
        fail = _fail_status(headers.get("x-fake-fail", ""), target)
        if script is None and fail:
            msg = f"fake: x-fake-fail answered {fail}"
            # retry-after 0: the gateway cools the key down for no time, so the
            # demo's later steps still have it.
            extra = {"retry-after": "0"} if fail == 429 else {}
            body = _j({"error": {"message": msg, "type": "fake_error"}})
            await self._send(w, fail, body, extra)
            return
        if script is not None:
            if script.delay_s:
                await asyncio.sleep(script.delay_s)
            if script.endless:
                await self._send_endless(w, script)
            else:
                await self._send(w, script.status, script.body, script.headers)
            return
        known = ("/chat/completions", "/embeddings", "/v1/messages", "/v1beta/", "/api/")
        known += ("/responses",)
        if not any(k in path for k in known):
            await self._send(w, 200, _j({"fake": "echo", "method": method, "path": target}))
            return
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            await self._send(
                w,
                400,
                b'{"error":{"message":"fake: body is not JSON","type":"invalid_request_error"}}',
            )
            return
        if path.endswith("/chat/completions") and "/openai/deployments/" in path:
            if not self._check(headers.get("api-key"), "azure"):
                await self._send(
                    w,
                    401,
                    b'{"error":{"code":"401","message":"Access denied due to invalid subscription key."}}',
                )
                return
            if "api-version" not in query:
                await self._send(w, 404, b'{"error":{"code":"404","message":"Resource not found"}}')
                return
            await self._openai_chat(req, w)
        elif path.endswith("/chat/completions"):
            auth = headers.get("authorization", "")
            if not self._check(auth[7:] if auth.startswith("Bearer ") else None, "openai"):
                await self._send(
                    w,
                    401,
                    b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}',
                )
                return
            await self._openai_chat(req, w)
        elif path.endswith("/responses") and method == "POST":
            auth = headers.get("authorization", "")
            bearer = auth[7:] if auth.startswith("Bearer ") else None
            if not self._check(headers.get("api-key") or bearer, "openai"):
                await self._send(
                    w,
                    401,
                    b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}',
                )
                return
            await self._openai_responses(req, w)
        elif path.endswith("/embeddings"):
            n = len(req.get("input")) if isinstance(req.get("input"), list) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in range(n)
            ]
            await self._send(
                w,
                200,
                _j(
                    {
                        "object": "list",
                        "data": data,
                        "model": req.get("model"),
                        "usage": {"prompt_tokens": 4, "total_tokens": 4},
                    }
                ),
            )
        elif path in ("/v1/messages", "/v1/messages/count_tokens"):
            await self._claude(path, headers, req, w)
        elif path.startswith("/v1beta/models/"):
            await self._gemini(headers, path, req, w)
        elif path in ("/api/chat", "/api/generate"):
            await self._ollama(path, req, w)
        elif path == "/api/embed":
            await self._send(
                w,
                200,
                _j(
                    {
                        "model": req.get("model"),
                        "embeddings": [[0.1, 0.2, 0.3]],
                        "prompt_eval_count": 4,
                    }
                ),
            )
        else:
            await self._send(
                w,
                200,
                _j(
                    {
                        "fake": "echo",
                        "method": method,
                        "path": target,
                        "host": headers.get("host", ""),
                    }
                ),
            )

    def _check(self, given: str | None, kind: str) -> bool:
        want = self.keys.get(kind)
        if want is None:
            return True
        return given in want if isinstance(want, set | frozenset | list | tuple) else given == want

    # -- per provider ----------------------------------------------------------

    @staticmethod
    def _reply_text(req: dict[str, Any]) -> str:
        msgs = req.get("messages") or []
        system = " ".join(str(m.get("content")) for m in msgs if m.get("role") == "system")
        users = [m.get("content") for m in msgs if m.get("role") == "user"]
        last = users[-1] if users else ""
        last = last if isinstance(last, str) else json.dumps(last)
        if GUARD_MARKER in system:
            if "CONFIDENTIAL" in last:
                return json.dumps(
                    {"result": "deny", "reason": "the text discloses confidential information"}
                )
            return json.dumps({"result": "allow", "reason": "nothing confidential"})
        if REWRITE_MARKER in system:
            return f"REWRITTEN: {last}"
        return f"Hello from the fake provider. model={req.get('model')} last_user={last[:200]}"

    async def _openai_chat(self, req: dict[str, Any], w: asyncio.StreamWriter) -> None:
        tool = fake_tools.openai_tool_name(req)
        result = fake_tools.openai_tool_result(req)
        text = (
            self._reply_text(req)
            if result is None
            else f"Fake model read the tool result: {result}"
        )
        finish = "stop" if tool is None else "tool_calls"
        model = req.get("model") or "unset"
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        head = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
        if not req.get("stream"):
            message = (
                {"role": "assistant", "content": text}
                if tool is None
                else fake_tools.openai_tool_message(req, tool)
            )
            choice = {"index": 0, "message": message, "finish_reason": finish}
            body = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            await self._send(w, 200, _j(body))
            return
        if tool is None:
            pieces = _split(text, self.chunks)
            deltas = [{"role": "assistant", "content": pieces[0]}] + [
                {"content": p} for p in pieces[1:]
            ]
        else:
            deltas = fake_tools.openai_tool_deltas(req, tool)
        deltas.append({})
        parts = []
        for i, delta in enumerate(deltas):
            fr = finish if i == len(deltas) - 1 else None
            choice = {"index": 0, "delta": delta, "finish_reason": fr}
            parts.append(_sse({**head, "object": "chat.completion.chunk", "choices": [choice]}))
        if (req.get("stream_options") or {}).get("include_usage"):
            chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            parts.append(_sse(chunk))
        parts.append(b"data: [DONE]\n\n")
        await self._send_stream(w, "text/event-stream", parts)

    async def _openai_responses(self, req: dict[str, Any], w: asyncio.StreamWriter) -> None:
        """OpenAI's Responses API, natively (a provider that speaks it)."""
        chat = fake_tools.responses_as_chat(req)
        tool = fake_tools.openai_tool_name(chat)
        result = fake_tools.openai_tool_result(chat)
        text = (
            self._reply_text(chat)
            if result is None
            else f"Fake model read the tool result: {result}"
        )
        model = req.get("model") or "unset"
        usage = {
            "input_tokens": 13,
            "input_tokens_details": {"cached_tokens": 2},
            "output_tokens": 8,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 21,
        }
        if tool is None:
            part = {"type": "output_text", "text": text, "annotations": []}
            item: dict[str, Any] = {
                "id": "msg_fake",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [part],
            }
        else:
            call = fake_tools.openai_tool_message(chat, tool)["tool_calls"][0]
            item = {
                "id": "fc_fake",
                "type": "function_call",
                "status": "completed",
                "call_id": call["id"],
                "name": tool,
                "arguments": call["function"]["arguments"],
            }
        resp: dict[str, Any] = {
            "id": "resp_fake",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": model,
            "output": [item],
            "usage": usage,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": req.get("tools") or [],
        }
        if not req.get("stream"):
            await self._send(w, 200, _j(resp))
            return
        seq = iter(range(1000))

        def ev(kind: str, **fields: Any) -> bytes:
            return _sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

        start = {**resp, "status": "in_progress", "output": [], "usage": None}
        parts = [ev("response.created", response=start), ev("response.in_progress", response=start)]
        parts.append(
            ev("response.output_item.added", output_index=0, item={**item, "status": "in_progress"})
        )
        if tool is None:
            for piece in _split(text, self.chunks):
                parts.append(
                    ev(
                        "response.output_text.delta",
                        item_id="msg_fake",
                        output_index=0,
                        content_index=0,
                        delta=piece,
                    )
                )
        parts.append(ev("response.output_item.done", output_index=0, item=item))
        parts.append(ev("response.completed", response=resp))
        await self._send_stream(w, "text/event-stream", parts)

    async def _claude(
        self, path: str, headers: dict[str, str], req: dict[str, Any], w: asyncio.StreamWriter
    ) -> None:
        refused = fake_claude.check(headers, self._check(headers.get("x-api-key"), "claude"))
        if refused is not None:
            await self._send(w, *refused)
        elif path.endswith("/count_tokens"):
            await self._send(w, *fake_claude.count_tokens(req))
        elif not req.get("stream"):
            await self._send(w, *fake_claude.messages(req))
        elif "max_tokens" not in req:
            await self._send(w, *fake_claude.messages(req))  # the same 400
        else:
            parts = fake_claude.message_stream(req, self.chunks)
            await self._send_stream(w, "text/event-stream", parts)

    async def _gemini(
        self, headers: dict[str, str], path: str, req: dict[str, Any], w: asyncio.StreamWriter
    ) -> None:
        if not self._check(headers.get("x-goog-api-key"), "gemini"):
            await self._send(
                w,
                400,
                _j(
                    {
                        "error": {
                            "code": 400,
                            "message": "API key not valid.",
                            "status": "INVALID_ARGUMENT",
                        }
                    }
                ),
            )
            return
        model = path.split("/models/", 1)[1].split(":", 1)[0]
        if path.endswith(":batchEmbedContents"):
            vectors = [{"values": [0.1, 0.2, 0.3]} for _ in req.get("requests") or ()]
            await self._send(w, 200, _j({"embeddings": vectors}))
            return
        text = f"Hello from fake Gemini. model={model}"
        usage = {"promptTokenCount": 10, "candidatesTokenCount": 6, "totalTokenCount": 16}

        def resp(t: str, finish: str | None, with_usage: bool) -> dict[str, Any]:
            c: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}
            if finish:
                c["finishReason"] = finish
            out: dict[str, Any] = {"candidates": [c], "modelVersion": model}
            if with_usage:
                out["usageMetadata"] = usage
            return out

        if path.endswith(":generateContent"):
            await self._send(w, 200, _j(resp(text, "STOP", True)))
            return
        pieces = _split(text, self.chunks)
        parts = [
            _sse(resp(p, "STOP" if i == len(pieces) - 1 else None, i == len(pieces) - 1))
            for i, p in enumerate(pieces)
        ]
        await self._send_stream(w, "text/event-stream", parts)

    async def _ollama(self, path: str, req: dict[str, Any], w: asyncio.StreamWriter) -> None:
        model = req.get("model")
        if path == "/api/generate":
            text = f"Hello from fake Ollama. model={model} prompt={str(req.get('prompt'))[:200]}"
        else:
            msgs = req.get("messages") or []
            text = f"Hello from fake Ollama. model={model} last_user={str(msgs[-1].get('content') if msgs else '')[:200]}"
        key = "response" if path == "/api/generate" else "message"
        final = {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 8,
            "eval_count": 5,
            "total_duration": 1000,
        }
        if req.get("stream", True) is False:
            out = dict(final)
            out[key] = text if key == "response" else {"role": "assistant", "content": text}
            await self._send(w, 200, _j(out))
            return
        parts = []
        for p in _split(text, self.chunks):
            c = {
                "model": model,
                "created_at": "2026-01-01T00:00:00Z",
                "done": False,
                key: p if key == "response" else {"role": "assistant", "content": p},
            }
            parts.append(_j(c) + b"\n")
        last = dict(final)
        last[key] = "" if key == "response" else {"role": "assistant", "content": ""}
        parts.append(_j(last) + b"\n")
        await self._send_stream(w, "application/x-ndjson", parts)


def _fail_status(spec: str, target: str) -> int:
    """`x-fake-fail: <path part>=<status>[,...]`: the status for this target, or 0.

    A client header that reaches every attempt, so a demo can make one
    provider fail with a single curl (the tests script the fake directly)."""
    for item in spec.split(","):
        part, _, status = item.strip().rpartition("=")
        if part and part in target and status.isdigit():
            return int(status)
    return 0


def _j(o: Any) -> bytes:
    return json.dumps(o, ensure_ascii=False).encode()


def _sse(o: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return head.encode() + b"data: " + _j(o) + b"\n\n"


def _split(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text)))
    step = -(-len(text) // n)
    return [text[i : i + step] for i in range(0, len(text), step)]


class ThreadedFakeProvider(FakeProvider):
    """The fake on its own loop in a thread, for tests that drive clients synchronously."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedFakeProvider:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18001)
    ap.add_argument(
        "--openai-key",
        action="append",
        help="bearer key the OpenAI-compatible endpoints accept (repeatable)",
    )
    ap.add_argument("--claude-key", help="x-api-key the Anthropic endpoint expects")
    ap.add_argument("--drip", type=float, default=0.2, help="seconds between stream chunks")
    args = ap.parse_args()
    keys: dict[str, Any] = {}
    if args.openai_key:
        keys["openai"] = set(args.openai_key)
    if args.claude_key:
        keys["claude"] = args.claude_key
    fake = FakeProvider(keys=keys, drip_s=args.drip)

    async def run() -> None:
        port = await fake.start(args.host, args.port)
        print(f"fake provider listening on {args.host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        await stop.wait()
        await fake.stop()

    asyncio.run(run())


if __name__ == "__main__":
    main()
