"""The `llm-extproc` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_file
from extproc.config.runtime import Runtime
from extproc.serving.options import ServeOptions
from extproc.transport import DEFAULT_TRANSPORT, TRANSPORTS, ListenError
from extproc.transport.base import DEFAULT_MAX_MESSAGE_BYTES

log = logging.getLogger("extproc.cli")


def _load(path: str) -> Runtime:
    return compile_config(load_file(path))


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        rt = _load(args.config)
    except ConfigError as e:
        print(f"{args.config}: invalid config", file=sys.stderr)
        for path, msg in e.problems:
            print(f"  {path}: {msg}", file=sys.stderr)
        return 1
    routes = rt.routes.routes
    print(
        f"{args.config}: OK ({len(routes)} route(s), {len(rt.providers)} provider(s), {len(rt.consumers)} consumer(s))"
    )
    for r in routes:
        hosts = ", ".join([*r.hosts, *("*" + s for s in r.host_suffixes)]) or "*"
        procs = ", ".join(p.name for p in r.processors) or "none"
        provs = ", ".join(p.name for p in r.providers)
        print(
            f"  route {r.name}: hosts [{hosts}] prefix {r.path_prefix or '/'} -> {provs}; processors: {procs}"
        )
    return 0


def cmd_envoy_fallback(args: argparse.Namespace) -> int:
    import yaml

    from extproc.envoy_fallback import fallback_resources

    try:
        rt = _load(args.config)
    except ConfigError as e:
        print(f"{args.config}: invalid config", file=sys.stderr)
        for path, msg in e.problems:
            print(f"  {path}: {msg}", file=sys.stderr)
        return 1
    upstream = None
    if args.upstream:
        host, _, port = args.upstream.rpartition(":")
        if not host or not port.isdigit():
            print(f"--upstream {args.upstream!r}: expected HOST:PORT", file=sys.stderr)
            return 2
        upstream = (host, int(port))
    out = fallback_resources(rt, args.extproc_cluster, upstream, args.extproc_authority)
    if not out:
        print(f"{args.config}: no route has fallback or retry", file=sys.stderr)
        return 1
    print(yaml.safe_dump(out, sort_keys=False, width=100, default_flow_style=None), end="")
    return 0


def _serve_options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host,
        port=args.port,
        unix_socket=args.unix_socket,
        grace_s=args.grace,
        workers=args.workers,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        transport=args.transport,
        max_message_bytes=args.max_message_bytes,
    )


def _usage_problem(args: argparse.Namespace) -> str:
    if not (args.host and args.port >= 0) and not args.unix_socket:
        return "nothing to listen on: give --host and --port, or --unix-socket"
    if args.workers > 1 and args.unix_socket:
        # Only TCP ports can be shared between processes (SO_REUSEPORT).
        return "--unix-socket cannot be combined with --workers > 1"
    if args.workers < 1 or args.max_message_bytes < 1:
        return "--workers and --max-message-bytes must be at least 1"
    return ""


def _load_or_log(path: str) -> Runtime | None:
    try:
        return _load(path)
    except ConfigError as e:
        log.error(
            "invalid config", extra={"fields": {"problems": [f"{p}: {m}" for p, m in e.problems]}}
        )
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    from extproc.observability.logs import setup_logging
    from extproc.serving.supervise import install_uvloop, serve_forever
    from extproc.serving.workers import run_workers

    setup_logging(args.log_level)
    if problem := _usage_problem(args):
        log.error(problem)
        return 2
    # In the parent of --workers too: a bad config fails fast and loudly.
    runtime = _load_or_log(args.config)
    if runtime is None:
        return 1
    if args.workers > 1 and not args.worker:
        return run_workers(
            args.workers, [*args.argv, "--worker"], args.metrics_host, args.metrics_port
        )
    if not args.no_uvloop:
        install_uvloop()
    try:
        asyncio.run(
            serve_forever(
                runtime,
                _serve_options(args),
                load=lambda: _load(args.config),
                watch=args.config if args.watch_config else "",
                watch_interval_s=args.watch_interval,
            )
        )
    except ListenError as e:
        log.error("cannot serve", extra={"fields": {"error": str(e)}})
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llm-extproc",
        description="An LLM gateway inside Envoy's data path: an ext_proc gRPC service that "
        "routes, checks and rewrites LLM API traffic.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "serve", help="run the ext_proc gRPC server", description="Run the ext_proc gRPC server."
    )
    s.add_argument(
        "--config",
        "-c",
        required=True,
        help="config file (YAML/JSON; plugin, native or ASM documents)",
    )
    # Loopback by default: anyone who reaches the gRPC port can have requests
    # processed (and /metrics names routes and consumers); exposing either is a
    # deliberate choice (the image and asm/deployment.yaml make it, with policies).
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="TCP address to listen on (default 127.0.0.1; 0.0.0.0 for every interface; '' for none)",
    )
    s.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the /metrics endpoint (default 127.0.0.1)",
    )
    s.add_argument("--port", type=int, default=50051, help="gRPC port (default 50051)")
    s.add_argument("--unix-socket", default="", help="also listen on this unix socket path")
    s.add_argument(
        "--metrics-port",
        type=int,
        default=9464,
        help="Prometheus /metrics port (default 9464; 0 disables)",
    )
    s.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1)"
    )
    s.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds in-flight streams get on shutdown (default 10)",
    )
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    s.add_argument(
        "--watch-config",
        action="store_true",
        help="reload the config when the file changes (SIGHUP always reloads); "
        "an invalid new config is logged and the old one kept",
    )
    s.add_argument(
        "--watch-interval", type=float, default=2.0, help="seconds between file checks (default 2)"
    )
    s.add_argument(
        "--transport",
        choices=list(TRANSPORTS),
        default=DEFAULT_TRANSPORT,
        help="gRPC server: h2corn (default; a fraction of grpc.aio's cost per stream) "
        "or grpcio (grpc.aio)",
    )
    s.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest ext_proc message accepted, e.g. a buffered body "
        f"(default {DEFAULT_MAX_MESSAGE_BYTES}); larger ones fail the stream "
        "with RESOURCE_EXHAUSTED",
    )
    s.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    c = sub.add_parser(
        "check-config",
        help="validate a config file and print what it defines",
        description="Validate a config file; errors name the field path.",
    )
    c.add_argument("config", help="config file")
    c.set_defaults(func=cmd_check_config)
    _add_envoy_fallback(sub)
    return p


def _add_envoy_fallback(sub: Any) -> None:
    f = sub.add_parser(
        "envoy-fallback",
        help="print the Envoy virtual host and clusters the config's fallback routes need",
        description="Print, as YAML, the Envoy virtual host (add it to the listener's "
        "route_config) and the provider clusters (add them to clusters) that carry out "
        "the config's fallback and retry routes.",
    )
    f.add_argument("config", help="config file")
    f.add_argument(
        "--extproc-cluster",
        default="llm_extproc",
        help="the Envoy cluster of this gRPC service (default llm_extproc)",
    )
    f.add_argument(
        "--extproc-authority",
        default="",
        help="the :authority of its gRPC calls (in Istio: the Service's host name)",
    )
    f.add_argument(
        "--upstream",
        default="",
        help="HOST:PORT every provider cluster points at, in plain HTTP (tests, demos)",
    )
    f.set_defaults(func=cmd_envoy_fallback)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # the workers of `serve --workers N` get the same arguments
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
