#!/usr/bin/env bash
# Regenerate extproc/config/v1/config_pb2.py{,i} from proto/. The output is
# committed; tests/unit/config/test_codegen.py fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. proto/extproc/config/v1/config.proto
touch extproc/config/v1/__init__.py
