"""A headless Service on one machine: a tiny DNS server naming the processor replicas.

On Kubernetes the collector finds the processor replicas through a headless Service:
one DNS name with an A record per ready pod, all on the same port, and the core OTLP
exporter balances over them round robin (``dns:///b2c-processor-headless:4417``).
grpc-go has no resolver for a static list of ``host:port`` pairs (``ipv4:`` is
C-core's only), and the contrib load-balancing exporter is not served by the Go
module proxy, so the local multi-replica stack does what Kubernetes does: each
processor replica listens on an address of its own in 127.0.0.0/8 (Linux routes the
whole block to loopback) on the same port, and this server answers the name
:data:`PROCESSORS_NAME` with those addresses. The exporter is pointed at it with
grpc-go's DNS authority syntax, ``dns://127.0.0.1:<port>/<name>:<port>``.

Only what grpc-go's resolver asks is answered: ``A`` for the name (every address),
``AAAA`` and anything else for the name with no records, every other name (such as
the ``_grpc_config.`` TXT look-up) with NXDOMAIN. UDP only: the answers are far below
512 bytes.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Final

from b2c_monitoring.stack.base import Launch, Progress, StackLayout

PROCESSORS_NAME: Final = "processors.b2c.internal"
TTL_S: Final = 5
_TYPE_A: Final = 1
_CLASS_IN: Final = 1
_NXDOMAIN: Final = 3
_FORMERR: Final = 1


class DnsFormatError(ValueError):
    """A datagram that is not a DNS query we can read."""


def _question(packet: bytes) -> tuple[str, int, int, int]:
    """(name, qtype, qclass, offset past the question) of a query's first question."""
    if len(packet) < 12:
        raise DnsFormatError("shorter than a DNS header")
    labels: list[str] = []
    offset = 12
    while True:
        if offset >= len(packet):
            raise DnsFormatError("question runs past the datagram")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise DnsFormatError("compressed name in a question")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        raise DnsFormatError("question without type and class")
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    return ".".join(labels).lower(), qtype, qclass, offset + 4


def answer(query: bytes, name: str, addresses: Sequence[str]) -> bytes:
    """The response to ``query`` from a zone that holds ``name`` -> ``addresses``."""
    (ident, flags) = struct.unpack_from("!HH", query, 0) if len(query) >= 4 else (0, 0)
    recursion_desired = flags & 0x0100
    try:
        qname, qtype, qclass, end = _question(query)
    except DnsFormatError:
        return struct.pack("!HHHHHH", ident, 0x8000 | recursion_desired | _FORMERR, 0, 0, 0, 0)
    question = query[12:end]
    known = qname == name.lower().rstrip(".")
    records = b""
    count = 0
    if known and qtype == _TYPE_A and qclass == _CLASS_IN:
        for address in addresses:
            # 0xC00C: the name of the question, at offset 12
            records += struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, TTL_S, 4)
            records += ipaddress.IPv4Address(address).packed
            count += 1
    # QR, AA, RD as asked, RA
    rcode = 0 if known else _NXDOMAIN
    header = struct.pack(
        "!HHHHHH", ident, 0x8400 | recursion_desired | 0x0080 | rcode, 1, count, 0, 0
    )
    return header + question + records


def query(name: str, ident: int = 0x6232) -> bytes:
    """An A query for ``name`` (the health check's)."""
    encoded = b"".join(
        bytes([len(label)]) + label.encode("ascii") for label in name.split(".") if label
    )
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + encoded
        + b"\0"
        + struct.pack("!HH", _TYPE_A, _CLASS_IN)
    )


def answered_addresses(response: bytes) -> list[str]:
    """The A records of a response of :func:`answer` (a test and health-check reader)."""
    _, _, _, end = _question(response)
    count = struct.unpack_from("!H", response, 6)[0]
    found = []
    offset = end
    for _ in range(count):
        _, rtype, _, _, length = struct.unpack_from("!HHHIH", response, offset)
        offset += 12
        if rtype == _TYPE_A and length == 4:
            found.append(str(ipaddress.IPv4Address(response[offset : offset + 4])))
        offset += length
    return found


def serve(host: str, port: int, name: str, addresses: Sequence[str]) -> None:
    """Answer on ``host:port`` (UDP) until killed."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))
        while True:
            packet, peer = sock.recvfrom(4096)
            sock.sendto(answer(packet, name, addresses), peer)


def resolve(host: str, port: int, name: str, timeout: float = 1.0) -> list[str]:
    """Ask the server on ``host:port`` for ``name``'s addresses; [] when it does not answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query(name), (host, port))
            return answered_addresses(sock.recvfrom(4096)[0])
        except (OSError, DnsFormatError, struct.error):
            return []


class ProcessorDns:
    """The stack part: the name of the processor replicas, on 127.0.0.1:``ports.processor_dns``."""

    name = "dns"

    def __init__(self, layout: StackLayout, addresses: Sequence[str]) -> None:
        self.layout = layout
        self.addresses = list(addresses)

    @property
    def port(self) -> int:
        return self.layout.ports.processor_dns

    def install(self, progress: Progress) -> None:
        """Nothing: the standard library answers."""

    def prepare(self) -> Launch:
        argv = [sys.executable, "-m", "b2c_monitoring.stack.dns", "--port", str(self.port)]
        for address in self.addresses:
            argv += ["--address", address]
        return Launch(argv=argv)

    def healthy(self) -> bool:
        return resolve("127.0.0.1", self.port, PROCESSORS_NAME) == self.addresses

    def endpoints(self) -> dict[str, str]:
        return {"dns": f"udp://127.0.0.1:{self.port} ({PROCESSORS_NAME})"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DNS for the local processor replicas")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default=PROCESSORS_NAME)
    parser.add_argument("--address", action="append", required=True)
    args = parser.parse_args(argv)
    serve("127.0.0.1", args.port, args.name, args.address)


if __name__ == "__main__":
    main()
