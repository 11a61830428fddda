"""The test cluster's DNS: ``<service>.<namespace>.svc.cluster.local`` to the Service's ClusterIP.

Kubernetes' own DNS (CoreDNS) is not in Debian's kubernetes source, so the test cluster answers
the one question its pods ask, an A record for a Service, from the API (a cached GET of the
Service), and NXDOMAIN for anything else (the namespace reaches no other network). Queries for
other record types of a known name get an empty answer, so resolvers do not wait for AAAA.

    python tests/cluster/dns.py --listen 10.99.0.1 --kubeconfig admin.kubeconfig
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import struct
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DOMAIN = "svc.cluster.local"
TTL = 5


class Services:
    """ClusterIPs from the API, cached for :data:`TTL` seconds."""

    def __init__(self, kubeconfig: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server = cluster["server"]
        folder = Path(tempfile.mkdtemp(prefix="slipway-dns-"))
        for name, key in [("ca.crt", cluster), ("client.crt", user), ("client.key", user)]:
            field = {"ca.crt": "certificate-authority-data", "client.crt": "client-certificate-data"}.get(
                name, "client-key-data"
            )
            (folder / name).write_bytes(base64.b64decode(key[field]))
        self.context = ssl.create_default_context(cafile=str(folder / "ca.crt"))
        self.context.load_cert_chain(str(folder / "client.crt"), str(folder / "client.key"))
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
    parser.add_argument("--kubeconfig", required=True, type=Path)
    args = parser.parse_args()
    serve(args.listen, Services(args.kubeconfig))


if __name__ == "__main__":
    main()
