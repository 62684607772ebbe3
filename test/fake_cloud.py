"""The fake provider's cloud side: AWS Bedrock Runtime, Google's OAuth token
endpoint and Vertex AI.

* Bedrock: every request's SigV4 signature is recomputed with botocore's
  signer from what arrived (method, path, the signed headers, the body) and
  the test's credentials; a mismatch is a 403 as AWS answers it. Converse
  answers JSON; ConverseStream and InvokeModelWithResponseStream answer
  event-stream frames, encoded here (independently of the gateway's encoder)
  with real CRCs and sent cut across chunk boundaries.
* Google: ``POST /token`` takes a service account's JWT assertion, verifies
  its RS256 signature with the account's public key and issues a short-lived
  token; Vertex endpoints accept only tokens it issued that have not expired.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

Reply = tuple[int, bytes, dict[str, str]]
Stream = tuple[str, list[bytes]]  # content type, parts (one TCP write each)


def _j(o: Any) -> bytes:
    return json.dumps(o, ensure_ascii=False).encode()


# -- SigV4 -------------------------------------------------------------------------


def verify_sigv4(
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str = "bedrock",
    token: str | None = None,
) -> str:
    """ "" when the request carries a valid signature by these credentials; else why not."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 authorization header"
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5 or scope[0] != access_key:
        return "unknown access key"
    if scope[2:4] != [region, service]:
        return f"credential scope {scope[2:4]} is not {[region, service]}"
    if hashlib.sha256(body).hexdigest() != headers.get("x-amz-content-sha256"):
        return "x-amz-content-sha256 does not match the body"
    if token is not None and headers.get("x-amz-security-token") != token:
        return "x-amz-security-token missing or wrong"
    signed = fields.get("SignedHeaders", "").split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in signed:
            return f"{required} is not signed"
    if token is not None and "x-amz-security-token" not in signed:
        return "x-amz-security-token is not signed"
    # Rebuild the request as it arrived and sign it again.
    req = AWSRequest(
        method=method,
        url=f"https://{headers.get('host', '')}{target}",
        data=body,
        headers={k: headers.get(k, "") for k in signed},
    )
    req.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(access_key, secret_key, token), service, region)
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if not secrets.compare_digest(expected, fields.get("Signature", "")):
        return "signature does not match"
    return ""


# -- event stream (independent of extproc.streaming.eventstream) -------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    hdrs = b""
    for k, v in headers.items():
        kb, vb = k.encode(), v.encode()
        hdrs += bytes([len(kb)]) + kb + b"\x07" + struct.pack(">H", len(vb)) + vb
    total = 16 + len(hdrs) + len(payload)
    prelude = struct.pack(">II", total, len(hdrs))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + hdrs + payload
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)


def event(kind: str, obj: dict[str, Any]) -> bytes:
    h = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    # Bedrock pads its events with a "p" field; the gateway must not care.
    return frame(h, _j({**obj, "p": "abcdefgh"}))


def exception(kind: str, message: str) -> bytes:
    h = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return frame(h, _j({"message": message}))


def cut(data: bytes) -> list[bytes]:
    """Frames cut at awkward places (inside preludes, headers, CRCs)."""
    out, pos, sizes = [], 0, (5, 11, 3, 29, 64, 7)
    i = 0
    while pos < len(data):
        out.append(data[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return out


# -- Bedrock -----------------------------------------------------------------------


def _bedrock_error(status: int, kind: str, message: str) -> Reply:
    return (
        status,
        _j({"message": message}),
        {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def _reply_text(messages: list[dict[str, Any]], model: str) -> str:
    last = ""
    for m in messages:
        for b in m.get("content") or ():
            if isinstance(b, dict) and isinstance(b.get("text"), str) and m.get("role") == "user":
                last = b["text"]
    return f"Hello from fake Bedrock. model={model} last_user={last[:100]}"


def _tool_of(req: dict[str, Any]) -> dict[str, Any] | None:
    """The first declared tool when the client asked for one (toolChoice any/tool)."""
    tc = req.get("toolConfig") or {}
    if not tc.get("tools") or not ({"any", "tool"} & set(tc.get("toolChoice") or {})):
        return None
    # A tool result already in the conversation: answer in text.
    for m in req.get("messages") or ():
        if any("toolResult" in b for b in m.get("content") or ()):
            return None
    return tc["tools"][0]["toolSpec"]


def bedrock(
    method: str, target: str, headers: dict[str, str], body: bytes, creds: dict[str, Any]
) -> Reply | Stream:
    """``creds``: access key id -> {"secret_key", "token"?}; the region is the host's."""
    host = headers.get("host", "")
    region = host.split(".")[1] if host.startswith("bedrock-runtime.") else ""
    auth = headers.get("authorization", "")
    ak = auth.partition("Credential=")[2].partition("/")[0]
    known = creds.get(ak)
    if known is None:
        return _bedrock_error(403, "UnrecognizedClientException", "fake: unknown access key")
    why = verify_sigv4(
        method, target, headers, body, ak, known["secret_key"], region, token=known.get("token")
    )
    if why:
        return _bedrock_error(403, "InvalidSignatureException", f"fake: {why}")
    path = target.split("?", 1)[0]
    parts = path.split("/")  # "", "model", "<encoded id>", "<op>"
    if len(parts) != 4 or parts[1] != "model":
        return _bedrock_error(404, "UnknownOperationException", "fake: unknown operation")
    model, op = unquote(parts[2]), parts[3]
    if "/" not in model and ":" in parts[2]:
        return _bedrock_error(400, "ValidationException", "fake: model ID not encoded")
    if "throttle" in model:
        return _bedrock_error(
            429, "ThrottlingException", "Too many requests, please wait before trying again."
        )
    try:
        req = json.loads(body)
    except ValueError:
        return _bedrock_error(400, "SerializationException", "fake: body is not JSON")
    if op in ("converse", "converse-stream"):
        return _converse(req, model, op == "converse-stream")
    if op in ("invoke", "invoke-with-response-stream"):
        if "embed" in model:
            return _embed(req, model)
        return _invoke(req, model, op.endswith("stream"))
    return _bedrock_error(404, "UnknownOperationException", f"fake: unknown operation {op}")


def _converse(req: dict[str, Any], model: str, stream: bool) -> Reply | Stream:
    if "model" in req or not req.get("messages"):
        return _bedrock_error(400, "ValidationException", "fake: not a Converse body")
    tool = _tool_of(req)
    text = _reply_text(req["messages"], model)
    usage = {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19}
    if not stream:
        content: list[dict[str, Any]] = [{"text": text}]
        if tool:
            content = [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_fake1",
                        "name": tool["name"],
                        "input": {"city": "Oslo"},
                    }
                }
            ]
        out = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if tool else "end_turn",
            "usage": usage,
            "metrics": {"latencyMs": 3},
        }
        return 200, _j(out), {"content-type": "application/json"}
    frames = [event("messageStart", {"role": "assistant"})]
    if "stream-throttle" in text:
        frames.append(exception("throttlingException", "Too many tokens, please wait."))
        return "application/vnd.amazon.eventstream", cut(b"".join(frames))
    if tool:
        frames.append(
            event(
                "contentBlockStart",
                {
                    "contentBlockIndex": 0,
                    "start": {"toolUse": {"toolUseId": "tooluse_fake1", "name": tool["name"]}},
                },
            )
        )
        for piece in ('{"city":', ' "Oslo"}'):
            frames.append(
                event(
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}},
                )
            )
    else:
        for i in range(0, len(text), 9):
            frames.append(
                event(
                    "contentBlockDelta",
                    {"contentBlockIndex": 0, "delta": {"text": text[i : i + 9]}},
                )
            )
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": "tool_use" if tool else "end_turn"}))
    frames.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 3}}))
    return "application/vnd.amazon.eventstream", cut(b"".join(frames))


def _embed(req: dict[str, Any], model: str) -> Reply:
    if "cohere" in model:
        texts = req.get("texts") or []
        return 200, _j({"embeddings": [[0.1, 0.2] for _ in texts], "id": "e1", "texts": texts}), {}
    if not isinstance(req.get("inputText"), str):
        return _bedrock_error(400, "ValidationException", "fake: inputText required")
    dims = int(req.get("dimensions") or 4)
    return 200, _j({"embedding": [0.25] * dims, "inputTextTokenCount": 5}), {}


def _anthropic_message(req: dict[str, Any], model: str) -> dict[str, Any]:
    last = ""
    for m in req.get("messages") or ():
        if m.get("role") == "user":
            c = m.get("content")
            last = (
                c
                if isinstance(c, str)
                else " ".join(b.get("text", "") for b in c if isinstance(b, dict))
            )
    return {
        "id": "msg_bedrock_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-fake-on-cloud",
        "content": [
            {
                "type": "text",
                "text": f"Hello from fake Claude on a cloud. model={model} last_user={last[:100]}",
            }
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 14, "output_tokens": 9},
    }


def anthropic_events(req: dict[str, Any], model: str) -> list[dict[str, Any]]:
    msg = _anthropic_message(req, model)
    text = msg["content"][0]["text"]
    start = {
        **msg,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 14, "output_tokens": 1},
    }
    evs: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    evs += [
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text[i : i + 11]},
        }
        for i in range(0, len(text), 11)
    ]
    evs += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    return evs


def _anthropic_body_ok(req: dict[str, Any], version: str, stream_field: bool | None) -> str:
    if req.get("anthropic_version") != version:
        return f"anthropic_version must be {version}"
    if "model" in req:
        return "model must not be in the body"
    if stream_field is None and "stream" in req:
        return "stream must not be in the body"
    if not isinstance(req.get("max_tokens"), int):
        return "max_tokens is required"
    return ""


def _invoke(req: dict[str, Any], model: str, stream: bool) -> Reply | Stream:
    why = _anthropic_body_ok(req, "bedrock-2023-05-31", None)
    if why:
        return _bedrock_error(400, "ValidationException", f"fake: {why}")
    if not stream:
        return 200, _j(_anthropic_message(req, model)), {"content-type": "application/json"}
    frames = []
    for ev in anthropic_events(req, model):
        if ev["type"] == "message_stop":
            ev = {
                **ev,
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 14, "outputTokenCount": 9},
            }
        frames.append(event("chunk", {"bytes": base64.b64encode(_j(ev)).decode()}))
    return "application/vnd.amazon.eventstream", cut(b"".join(frames))


# -- Google token endpoint and Vertex AI --------------------------------------------


@dataclass
class Google:
    """The token endpoint's and Vertex's shared state."""

    public_pem: bytes
    lifetime_s: int = 3600
    issued: dict[str, float] = field(default_factory=dict)  # token -> expiry (time.time())
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, body: bytes) -> Reply:
        from google.auth import jwt

        form = parse_qs(body.decode("latin-1"))
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, _j({"error": "unsupported_grant_type"}), {}
        try:
            claims = jwt.decode(
                form.get("assertion", [""])[0],
                certs=self.public_pem.decode(),
                verify=True,
                clock_skew_in_seconds=60,
            )
        except Exception as e:  # any bad assertion: google-auth raises several types
            return 400, _j({"error": "invalid_grant", "error_description": str(e)[:100]}), {}
        if "cloud-platform" not in str(claims.get("scope", "")):
            return 400, _j({"error": "invalid_scope"}), {}
        tok = "ya29.fake-" + secrets.token_hex(12)
        with self.lock:
            self.issued[tok] = time.time() + self.lifetime_s
        return (
            200,
            _j({"access_token": tok, "expires_in": self.lifetime_s, "token_type": "Bearer"}),
            {},
        )

    def valid(self, auth: str) -> bool:
        tok = auth.removeprefix("Bearer ")
        with self.lock:
            exp = self.issued.get(tok)
        return exp is not None and exp > time.time()


def _google_error(status: int, message: str, kind: str) -> Reply:
    return status, _j({"error": {"code": status, "message": message, "status": kind}}), {}


def vertex(target: str, headers: dict[str, str], body: bytes, google: Google) -> Reply | Stream:
    out = _vertex(target, headers, body, google)
    if "gzip" in headers.get("accept-encoding", "") and isinstance(out[0], int):
        # Google's front ends compress when the client accepts it.
        status, data, extra = out  # type: ignore[misc]
        return status, gzip.compress(data), {**extra, "content-encoding": "gzip"}
    return out


def _vertex(target: str, headers: dict[str, str], body: bytes, google: Google) -> Reply | Stream:
    if not google.valid(headers.get("authorization", "")):
        return _google_error(
            401, "Request had invalid authentication credentials.", "UNAUTHENTICATED"
        )
    path, _, query = target.partition("?")
    # /v1/projects/{p}/locations/{r}/publishers/{pub}/models/{m}:{op}
    parts = path.split("/")
    if len(parts) != 10 or parts[2] != "projects" or parts[4] != "locations":
        return _google_error(404, "fake: unknown Vertex path", "NOT_FOUND")
    publisher = parts[7]
    model, _, op = unquote(parts[9]).partition(":")
    if "throttle" in model:
        return _google_error(
            429,
            "Quota exceeded for aiplatform.googleapis.com/generate_content_requests_per_minute_per_project_per_base_model",
            "RESOURCE_EXHAUSTED",
        )
    try:
        req = json.loads(body)
    except ValueError:
        return _google_error(400, "fake: body is not JSON", "INVALID_ARGUMENT")
    if publisher == "anthropic":
        why = _anthropic_body_ok(req, "vertex-2023-10-16", True)
        if why:
            return (
                400,
                _j(
                    {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": f"fake: {why}"},
                    }
                ),
                {},
            )
        if op == "rawPredict":
            return 200, _j(_anthropic_message(req, model)), {}
        if op == "streamRawPredict" and req.get("stream") is True:
            evs = anthropic_events(req, model)
            return "text/event-stream", [
                f"event: {e['type']}\ndata: ".encode() + _j(e) + b"\n\n" for e in evs
            ]
        return _google_error(400, f"fake: bad anthropic op {op}", "INVALID_ARGUMENT")
    if op == "predict":
        inst = req.get("instances") or []
        preds = [
            {"embeddings": {"values": [0.5, 0.5], "statistics": {"token_count": 2}}} for _ in inst
        ]
        return 200, _j({"predictions": preds}), {}
    if "model" in req or not req.get("contents"):
        return _google_error(400, "fake: not a generateContent body", "INVALID_ARGUMENT")
    last = ""
    for c in req["contents"]:
        for p in c.get("parts") or ():
            if c.get("role") == "user" and isinstance(p.get("text"), str):
                last = p["text"]
    text = f"Hello from fake Vertex Gemini. model={model} last_user={last[:100]}"
    fcc = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    answered = any("functionResponse" in p for c in req["contents"] for p in c.get("parts") or ())
    if fcc.get("mode") == "ANY" and req.get("tools") and not answered:
        name = req["tools"][0]["functionDeclarations"][0]["name"]
        call = {"functionCall": {"name": name, "args": {"city": "Oslo"}}}
        out = {
            "candidates": [
                {"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": 10,
                "candidatesTokenCount": 3,
                "totalTokenCount": 13,
            },
            "modelVersion": model + "-001",
        }
        if op == "generateContent":
            return 200, _j(out), {}
        return "text/event-stream", [b"data: " + _j(out) + b"\n\n"]
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 6, "totalTokenCount": 16}

    def resp(t: str, finish: str | None, with_usage: bool) -> dict[str, Any]:
        c: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": t}]}, "index": 0}
        if finish:
            c["finishReason"] = finish
        out: dict[str, Any] = {"candidates": [c], "modelVersion": model + "-001"}
        if with_usage:
            out["usageMetadata"] = usage
        return out

    if op == "generateContent":
        return 200, _j(resp(text, "STOP", True)), {}
    if op == "streamGenerateContent" and query == "alt=sse":
        pieces = [text[i : i + 10] for i in range(0, len(text), 10)]
        return "text/event-stream", [
            b"data: "
            + _j(resp(p, "STOP" if i == len(pieces) - 1 else None, i == len(pieces) - 1))
            + b"\n\n"
            for i, p in enumerate(pieces)
        ]
    return _google_error(400, f"fake: unknown op {op}", "INVALID_ARGUMENT")


def service_account(token_uri: str) -> tuple[dict[str, Any], bytes]:
    """A fresh service-account JSON key (its token_uri on loopback) and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "fakekeyid",
        "private_key": pem,
        "client_email": "gateway@fake-project.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return info, public
