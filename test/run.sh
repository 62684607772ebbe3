#!/usr/bin/env bash
# The demo: installs what it needs (a venv with the project), then runs Envoy
# on 127.0.0.1:18000 + llm-extproc + a fake provider in the foreground.
# With DASHSCOPE_API_KEY set, it targets the real dashscope instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/venv.sh
exec "$VENV/bin/python" test/demo.py
