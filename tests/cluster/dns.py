"""The test cluster's DNS: ``<service>.<namespace>.svc.cluster.local`` to the Service's ClusterIP.

Kubernetes' own DNS (CoreDNS) is not in Debian's kubernetes source, so the test cluster answers
the one question its pods ask, an A record for a Service, from the API (a cached GET of the
Service), and NXDOMAIN for anything else (the namespace reaches no other network). Queries for
other record types of a known name get an empty answer, so resolvers do not wait for AAAA.

    python tests/cluster/dns.py --listen 10.99.0.1 --server https://127.0.0.1:6443 --pki RUN/pki
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

DOMAIN = "svc.cluster.local"
TTL = 5


class Services:
    """ClusterIPs from the API, cached for :data:`TTL` seconds."""

    def __init__(self, server: str, pki: Path) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.cache: dict[tuple[str, str], tuple[float, str | None]] = {}

    def cluster_ip(self, name: str, namespace: str) -> str | None:
        cached = self.cache.get((name, namespace))
        if cached and time.monotonic() - cached[0] < TTL:
            return cached[1]
        url = f"{self.server}/api/v1/namespaces/{namespace}/services/{name}"
        try:
            with urllib.request.urlopen(url, context=self.context, timeout=3) as response:
                ip = json.load(response)["spec"].get("clusterIP")
        except urllib.error.HTTPError:
            ip = None
        ip = None if ip in (None, "", "None") else ip
        self.cache[(name, namespace)] = (time.monotonic(), ip)
        return ip


def _question(packet: bytes) -> tuple[str, int, int]:
    """The first question's name, type, and the offset where it ends."""
    labels, i = [], 12
    while packet[i]:
        length = packet[i]
        labels.append(packet[i + 1 : i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5


def answer(packet: bytes, services: Services) -> bytes:
    ident, flags = struct.unpack("!HH", packet[:4])
    name, qtype, end = _question(packet)
    question = packet[12:end]
    parts = name.split(".")
    ip = None
    if name.endswith("." + DOMAIN) and len(parts) == 5:
        ip = services.cluster_ip(parts[0], parts[1])
    rcode = 0 if ip else 3  # NXDOMAIN
    records = b""
    if ip and qtype == 1:
        records = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, TTL, 4) + socket.inet_aton(ip)
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100) | rcode, 1, 1 if records else 0, 0, 0)
    return header + question + records


def serve(listen: str, services: Services) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            sock.sendto(answer(packet, services), peer)
        except (IndexError, struct.error, OSError):
            continue  # a malformed query gets no answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--server", required=True, help="the API's URL")
    parser.add_argument("--pki", required=True, type=Path, help="folder with ca.crt, admin.crt and admin.key")
    args = parser.parse_args()
    serve(args.listen, Services(args.server, args.pki))


if __name__ == "__main__":
    main()
