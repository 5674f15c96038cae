"""The seeds' demo: the classic echo server on 127.0.0.1:9502 and a client that plays
the sessions of captures/make_captures.py on that one address, while it is sniffed.

Sessions, in order: a connection refused (before the server listens), a normal close by
the client, a close by the server first, a half-close, an abort with RST, and a burst
of clients that overflows the server's listen backlog of 1 (their SYNs are dropped and
retransmitted until the server accepts again).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from ..sample import NAME

HOST, PORT = "127.0.0.1", 9502
BURST = 6
BURST_HOLD = 1.5  # seconds the server stops accepting: past the first SYN retransmit
TIMEOUT = 10.0

# The capture the demo replays without capture privileges: package data, so it is there
# after any install (captures/echo-lo.pcap in the source tree is a link to it).
BUNDLED_NAME = NAME


def bundled() -> Traversable:
    """The bundled capture (a resource of the installed package; see bundled_path)."""
    return resources.files("analyzer") / "data" / BUNDLED_NAME


@contextmanager
def bundled_path() -> Iterator[Path]:
    """The bundled capture as a file on disk for as long as the block runs (a temporary
    copy when the package is installed inside a zip)."""
    with resources.as_file(bundled()) as path:
        if not path.is_file():
            from .errors import CaptureStartError

            raise CaptureStartError(f"the bundled capture {BUNDLED_NAME} is missing from "
                                    "this installation of handshake-analyzer (reinstall it)")
        yield path


class EchoServer:
    """Echo server whose first line from a client names how to end the session."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, PORT))
        self.sock.listen(1)  # a small backlog, so the burst overflows it
        self.accepting = threading.Event()
        self.accepting.set()
        self.closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        self.sock.settimeout(0.05)  # so a pause takes effect between two accepts
        while not self.closed:
            if not self.accepting.wait(0.05):
                continue
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(TIMEOUT)
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.sock.close()


def _serve(conn: socket.socket) -> None:
    with conn:
        try:
            data = conn.recv(4096)
            mode = data.split(b"\n", 1)[0]
            conn.sendall(data)
            if mode == b"serverclose":
                return  # the server closes first
            if mode == b"halfclose":
                while conn.recv(4096):
                    pass
                for i in range(3):  # data after the client's FIN
                    conn.sendall(b"late reply %d\n" % i)
                    time.sleep(0.05)
                return
            while more := conn.recv(4096):
                conn.sendall(more)
            time.sleep(0.25)  # past the delayed ACK: the ACK of the FIN goes out alone
        except (ConnectionResetError, TimeoutError):
            return


def _client(mode: str) -> None:
    sock = socket.create_connection((HOST, PORT), timeout=TIMEOUT)
    sock.sendall(mode.encode() + b"\n")
    sock.recv(4096)
    if mode == "serverclose":
        while sock.recv(4096):
            pass
    elif mode == "halfclose":
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(4096):
            pass
    elif mode == "rst":
        sock.sendall(b"never read\n")
        time.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _refused() -> None:
    try:
        socket.create_connection((HOST, PORT), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        pass


def _burst(server: EchoServer) -> None:
    server.accepting.clear()
    time.sleep(0.1)  # the accept loop is parked before the clients connect
    clients = [threading.Thread(target=_client, args=("normal",)) for _ in range(BURST)]
    for client in clients:
        client.start()
        time.sleep(0.03)
    time.sleep(BURST_HOLD)
    server.accepting.set()
    for client in clients:
        client.join(3 * TIMEOUT)


def run_sessions(say: Callable[[str], None] = lambda _: None, gap: float = 0.4) -> None:
    """Play every session once against a fresh server on 127.0.0.1:9502."""
    say("connection refused (nothing listens yet)")
    _refused()
    time.sleep(gap)
    server = EchoServer()
    try:
        for mode, text in (("normal", "normal close by the client"),
                           ("serverclose", "the server closes first"),
                           ("halfclose", "half-close: the server keeps sending"),
                           ("rst", "abort with RST")):
            say(text)
            _client(mode)
            time.sleep(gap)
        say(f"{BURST} clients at once against a listen backlog of 1")
        _burst(server)
        time.sleep(gap)
    finally:
        server.close()
