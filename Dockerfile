# syntax=docker/dockerfile:1
# llm-extproc: Envoy ext_proc gRPC service (gRPC :50051, Prometheus /metrics :9464).
# The image serves gRPC on every interface of its container (Envoy runs elsewhere)
# and /metrics on loopback only; expose /metrics with `--metrics-host 0.0.0.0`
# where a network policy limits who reaches it (asm/deployment.yaml does).
#   docker build -t llm-extproc:0.1.0 .
# Both stages use the same base image so the venv's interpreter symlinks stay valid.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: compilers live here only -------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# In case a dependency has no wheel for the target platform (google-re2, uvloop, grpcio).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY extproc/ extproc/
# Build the project wheel with an isolated build env, then install it (with the `fast`
# extra: uvloop) into a clean venv that holds nothing but the runtime.
RUN test -f README.md || echo "# llm-extproc" > README.md \
    && python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install "$(ls /wheels/llm_extproc-*.whl)[fast]" \
    && /opt/venv/bin/pip install --force-reinstall --no-deps "opentelemetry-proto==$(/opt/venv/bin/python -c "import importlib.metadata as m; print(m.version('opentelemetry-proto'))")" \
    && /opt/venv/bin/python -c "import opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter" \
    && /opt/venv/bin/pip uninstall -y pip setuptools wheel \
    && /opt/venv/bin/llm-extproc --help > /dev/null

# ---- runtime: slim image + the venv, nothing else ----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="llm-extproc" \
      org.opencontainers.image.description="LLM gateway as an Envoy ext_proc gRPC service" \
      org.opencontainers.image.version="0.1.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 extproc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin extproc
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 50051
# grpc.health.v1 check against the serving port (grpcio-health-checking is a dependency).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; r = g.HealthStub(grpc.insecure_channel('localhost:50051')).Check(h.HealthCheckRequest(), timeout=3); sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["llm-extproc"]
CMD ["serve", "--config", "/etc/llm-extproc/config.yaml", "--host", "0.0.0.0"]
