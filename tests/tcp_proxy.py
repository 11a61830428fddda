"""A TCP proxy: ``python tests/tcp_proxy.py LISTEN_PORT TARGET_PORT``, on 127.0.0.1.

Stands for a service's endpoint that can go down and come back while the service keeps its
state: kill the proxy (its process group) and the endpoint refuses connections; start it again
on the same port and it answers, with the service behind it unchanged.
"""

from __future__ import annotations

import socket
import sys
import threading


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(listen: int, target: int) -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen))
    server.listen(64)
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
