"""Ports of a part a test starts beside the test stack: the first offset whose ports
are all free on loopback."""

from __future__ import annotations

import socket

from b2c_monitoring.stack.base import Ports


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(offsets: range, *names: str) -> Ports:
    """The first ``Ports(offset)`` of ``offsets`` whose ports ``names`` (attributes of
    Ports: ``otlp_grpc``, ``api``, ...) can all be bound."""
    for offset in offsets:
        ports = Ports(offset)
        if all(_bindable(getattr(ports, name)) for name in names):
            return ports
    raise AssertionError("no free port offset on loopback")
