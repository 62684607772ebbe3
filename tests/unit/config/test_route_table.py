"""Host matching: port-less entries match any port, host:port only that port."""

from __future__ import annotations

import pytest

from extproc.compiler.compile import compile_config
from extproc.config.errors import ConfigError
from extproc.config.loader import load_text
from extproc.config.runtime import RouteTable, canonical_host, split_host

CONFIG = """
providers: [{name: p, type: qwen, api_tokens: [k]}]
routes:
- {name: any-port, match: {hosts: [test.com, "[::1]"]}, provider: p}
- {name: one-port, match: {hosts: ["only.com:9000", "TEST.com:18000"]}, provider: p}
- {name: wild, match: {hosts: ["*.wild.com"]}, provider: p}
"""


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return compile_config(load_text(CONFIG), {}).routes


def name_of(table: RouteTable, authority: str) -> str | None:
    r = table.match(authority, "/", {})
    return r.name if r else None


@pytest.mark.parametrize(
    ("authority", "route"),
    [
        ("test.com", "any-port"),
        ("test.com:18000", "any-port"),  # declared first, though one-port lists :18000
        ("test.com:80", "any-port"),
        ("TEST.COM:8080", "any-port"),
        ("test.com.", "any-port"),
        ("Test.Com.:443", "any-port"),
        ("[::1]", "any-port"),
        ("[::1]:18000", "any-port"),
        ("only.com:9000", "one-port"),
        ("ONLY.com:9000", "one-port"),
        ("a.wild.com", "wild"),
        ("a.b.wild.com:8443", "wild"),
    ],
)
def test_matches(table: RouteTable, authority: str, route: str) -> None:
    assert name_of(table, authority) == route


@pytest.mark.parametrize(
    "authority",
    [
        "only.com",
        "only.com:9001",
        "only.com:80",
        "wild.com",
        "xtest.com",
        "test.com.evil",
        "::1",
        "",
    ],
)
def test_does_not_match(table: RouteTable, authority: str) -> None:
    assert name_of(table, authority) is None


def test_port_specific_entry_wins_only_by_order() -> None:
    rt = compile_config(
        load_text(
            "providers: [{name: p, type: qwen, api_tokens: [k]}]\n"
            "routes:\n"
            "- {name: a, match: {hosts: ['h.com:1']}, provider: p}\n"
            "- {name: b, match: {hosts: [h.com]}, provider: p}\n"
        ),
        {},
    ).routes
    assert name_of(rt, "h.com:1") == "a"
    assert name_of(rt, "h.com:2") == "b"
    assert name_of(rt, "h.com") == "b"


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("a.com", ("a.com", "")),
        ("a.com:80", ("a.com", "80")),
        ("a.com.:80", ("a.com", "80")),
        ("[::1]:80", ("[::1]", "80")),
        ("[::1]", ("[::1]", "")),
        ("::1", ("::1", "")),
        ("", ("", "")),
    ],
)
def test_split_host(authority: str, expected: tuple[str, str]) -> None:
    assert split_host(authority) == expected


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("a.com:x", "port must be a number"),
        ("a.com:0", "port must be a number"),
        ("a.com:65536", "port must be a number"),
        ("*.a.com:80", "drop the port"),
        ("a.*.com", "leading '*.' wildcard"),
        ("*a.com", "leading '*.' wildcard"),
    ],
)
def test_bad_entries_are_config_errors(entry: str, problem: str) -> None:
    assert problem in canonical_host(entry)[1]
    with pytest.raises(ConfigError) as e:
        compile_config(
            load_text(
                "providers: [{name: p, type: qwen, api_tokens: [k]}]\n"
                f"routes: [{{name: r, match: {{hosts: ['{entry}']}}, provider: p}}]\n",
                "cfg",
            ),
            {},
        )
    ((path, msg),) = e.value.problems
    assert path == "routes[0].match.hosts[0]" and problem in msg


def test_plugin_host_errors_point_at_the_plugin_field() -> None:
    with pytest.raises(ConfigError) as e:
        compile_config(load_text("hosts: [a.com, 'b.com:99999']\napi_key: k\n", "cfg"), {})
    ((path, msg),) = e.value.problems
    assert path == "cfg.hosts[1]" and "port" in msg
