"""Structural lint of the Dockerfile (no Docker engine is available offline), plus a
live run of its HEALTHCHECK one-liner against an in-process grpc.health.v1 server."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|python3?-dev|libc6?-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def of(self, op: str) -> list[str]:
        return [args for o, args in self.instructions if o == op]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Instructions with comments dropped and `\\` continuations joined."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "dangling line continuation"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, args = line.partition(" ")
        op, args = op.upper(), args.strip()
        if op == "FROM":
            words = args.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert op == "ARG", f"{op} before the first FROM"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((op, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def final(stages) -> Stage:
    return stages[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def test_multi_stage_on_python_311_slim(stages):
    assert len(stages) >= 2
    assert stages[0].name == "builder"
    for stage in stages:
        assert stage.base == "python:3.11-slim", stage


def test_builder_builds_a_wheel_into_a_venv(stages):
    runs = " ".join(stages[0].of("RUN"))
    assert "pip wheel" in runs
    assert "python -m venv /opt/venv" in runs
    assert "[fast]" in runs, "install the `fast` extra (uvloop)"


def test_final_stage_copies_only_the_venv(final):
    copies = final.of("COPY") + final.of("ADD")
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_final_stage_has_no_build_tools(final):
    for op, args in final.instructions:
        assert not BUILD_TOOLS.search(args), f"{op} {args}"
        if op == "RUN":
            assert "apt-get install" not in args and "pip install" not in args, args


def test_final_stage_runs_as_non_root(final):
    users = final.of("USER")
    assert users, "final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"
    assert any("--uid 10001" in r for r in final.of("RUN"))


def test_ports_exposed(final):
    # gRPC only: /metrics binds loopback in the image unless asked (issue 18).
    exposed = {p for args in final.of("EXPOSE") for p in args.split()}
    assert exposed == {"50051"}


def test_entrypoint_is_the_console_command(final):
    (entry,) = final.of("ENTRYPOINT")
    assert exec_form(entry) == ["llm-extproc"]
    (cmd,) = final.of("CMD")
    # Every interface for gRPC (Envoy runs in another container or pod); /metrics
    # stays on the process default, loopback.
    assert exec_form(cmd) == [
        "serve",
        "--config",
        "/etc/llm-extproc/config.yaml",
        "--host",
        "0.0.0.0",
    ]
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert scripts["project"]["scripts"]["llm-extproc"] == "extproc.cli:main"


def test_image_tag_matches_project_version():
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    dep = yaml.safe_load((REPO_ROOT / "asm" / "deployment.yaml").read_text(encoding="utf-8"))
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"llm-extproc:{version}"


def healthcheck_command(final: Stage) -> list[str]:
    (hc,) = final.of("HEALTHCHECK")
    words = shlex.split(hc)
    idx = words.index("CMD")
    assert all(w.startswith("--") for w in words[:idx]), words[:idx]
    return exec_form(hc[hc.index("CMD") + 3 :].strip())


def test_healthcheck_uses_grpc_health(final):
    cmd = healthcheck_command(final)
    assert cmd[:2] == ["python", "-c"]
    assert "grpc_health.v1" in cmd[2] and "localhost:50051" in cmd[2]


@pytest.mark.parametrize("serving", [True, False], ids=["serving", "not-serving"])
def test_healthcheck_one_liner_against_live_server(final, serving):
    grpc = pytest.importorskip("grpc")
    health = pytest.importorskip("grpc_health.v1.health")
    health_pb2 = pytest.importorskip("grpc_health.v1.health_pb2")
    health_pb2_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    status = health_pb2.HealthCheckResponse
    servicer.set("", status.SERVING if serving else status.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        code = healthcheck_command(final)[2].replace("localhost:50051", f"127.0.0.1:{port}")
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
        )
    finally:
        server.stop(grace=None).wait(timeout=10)
    assert proc.returncode == (0 if serving else 1), proc.stderr


def test_dockerignore_is_an_allow_list():
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "extproc/"} <= allowed
    assert not allowed & {"tests/", "asm/", ".git/", "docs/"}
    assert "**/__pycache__" in lines


def test_every_module_the_package_imports_is_installed_in_the_image() -> None:
    """The image installs the wheel with the Dockerfile's extras only: every
    third-party module extproc/ imports (lazy imports too: redis for
    budgets.backend: redis) must come from those (issue 22)."""
    import ast
    import importlib.metadata as md

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = re.findall(r"\[([\w,]+)\]", DOCKERFILE.read_text().split("llm_extproc-*.whl", 1)[1])
    extras_used = {e for group in extras[:1] for e in group.split(",")}
    specs = list(project["dependencies"])
    for e in extras_used:
        specs += project["optional-dependencies"][e]

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    installed = {norm(re.split(r"[<>=!~\[; ]", s, maxsplit=1)[0]) for s in specs}
    dists = md.packages_distributions()
    stdlib = sys.stdlib_module_names
    missing: dict[str, str] = {}
    for path in (REPO_ROOT / "extproc").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top in stdlib or top in ("extproc", "__future__"):
                    continue
                # A namespace package (google, envoy) maps to several distributions.
                if not {norm(d) for d in dists.get(top, [])} & installed:
                    missing[n] = str(path.relative_to(REPO_ROOT))
    assert not missing, f"imported but not installed in the image: {missing}"
