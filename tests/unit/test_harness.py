"""The e2e harness's own guarantees."""

from __future__ import annotations

from harness import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    # 5000 draws from ~28k ephemeral ports: the kernel alone repeats some
    # (birthday bound), which once gave a stack's metrics endpoint and its
    # gRPC server the same port in CI.
    ports = [free_port() for _ in range(5000)]
    assert len(set(ports)) == len(ports)
