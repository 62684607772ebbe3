import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import default_transport, free_port, stop, wait_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def pytest_report_header() -> str:
    # Every Stack runs our server with --transport from $LLM_EXTPROC_TRANSPORT;
    # test/all.sh runs this directory once per transport.
    return f"llm-extproc e2e transport: {default_transport()}"


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None
    )
    if found:
        return found
    msg = "redis-server is not installed (apt-get install -y redis-server)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(msg + "; CI must have it")
    pytest.skip(msg)


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    binary = redis_server_binary()
    port = free_port()
    tmp = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc=proc)
        yield port
    finally:
        stop(proc)
