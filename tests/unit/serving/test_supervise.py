"""The reloader: a config that fails in any way leaves the old one serving
and the reloader alive for the next trigger."""

from __future__ import annotations

import asyncio
import logging

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.runtime import Runtime
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server
from extproc.serving.supervise import _reloader

CONFIG = 'hosts: ["api.test"]\napi_key: "sk-one"\n'


def runtime(text: str = CONFIG) -> Runtime:
    return compile_config(load_text(text))


def deep_yaml(depth: int) -> str:
    return "hosts: " + "[" * depth + "]" * depth + "\n"


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "bad",
    [
        # A ValueError from deep in a library (urllib's IPv6 check).
        'providers: [{name: v, type: vllm, base_url: "http://[::1"}]\nroutes: [{name: r, provider: v}]\n',
        deep_yaml(5000),  # RecursionError (or a ConfigError): never the end of the reloader
        "hosts: [api.test]\nbogus_field: 1\n",  # a ConfigError
    ],
    ids=["value-error", "deep-yaml", "config-error"],
)
async def test_a_failed_reload_keeps_the_old_config_and_the_reloader(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(runtime(), ServeOptions(host="127.0.0.1", port=0, grace_s=0.1))
    await server.start()
    texts = [bad, 'hosts: ["api.test"]\napi_key: "sk-two"\n']
    reloads: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(_reloader(server, lambda: runtime(texts.pop(0)), reloads))
    try:
        first = server.generation
        with caplog.at_level(logging.ERROR, logger="extproc.server"):
            reloads.put_nowait("SIGHUP")
            await until(lambda: any("reload failed" in r.message for r in caplog.records))
        assert server.generation is first  # the old config still serves
        assert not task.done()
        (rec,) = [r for r in caplog.records if "reload failed" in r.message]
        problems = rec.fields["problems"]  # type: ignore[attr-defined]
        assert problems and all(p for p in problems)  # the cause is named
        reloads.put_nowait("SIGHUP")  # the next trigger still reloads
        await until(lambda: server.generation is not first)
        assert not task.done()
    finally:
        task.cancel()
        await server.stop()


async def test_the_bad_configs_do_fail_to_load() -> None:
    # Guard against the cases above passing because the config loaded.
    with pytest.raises(ValueError):
        runtime(
            'providers: [{name: v, type: vllm, base_url: "http://[::1"}]\nroutes: [{name: r, provider: v}]\n'
        )
    with pytest.raises((RecursionError, ConfigError)):
        runtime(deep_yaml(5000))


async def test_a_processor_that_cannot_start_leaves_the_old_config(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server(runtime(), ServeOptions(host="127.0.0.1", port=0, grace_s=0.1))
    await server.start()
    new = runtime('hosts: ["api.test"]\napi_key: "sk-two"\ndeny_patterns: ["x"]\n')
    (proc,) = [p for r in new.routes.routes for p in r.processors][:1]

    async def broken_start() -> None:
        raise OSError("no route to the guard")

    monkeypatch.setattr(proc, "start", broken_start, raising=False)
    reloads: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(_reloader(server, lambda: new, reloads))
    try:
        first = server.generation
        with caplog.at_level(logging.ERROR, logger="extproc.server"):
            reloads.put_nowait("SIGHUP")
            await until(lambda: any("reload failed" in r.message for r in caplog.records))
        assert server.generation is first and not task.done()
        assert "no route to the guard" in str(caplog.records[-1].fields)  # type: ignore[attr-defined]
    finally:
        task.cancel()
        await server.stop()
