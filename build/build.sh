#!/usr/bin/env bash
# Build: venv with the project, regenerate the config proto module, build the
# wheel, and the container image when a Docker engine is present.
set -euo pipefail
cd "$(dirname "$0")/.."
source build/venv.sh
PYTHON="$VENV/bin/python" build/codegen.sh
echo "== wheel"
"$VENV/bin/python" -m pip wheel -q --no-deps -w build/out .
ls build/out/*.whl
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  echo "== image llm-extproc:0.1.0"
  docker build -t llm-extproc:0.1.0 .
else
  echo "== no Docker engine here: skipped the image (docker build -t llm-extproc:0.1.0 .)"
fi
