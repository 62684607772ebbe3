#!/usr/bin/env bash
# Sends the demo's scenarios to a running ./test/run.sh, prints each result,
# and exits non-zero on any failure.
set -uo pipefail
BASE=${BASE:-http://127.0.0.1:18000}
PY=${PYTHON:-python3}
REAL=${DASHSCOPE_API_KEY:+1}
fails=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ok() { printf '  \033[32mPASS\033[0m %s\n' "$*"; }
bad() { printf '  \033[31mFAIL\033[0m %s\n' "$*"; fails=$((fails + 1)); }

# req NAME HOST PATH BODY -> status in $tmp/NAME.status, headers/body in files
req() {
  local name=$1 host=$2 path=$3 body=$4
  curl -s -o "$tmp/$name.body" -D "$tmp/$name.headers" -w '%{http_code}' \
    -H "host: $host" "$BASE$path" -d "$body" >"$tmp/$name.status" || echo 000 >"$tmp/$name.status"
  echo "  -> HTTP $(cat "$tmp/$name.status"): $(head -c 400 "$tmp/$name.body")"
}
status() { cat "$tmp/$1.status"; }
header() { grep -i "^$2:" "$tmp/$1.headers" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
json() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {'d': d}))" "$tmp/$1.body" "$2" 2>/dev/null; }

say "1. host test.com, only messages -> 200 chat.completion; model, key, host and path filled by the gateway"
req seed test.com / '{"messages":[{"role":"user","content":"Please introduce yourself"}]}'
[ "$(status seed)" = 200 ] && ok "status 200" || bad "status $(status seed)"
[ "$(json seed "d['object']")" = chat.completion ] && ok "an OpenAI chat.completion" || bad "not a chat.completion"
if [ -z "$REAL" ]; then
  # The fake rejects a request without the injected bearer key (401), and
  # echoes the model it received and where the request arrived.
  json seed "d['choices'][0]['message']['content']" | grep -q 'model=qwen-turbo' && ok "provider received model qwen-turbo" || bad "model not filled"
  [ "$(header seed x-fake-received-host)" = dashscope.aliyuncs.com ] && ok "provider received host dashscope.aliyuncs.com" || bad "host: $(header seed x-fake-received-host)"
  [ "$(header seed x-fake-received-path)" = /compatible-mode/v1/chat/completions ] && ok "provider received path /compatible-mode/v1/chat/completions" || bad "path: $(header seed x-fake-received-path)"
fi
[ "$(header seed x-llm-provider)" = dashscope ] && ok "served by provider dashscope (x-llm-provider)" || bad "x-llm-provider: $(header seed x-llm-provider)"

say "2. a user message containing 账号 -> 403 (deny_patterns)"
req deny test.com / '{"messages":[{"role":"user","content":"请告诉我你的账号和密码"}]}'
[ "$(status deny)" = 403 ] && ok "status 403" || bad "status $(status deny)"
[ "$(json deny "d['error']['code']")" = content_denied ] && ok "error.code content_denied" || bad "wrong error body"

say "3. a host the gateway does not handle passes through unmodified"
req other other.example.com /anything/else 'not json, left alone'
[ "$(status other)" = 200 ] && ok "status 200" || bad "status $(status other)"
if [ -z "$REAL" ] || [ -n "$(header other x-fake-received-path)" ]; then
  [ "$(header other x-fake-received-path)" = /anything/else ] && ok "path untouched" || bad "path changed: $(header other x-fake-received-path)"
  [ "$(header other x-fake-received-host)" = other.example.com ] && ok "host untouched" || bad "host changed"
fi

say "4. intelligent guard: text with CONFIDENTIAL -> 403 with the guard's reason; plain text passes"
req guard_deny test.com / '{"messages":[{"role":"user","content":"Summarise this CONFIDENTIAL merger plan"}]}'
[ "$(status guard_deny)" = 403 ] && ok "status 403" || bad "status $(status guard_deny)"
[ "$(json guard_deny "d['error']['code']")" = guard_denied ] && ok "error.code guard_denied" || bad "wrong error body"
json guard_deny "d['error']['message']" | grep -qi 'guard' && ok "reason shown: $(json guard_deny "d['error']['message']")" || bad "no reason"
req guard_allow test.com / '{"messages":[{"role":"user","content":"What is the capital of France?"}]}'
[ "$(status guard_allow)" = 200 ] && ok "allowed: status 200" || bad "status $(status guard_allow)"

say "5. streaming: chunks printed as they arrive"
start=$("$PY" -c 'import time; print(time.time())')
curl -sN "$BASE/" -H 'host: test.com' -d '{"stream":true,"messages":[{"role":"user","content":"Tell me a short story"}]}' \
  | while IFS= read -r line; do
      [ -n "$line" ] && printf '  [+%5.2fs] %s\n' "$("$PY" -c "import time; print(time.time()-$start)")" "${line:0:110}"
    done | tee "$tmp/stream.out"
grep -q '^.*data: \[DONE\]' "$tmp/stream.out" && ok "ends with data: [DONE]" || bad "no [DONE]"
[ "$(grep -c 'chat.completion.chunk' "$tmp/stream.out")" -ge 2 ] && ok "several chat.completion.chunk events" || bad "no chunks"
grep -q '"usage"' "$tmp/stream.out" && bad "client saw a usage chunk it did not ask for" || ok "no unrequested usage chunk"

if [ -z "$REAL" ]; then
  say "6. host claude.test.com: any model maps to Claude; the client still speaks OpenAI"
  req claude claude.test.com /v1/chat/completions '{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}'
  [ "$(status claude)" = 200 ] && ok "status 200" || bad "status $(status claude)"
  [ "$(json claude "d['object']")" = chat.completion ] && ok "an OpenAI chat.completion" || bad "not a chat.completion"
  json claude "d['model']" | grep -q '^claude-' && ok "model $(json claude "d['model']")" || bad "model not mapped"
  [ "$(header claude x-fake-received-path)" = /v1/messages ] && ok "provider received /v1/messages (x-api-key and anthropic-version checked by it)" || bad "path: $(header claude x-fake-received-path)"
  [ "$(json claude "d['usage']['total_tokens']")" -gt 0 ] 2>/dev/null && ok "usage mapped: $(json claude "d['usage']")" || bad "no usage"
fi

# DEMO_FALLBACK=0: an Envoy older than 1.40 (no priority_group cluster specifier).
if [ -z "$REAL" ] && [ "${DEMO_FALLBACK:-1}" = 1 ]; then
  say "6b. provider fallback (host fallback.test.com): dashscope answers 429, Envoy retries the request on Claude"
  # x-fake-fail makes the fake provider answer 429 on dashscope's path only.
  curl -s -o "$tmp/fb.body" -D "$tmp/fb.headers" -w '%{http_code}' -H 'host: fallback.test.com' \
    -H 'x-fake-fail: /compatible-mode=429' "$BASE/v1/chat/completions" \
    -d '{"messages":[{"role":"user","content":"Hello"}]}' >"$tmp/fb.status" || echo 000 >"$tmp/fb.status"
  echo "  -> HTTP $(status fb): $(head -c 300 "$tmp/fb.body")"
  [ "$(status fb)" = 200 ] && ok "status 200 with one request" || bad "status $(status fb)"
  [ "$(json fb "d['object']")" = chat.completion ] && ok "Claude's answer as an OpenAI chat.completion" || bad "not a chat.completion"
  [ "$(header fb x-llm-provider)" = claude ] && ok "answered by claude (x-llm-provider)" || bad "x-llm-provider: $(header fb x-llm-provider)"
  [ "$(header fb x-envoy-attempt-count)" = 2 ] && ok "two attempts (x-envoy-attempt-count)" || bad "attempts: $(header fb x-envoy-attempt-count)"
fi

OLLAMA=${OLLAMA_BASE:-http://localhost:8004}
PROXY_KEY=${LLM_PROXY_KEY:-demo-ollama-key}
say "7. the Ollama key proxy on $OLLAMA: /api/generate and /api/chat with the body key or a Bearer key"
ollama() {  # ollama NAME PATH BODY [CURL ARGS...]
  local name=$1 path=$2 body=$3
  shift 3
  curl -s -o "$tmp/$name.body" -w '%{http_code}' -X POST "$OLLAMA$path" -H "Content-Type: application/json" "$@" -d "$body" >"$tmp/$name.status" || echo 000 >"$tmp/$name.status"
  echo "  -> HTTP $(cat "$tmp/$name.status"): $(head -c 300 "$tmp/$name.body")"
}
ollama gen /api/generate '{"model": "llama3", "prompt": "Why is the sky blue?", "stream": false, "key": "'"$PROXY_KEY"'"}'
[ "$(status gen)" = 200 ] && ok "generate: status 200" || bad "generate: status $(status gen)"
json gen "d['response']" | grep -q 'Why is the sky blue' && ok "an Ollama generate response" || bad "not an Ollama response"
ollama chat /api/chat '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}], "key": "'"$PROXY_KEY"'"}'
[ "$(status chat)" = 200 ] && ok "chat (streamed NDJSON, Ollama's default): status 200" || bad "chat: status $(status chat)"
[ "$(tail -n1 "$tmp/chat.body" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["done"])')" = True ] && ok "last NDJSON line has done: true" || bad "no final done line"
ollama badkey /api/generate '{"model": "llama3", "prompt": "Why is the sky blue?", "key": "wrong"}'
[ "$(status badkey)" = 401 ] && ok "wrong key: status 401" || bad "wrong key: status $(status badkey)"
[ "$(cat "$tmp/badkey.body")" = '{"error":"Invalid or missing API key"}' ] && ok 'body is exactly {"error":"Invalid or missing API key"}' || bad "body: $(cat "$tmp/badkey.body")"
ollama nokey /api/chat '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}]}'
[ "$(status nokey)" = 401 ] && ok "missing key: status 401" || bad "missing key: status $(status nokey)"
ollama bearer /api/chat '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}], "stream": false}' -H "Authorization: Bearer $PROXY_KEY"
[ "$(status bearer)" = 200 ] && ok "Authorization: Bearer (the ollama clients): status 200" || bad "bearer: status $(status bearer)"
ollama badbearer /api/chat '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}]}' -H "Authorization: Bearer wrong"
[ "$(status badbearer)" = 401 ] && ok "wrong Bearer key: status 401" || bad "wrong Bearer key: status $(status badbearer)"
[ "$(cat "$tmp/badbearer.body")" = '{"error":"Invalid or missing API key"}' ] && ok 'body is exactly {"error":"Invalid or missing API key"}' || bad "body: $(cat "$tmp/badbearer.body")"

say "8. Claude Code style: the Anthropic Messages API (ANTHROPIC_BASE_URL=$BASE, ANTHROPIC_API_KEY=\$LLM_PROXY_KEY)"
areq() {  # areq NAME PATH BODY [KEY] -> an Anthropic SDK's request (x-api-key, anthropic-version)
  curl -s -o "$tmp/$1.body" -D "$tmp/$1.headers" -w '%{http_code}' "$BASE$2" \
    -H "x-api-key: ${4-$PROXY_KEY}" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    -d "$3" >"$tmp/$1.status" || echo 000 >"$tmp/$1.status"
  echo "  -> HTTP $(cat "$tmp/$1.status"): $(head -c 300 "$tmp/$1.body")"
}
MSG='"max_tokens":256,"messages":[{"role":"user","content":"Hello Claude"}]'
areq cc /v1/messages '{"model":"claude-sonnet-4-5",'"$MSG"'}'
[ "$(status cc)" = 200 ] && ok "status 200" || bad "status $(status cc)"
[ "$(json cc "d['type']")" = message ] && ok "an Anthropic message: $(json cc "d['content'][0]['text'][:60]")" || bad "not an Anthropic message"
[ "$(header cc x-fake-received-path)" = /v1/messages ] && ok "passed through to Claude's /v1/messages with the provider's key" || bad "path: $(header cc x-fake-received-path)"
[ "$(json cc "d['usage']['output_tokens']")" -gt 0 ] 2>/dev/null && ok "usage: $(json cc "d['usage']")" || bad "no usage"
curl -sN "$BASE/v1/messages" -H "x-api-key: $PROXY_KEY" -H 'anthropic-version: 2023-06-01' \
  -d '{"model":"claude-sonnet-4-5","stream":true,'"$MSG"'}' >"$tmp/ccs.out"
grep -c '^event: ' "$tmp/ccs.out" | xargs -I{} echo "  -> {} SSE events"
[ "$(grep '^event: ' "$tmp/ccs.out" | head -1)" = "event: message_start" ] && [ "$(grep '^event: ' "$tmp/ccs.out" | tail -1)" = "event: message_stop" ] \
  && ok "stream: message_start ... message_stop, byte for byte from Claude" || bad "stream events: $(grep '^event: ' "$tmp/ccs.out" | tr '\n' ' ')"
areq ccq /qwen/v1/messages '{"model":"claude-sonnet-4-5","system":"Be brief.",'"$MSG"'}'
[ "$(status ccq)" = 200 ] && [ "$(json ccq "d['type']")" = message ] && ok "/qwen: dashscope's answer as an Anthropic message: $(json ccq "d['content'][0]['text'][:60]")" || bad "/qwen: status $(status ccq)"
[ "$(header ccq x-llm-provider)" = dashscope ] && ok "/qwen: served by dashscope, translated both ways" || bad "x-llm-provider: $(header ccq x-llm-provider)"
curl -sN "$BASE/qwen/v1/messages" -H "x-api-key: $PROXY_KEY" -H 'anthropic-version: 2023-06-01' \
  -d '{"model":"claude-sonnet-4-5","stream":true,'"$MSG"'}' >"$tmp/ccqs.out"
grep -q '^event: content_block_delta' "$tmp/ccqs.out" && [ "$(grep '^event: ' "$tmp/ccqs.out" | tail -1)" = "event: message_stop" ] \
  && ok "/qwen stream: OpenAI chunks became content_block_delta ... message_stop" || bad "/qwen stream: $(head -c 300 "$tmp/ccqs.out")"
areq cccount /v1/messages/count_tokens '{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}]}'
[ "$(json cccount "d['input_tokens']")" -gt 0 ] 2>/dev/null && ok "count_tokens passes through to Claude" || bad "count_tokens: status $(status cccount)"
areq ccqcount /qwen/v1/messages/count_tokens '{"model":"x","messages":[{"role":"user","content":"Hello"}]}'
[ "$(status ccqcount)" = 501 ] && ok "count_tokens on dashscope: 501 $(json ccqcount "d['error']['type']")" || bad "status $(status ccqcount)"
areq ccbad /v1/messages '{"model":"claude-sonnet-4-5",'"$MSG"'}' wrong-key
[ "$(status ccbad)" = 401 ] && [ "$(json ccbad "d['type']")" = error ] && ok "wrong key: 401 in Anthropic's shape ($(json ccbad "d['error']['type']"))" || bad "wrong key: status $(status ccbad)"
areq ccdeny /qwen/v1/messages '{"model":"x","max_tokens":9,"messages":[{"role":"user","content":[{"type":"text","text":"我的账号"}]}]}'
[ "$(status ccdeny)" = 403 ] && [ "$(json ccdeny "d['error']['type']")" = permission_error ] && ok "deny_patterns on a text block: 403 permission_error" || bad "deny: status $(status ccdeny)"

say "8b. fail closed: no path around the checks"
curl -s -o "$tmp/cchost.body" -w '%{http_code}' "$BASE/v1/messages" -H 'host: claude.test.com' \
  -H 'anthropic-version: 2023-06-01' -d '{"model":"claude-sonnet-4-5",'"$MSG"'}' >"$tmp/cchost.status"
[ "$(status cchost)" = 401 ] && ok "/v1/messages on claude.test.com without a key: 401 (the Messages route comes first)" || bad "claude.test.com /v1/messages: status $(status cchost)"
curl -s -o "$tmp/ccpath.body" -w '%{http_code}' "$BASE/v1/models" -H 'host: api.anthropic.com' \
  -H "x-api-key: $PROXY_KEY" >"$tmp/ccpath.status"
[ "$(status ccpath)" = 404 ] && [ "$(json ccpath "d['error']['code']")" = no_route ] && ok "a path no route names on a provider host: 404 no_route, never forwarded" || bad "api.anthropic.com /v1/models: status $(status ccpath)"
curl -s -o "$tmp/olhost.body" -w '%{http_code}' -X POST "$OLLAMA/api/chat" -H 'host: evil.example' \
  -d '{"model": "llama3", "messages": [{"role": "user", "content": "Hello!"}]}' >"$tmp/olhost.status"
[ "$(status olhost)" = 404 ] && ok "the Ollama listener with Host: evil.example: 404, no key no answer" || bad "Ollama with another Host: status $(status olhost)"

say "8c. Codex and the OpenAI SDK: the Responses API (client.responses.create; base_url $BASE/v1)"
# test.com (dashscope, translated from chat), claude.test.com (Claude, translated)
# and any other host with the consumer key (the codex route: any model name).
cat >"$tmp/responses.py" <<'PYEOF'
import os, sys
import openai

base, host, key = sys.argv[1], sys.argv[2], sys.argv[3]
c = openai.OpenAI(base_url=base + "/v1", api_key=key, default_headers={"host": host} if host else None, max_retries=0)
r = c.responses.create(model="gpt-5-codex", instructions="Be brief.", input="Hello from the Responses API")
assert r.object == "response" and r.status == "completed" and r.output_text, r
print(f"  plain: {r.output_text[:70]!r} usage={r.usage.total_tokens}")
events = list(c.responses.create(model="gpt-5-codex", input="Tell me a short story", stream=True))
kinds = [e.type for e in events]
seqs = [e.sequence_number for e in events]
assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
assert seqs == sorted(seqs), seqs
text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
print(f"  stream: {len(events)} events, {kinds[0]} ... {kinds[-1]}: {text[:60]!r}")
PYEOF
for target in "test.com:" "claude.test.com:" ":$PROXY_KEY"; do
  host=${target%%:*} key=${target#*:}
  if [ -n "$REAL" ] && [ "$host" = claude.test.com ]; then continue; fi
  if "$PY" "$tmp/responses.py" "$BASE" "$host" "${key:-unused}"; then
    ok "responses.create plain and stream on ${host:-any host (codex route)}"
  else
    bad "responses.create on ${host:-any host (codex route)}"
  fi
done
curl -s -o "$tmp/prev.body" -w '%{http_code}' "$BASE/v1/responses" -H 'host: test.com' -H 'content-type: application/json' \
  -d '{"model":"m","input":"again","previous_response_id":"resp_1"}' >"$tmp/prev.status"
[ "$(status prev)" = 400 ] && ok "previous_response_id on a chat provider: 400 ($(json prev "d['error']['message'][:70]"))" || bad "previous_response_id: status $(status prev)"

say "9. metrics: http://127.0.0.1:9464/metrics"
curl -s "${METRICS:-http://127.0.0.1:9464/metrics}" >"$tmp/metrics" || true
grep -E '^(gen_ai_client_token_usage_sum|llm_extproc_requests_total|llm_extproc_blocked_requests_total)' "$tmp/metrics" | head -12 | sed 's/^/  /'
grep -q '^llm_extproc_requests_total' "$tmp/metrics" && ok "request counters exported" || bad "no request counters"
grep -q 'llm_extproc_blocked_requests_total{.*content_denied' "$tmp/metrics" && ok "the 账号 block is counted by reason" || bad "blocked requests not counted"

say "Bad input: invalid JSON -> 400"
req badjson test.com / '{"messages": [oops'
[ "$(status badjson)" = 400 ] && ok "status 400: $(json badjson "d['error']['message']")" || bad "status $(status badjson)"

echo
if [ "$fails" -eq 0 ]; then echo "all scenarios passed"; else echo "$fails check(s) failed"; fi
[ "$fails" -eq 0 ]
