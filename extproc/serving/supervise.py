"""One serving process's supervision: signals, config reload, file watch."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from extproc.config.errors import ConfigError
from extproc.config.runtime import Runtime
from extproc.serving.options import ServeOptions
from extproc.serving.server import Server

log = logging.getLogger("extproc.server")


async def serve_forever(
    runtime: Runtime,
    opts: ServeOptions,
    on_start: Callable[[Server], None] | None = None,
    load: Callable[[], Runtime] | None = None,
    watch: str = "",
    watch_interval_s: float = 2.0,
) -> None:
    """Serve until SIGTERM/SIGINT. With `load`, SIGHUP reloads the config, and
    so does a change of the file `watch` (polled; a Kubernetes ConfigMap
    update swaps a symlink, which inotify on the file would miss)."""
    server = Server(runtime, opts)
    await server.start()
    if on_start is not None:
        on_start(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    if load is not None:
        reloads: asyncio.Queue[str] = asyncio.Queue()
        loop.add_signal_handler(signal.SIGHUP, reloads.put_nowait, "SIGHUP")
        tasks.append(loop.create_task(_reloader(server, load, reloads)))
        if watch:
            tasks.append(loop.create_task(_watch(watch, watch_interval_s, reloads)))
    await stop.wait()
    log.info("signal received; draining")
    for t in tasks:
        t.cancel()
    await server.stop()


async def _reloader(
    server: Server, load: Callable[[], Runtime], reloads: asyncio.Queue[str]
) -> None:
    """Reload on each trigger, forever: no failure to load, compile or start a
    config may end this task (later SIGHUPs and file changes would then be
    ignored in silence), and each one leaves the running generation serving."""
    while True:
        why = await reloads.get()
        try:
            runtime = await asyncio.to_thread(load)
        except ConfigError as e:
            _reload_failed(server, why, [f"{p}: {m}" for p, m in e.problems])
            continue
        except Exception as e:  # ValueError, RecursionError, OSError, ...: a bug or a hostile file
            _reload_failed(server, why, [_cause(e)])
            continue
        try:
            await server.reload(runtime)
        except Exception as e:  # a processor that cannot start, ...
            _reload_failed(server, why, [_cause(e)])
            continue
        server.metrics.reloads.labels("ok").inc()


def _cause(e: BaseException) -> str:
    # Type and message; no traceback (its locals could hold a config's secrets).
    return f"{type(e).__name__}: {e}"[:500]


def _reload_failed(server: Server, why: str, problems: list[str]) -> None:
    server.metrics.reloads.labels("error").inc()
    log.error(
        "config reload failed; still serving the previous config",
        extra={"fields": {"trigger": why, "problems": problems}},
    )


def _stamp(path: str) -> tuple[float, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime, st.st_size, st.st_ino)


async def _watch(path: str, interval_s: float, reloads: asyncio.Queue[str]) -> None:
    last = _stamp(path)
    while True:
        await asyncio.sleep(interval_s)
        now = _stamp(path)
        if now is not None and now != last:
            last = now
            reloads.put_nowait("file changed")


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    uvloop.install()
    return True
