"""Echo server and scripted clients, run inside test network namespaces.

    python3 netns_peer.py server ADDR PORT
    python3 netns_peer.py client ADDR PORT SCENARIO   -> prints the client's local port

The first line a client sends names its scenario, so the server knows how to end it.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time


def serve_one(conn: socket.socket) -> None:
    with conn:
        data = conn.recv(1024)
        mode = data.split(b"\n", 1)[0]
        conn.sendall(data)
        if mode == b"serverclose":
            time.sleep(0.05)
            return  # the server closes first
        if mode == b"halfclose":
            while conn.recv(1024):  # until the client's FIN
                pass
            for i in range(3):  # data after the peer's FIN: a half-close
                conn.sendall(b"late data %d\n" % i)
                time.sleep(0.02)
            return
        while True:  # normal and rst: wait for the client to end it
            try:
                more = conn.recv(1024)
            except ConnectionResetError:
                return
            if not more:
                time.sleep(0.05)  # let the ACK of the FIN go out alone first
                return
            conn.sendall(more)


def server(addr: str, port: int) -> None:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((addr, port))
    lsock.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve_one, args=(conn,), daemon=True).start()


def client(addr: str, port: int, scenario: str) -> None:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind(("", 0))
    print(sock.getsockname()[1], flush=True)
    try:
        sock.connect((addr, port))
    except ConnectionRefusedError:
        return
    sock.sendall(scenario.encode() + b"\n")
    sock.recv(1024)
    if scenario == "normal":
        time.sleep(0.05)
        sock.close()
    elif scenario == "serverclose":
        while sock.recv(1024):
            pass
        time.sleep(0.05)
        sock.close()
    elif scenario == "halfclose":
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(1024):
            pass
        sock.close()
    elif scenario == "rst":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], int(sys.argv[3]))
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
