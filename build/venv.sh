# Sourced: makes $VENV (default .venv) with the project and its test tools
# installed, reusing it when pyproject.toml has not changed since.
VENV=${VENV:-"$(pwd)/.venv"}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing into $VENV ..." >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -e '.[test,fast]' >&2
  # xds-protos carries an old copy of the opentelemetry/proto modules and may
  # overwrite opentelemetry-proto's (the OTLP exporters then fail to import):
  # opentelemetry-proto's own files go back on top.
  otel_proto=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('opentelemetry-proto'))")
  "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "opentelemetry-proto==$otel_proto" >&2
  touch "$stamp"
fi
export VENV
