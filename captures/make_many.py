#!/usr/bin/env python3
"""Make ``many-clients.pcap``: many concurrent echo clients on loopback.

Run as root from the repository root::

    python3 captures/make_many.py [--out DIR] [--clients 160] [--seed 6]

``tcpdump -i lo`` records ports 9504 (an echo server) and 9505 (nothing listens)
while a pool of client threads, with random start times and message sizes, each opens
one connection to 127.0.0.1 and ends it in one of these ways (seeded, so the mix is the
same on every run; ports, ISNs and timings are not):

* ``client_close``: send, read the echo, close (the client ends in TIME_WAIT);
* ``server_close``: send ``bye``, the server echoes and closes first;
* ``abort``: send, leave the echo unread, close with SO_LINGER(on, 0) -> RST;
* ``refused``: connect to port 9505 -> RST/ACK.

The mix goes to ``many-clients.json`` (per client port: its intended ending).
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ADDR = "127.0.0.1"
ECHO_PORT = 9504
REFUSED_PORT = 9505
BPF = f"tcp port {ECHO_PORT} or tcp port {REFUSED_PORT}"
ENDINGS = ("client_close", "server_close", "abort", "refused")
WEIGHTS = (70, 15, 10, 5)


def serve(lsock: socket.socket) -> None:
    """Echo every connection in its own thread; ``bye`` makes the server close first."""
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def echo(conn: socket.socket) -> None:
    with conn:
        try:
            while data := conn.recv(65536):
                conn.sendall(data)
                if data.endswith(b"bye"):
                    return  # close first: the client sees EOF
        except OSError:
            pass  # the client aborted


def client(ending: str, size: int, delay: float) -> int:
    time.sleep(delay)
    sock = socket.socket()
    sock.settimeout(10)
    try:
        if ending == "refused":
            sock.bind((ADDR, 0))
            port = sock.getsockname()[1]
            try:
                sock.connect((ADDR, REFUSED_PORT))
            except ConnectionRefusedError:
                pass
            return port
        sock.connect((ADDR, ECHO_PORT))
        port = sock.getsockname()[1]
        message = bytes(random.getrandbits(8) for _ in range(size))
        if ending == "server_close":
            message += b"bye"
        sock.sendall(message)
        if ending == "abort":
            time.sleep(0.05)  # the echo arrives and stays unread
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return port
        got = 0
        while got < len(message):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        if ending == "server_close":
            sock.recv(1)  # EOF
        return port
    finally:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent))
    parser.add_argument("--clients", type=int, default=160)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    out = Path(args.out)
    pcap = out / "many-clients.pcap"
    rng = random.Random(args.seed)
    plan = [(rng.choices(ENDINGS, WEIGHTS)[0], rng.randint(1, 1200), rng.uniform(0, 3))
            for _ in range(args.clients)]

    lsock = socket.create_server((ADDR, ECHO_PORT), backlog=128, reuse_port=False)
    threading.Thread(target=serve, args=(lsock,), daemon=True).start()
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-B", "32768",
                             "--immediate-mode", "-U", "-Z", "root", "-w", str(pcap), BPF],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert dump.stderr is not None
    while b"listening on" not in dump.stderr.readline():
        if dump.poll() is not None:
            raise SystemExit("tcpdump did not start")
    time.sleep(0.5)
    with ThreadPoolExecutor(max_workers=24) as pool:
        ports = list(pool.map(lambda p: client(*p), plan))
    time.sleep(0.5)
    dump.send_signal(signal.SIGINT)
    print(dump.communicate(timeout=10)[1].decode().strip())
    lsock.close()
    endings = {str(port): ending for port, (ending, _, _) in zip(ports, plan, strict=True)}
    (out / "many-clients.json").write_text(json.dumps(
        {"bpf_filter": BPF, "clients": args.clients, "seed": args.seed,
         "endings_by_client_port": endings}, indent=1) + "\n")
    print(f"{pcap}: {pcap.stat().st_size} bytes, {len(plan)} clients")


if __name__ == "__main__":
    main()
