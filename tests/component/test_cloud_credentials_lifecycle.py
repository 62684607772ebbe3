"""The server starts each cloud provider's credential refresher with the
config and closes it when the config is replaced or the server stops."""

from __future__ import annotations

import asyncio

import pytest

from extproc.cloud.auth import AwsSigV4Auth
from extproc.compiler.compile import compile_config
from extproc.config.loader import load_text
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server

CONFIG = """
providers:
- {name: br, type: bedrock, options: {region: us-east-1}}
routes:
- {name: r, match: {hosts: [a.test]}, provider: br}
"""


def _auth(server: Server) -> AwsSigV4Auth:
    auth = server.runtime.providers["br"].upstream_auth
    assert isinstance(auth, AwsSigV4Auth)
    return auth


async def test_chain_credentials_loaded_at_start_and_closed_on_reload_and_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # botocore's chain reads the process environment first.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLIFECYCLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lifecycle-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    opts = ServeOptions(host="127.0.0.1", port=0, grace_s=0.05, transport="grpcio")  # type: ignore[call-arg]
    server = Server(compile_config(load_text(CONFIG), {}), opts)
    await server.start()
    try:
        first = _auth(server)
        assert first.source.current().access_key == "AKIDLIFECYCLE"  # warm before serving
        assert first.source._task is not None and not first.source._task.done()
        await server.reload(compile_config(load_text(CONFIG), {}))
        second = _auth(server)
        assert second is not first and second.source.current().access_key == "AKIDLIFECYCLE"
        await asyncio.sleep(0.3)  # the grace period: the old config's refresher is closed
        assert first.source._task is None
        assert second.source._task is not None
    finally:
        await server.stop()
    assert second.source._task is None
