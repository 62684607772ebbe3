"""The llm-extproc command: help, check-config, serve lifecycle."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from extproc.cli import main
from harness import free_port, wait_healthy, wait_port

ROOT = Path(__file__).resolve().parents[2]


def serve_cmd(config: Path, port: int, transport: str, *extra: str) -> list[str]:
    """`llm-extproc serve` on 127.0.0.1:port with the given transport."""
    return [
        sys.executable,
        "-m",
        "extproc.cli",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metrics-port",
        "0",
        "--transport",
        transport,
        *extra,
    ]


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out and "check-config" in out and "ext_proc" in out


def test_check_config_ok_prints_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "c.yaml"
    f.write_text('hosts: ["a.com"]\napi_key: "sk-x"\ndeny_patterns: ["bad"]\n')
    assert main(["check-config", str(f)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "a.com" in out and "regex_guard" in out
    assert "sk-x" not in out


def test_check_config_errors_name_field_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(
        'hosts: ["a.com"]\napi_key: "sk-SECRET"\ndeny_patterns: ["("]\nintelligent_guard: {host: h}\n'
    )
    assert main(["check-config", str(f)]) == 1
    err = capsys.readouterr().err
    assert f"{f}.deny_patterns[0]" in err
    assert f"{f}.intelligent_guard.api_key: is required" in err
    assert "sk-SECRET" not in err


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read config file" in capsys.readouterr().err


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("hosts: [a.com]\nbogus: 1\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "extproc.cli",
            "serve",
            "--config",
            str(f),
            "--port",
            "0",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 1
    assert b"bogus" in p.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--unix-socket", "/tmp/x.sock", "--workers", "2"], "cannot be combined"),
        (["--host", ""], "nothing to listen on"),
        (["--transport", "nope"], "invalid choice"),
    ],
)
def test_serve_refuses_impossible_listen_options(
    tmp_path: Path, args: list[str], problem: str
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("hosts: [a.com]\napi_key: k\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "extproc.cli",
            "serve",
            "--config",
            str(f),
            "--metrics-port",
            "0",
            *args,
        ],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert p.returncode == 2
    assert problem.encode() in p.stderr


@pytest.mark.parametrize("transport", ["h2corn", "grpcio"])
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_drains_and_exits_zero_on_sigterm(
    tmp_path: Path, workers: int, transport: str
) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("hosts: [a.com]\napi_key: k\n")
    port = free_port()
    log = tmp_path / "serve.log"
    p = subprocess.Popen(
        serve_cmd(f, port, transport, "--workers", str(workers)),
        stderr=log.open("wb"),
        cwd=ROOT,
    )
    try:
        wait_port(port, proc=p)
        wait_healthy(port, proc=p)
        deadline = time.monotonic() + 30
        while log.read_text().count('"msg":"serving"') < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().count(f'"transport":"{transport}"') == workers
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        assert log.read_text().count('"msg":"stopped"') == workers
        assert "Traceback" not in log.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_the_deployment_and_image_arguments_parse() -> None:
    import yaml

    from extproc.cli import build_parser

    dep = yaml.safe_load((ROOT / "asm" / "deployment.yaml").read_text())
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.watch_config and args.port == 50051
    cmd = next(ln for ln in (ROOT / "Dockerfile").read_text().splitlines() if ln.startswith("CMD "))
    import json

    assert build_parser().parse_args(json.loads(cmd[4:])).config == "/etc/llm-extproc/config.yaml"


@pytest.mark.parametrize("transport", ["h2corn", "grpcio"])
def test_serve_says_so_when_the_port_is_taken(tmp_path: Path, transport: str) -> None:
    import socket

    f = tmp_path / "c.yaml"
    f.write_text("hosts: [a.com]\napi_key: k\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run(
            serve_cmd(f, port, transport),
            capture_output=True,
            timeout=60,
            cwd=ROOT,
        )
    assert p.returncode == 1
    assert b'"msg":"cannot serve"' in p.stderr and str(port).encode() in p.stderr
    assert b"Traceback" not in p.stderr
