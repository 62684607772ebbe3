#!/usr/bin/env bash
# One command: the llm-extproc benchmark (see bench/bench.py, docs/performance.md).
# Both transports in one run (full = h2corn, full-grpcio); the #14 targets are
# printed at the end and again by bench/check_targets.py <result JSON>.
#   bench/run.sh --quick            # ~2-3 minutes
#   bench/run.sh                    # full run: 3 rounds x 10 s, 100k-request soak per transport
#   bench/run.sh --workers 2 --no-uvloop --profile
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x /tmp/venv/bin/python ]; then py=/tmp/venv/bin/python
  elif [ -x "$root/.venv/bin/python" ]; then py="$root/.venv/bin/python"
  else py="$(command -v python3)"; fi
fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found; installing it (Debian package wrk) ..." >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null
  fi
fi

# py-spy only for --profile; install it into the same environment if missing.
for a in "$@"; do
  if [ "$a" = "--profile" ] && ! [ -x "$(dirname "$py")/py-spy" ] && ! command -v py-spy >/dev/null; then
    "$py" -m pip install -q py-spy
  fi
done

cd "$root"
exec "$py" "$here/bench.py" "$@"
