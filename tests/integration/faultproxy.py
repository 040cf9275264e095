"""A loopback TCP proxy that a test puts between the operator and the API server, to break its connections.

The operator's kubeconfig points at the proxy (TLS passes through untouched: the API server's certificate is
valid for 127.0.0.1 on any port). The test can then

* ``sever()``: reset every open connection at once (watch streams and pooled API connections alike), as when
  a load balancer or NAT in between forgets them;
* ``stall(seconds)``: forward nothing, either way, on old or new connections, for a while, then carry on with
  what was buffered, as in a short network partition that heals before TCP gives up.

Threads, not asyncio: the test itself is synchronous and the proxy must keep running while it sleeps.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

_CHUNK = 65536


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self.accepted = 0
        self.severed = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)
        self._acceptor.start()

    # ------------------------------------------------------------------------------------------ faults

    def sever(self) -> int:
        """Reset every open connection (RST, not FIN: the client sees an error, not a clean end)."""
        with self._lock:
            victims = list(self._connections)
            self._connections.clear()
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
        self.severed += len(victims) // 2
        return len(victims) // 2

    def stall(self, seconds: float) -> None:
        """Forward nothing for ``seconds`` (the caller blocks meanwhile), then let buffered bytes through."""
        self._flowing.clear()
        try:
            time.sleep(seconds)
        finally:
            self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.sever()

    # ------------------------------------------------------------------------------------------ plumbing

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(
                target=self._connect, args=(client,), name="faultproxy-conn", daemon=True
            ).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()  # a partition holds new connections too
        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._connections.update((client, upstream))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(
                target=self._pump, args=(source, sink), name="faultproxy-pump", daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                readable, _, _ = select.select([source], [], [], 0.2)
                if not readable:
                    if source.fileno() < 0:
                        return
                    continue
                self._flowing.wait()
                data = source.recv(_CHUNK)
                if not data:
                    break
                self._flowing.wait()
                sink.sendall(data)
        except (OSError, ValueError):
            pass  # severed, or the other direction closed both
        finally:
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


def proxied_kubeconfig(kubeconfig: Path, proxy: TcpProxy, path: Path) -> Path:
    """A copy of ``kubeconfig`` whose server is the proxy; credentials and CA unchanged."""
    config = json.loads(kubeconfig.read_text())  # hack/local-cluster writes JSON
    for entry in config["clusters"]:
        url = urlsplit(entry["cluster"]["server"])
        entry["cluster"]["server"] = f"{url.scheme}://127.0.0.1:{proxy.port}"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def upstream_of(kubeconfig: Path) -> tuple[str, int]:
    url = urlsplit(json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    assert url.hostname == "127.0.0.1" and url.port, f"not a local API server: {url.geturl()}"
    return url.hostname, url.port
