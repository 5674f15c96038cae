#!/usr/bin/env python3
"""Live capture loss: packets each engine of ``handshake sniff`` sees, against a parallel
tcpdump on the same traffic, at rising packet rates. Needs root.

    sudo python3 benchmarks/bench_live.py [--engines default,scapy] [--rates 1,2,5,10,20]
                                          [--seconds 3] [--json out.json]

Everything runs in a network namespace the script creates (its own loopback, so nothing
else's traffic is counted and nothing leaves the machine): an echo server on
127.0.0.1:9502 and clients on several connections streaming data at a paced rate.
The clients use a small MSS and the namespace's loopback may build no GSO super-packets
(gso_max_segs 1), so every segment is a packet on the wire: rate R MB/s of data is
about R * 10 000 data segments per second each way, plus ACKs.

The echo traffic tops out near 90 k packets/s here: the kernel's own TCP work on two
cores is the limit, not the capture (``handshake sniff`` itself used ~5 % of a core).
``--traffic replay`` goes beyond it: the TCP segments of the real loopback sessions in
captures/echo-lo.pcap (client ports rewritten so every repetition is a new connection)
are sent as Ethernet frames, paced at ``--rates`` k packets/s, out of one end of a veth
pair whose other end drops them (another host's MAC), so the kernel does no TCP work and
the capture is the bottleneck. Both sides capture on the sending end.

For every engine and rate: ``handshake sniff --format jsonl -w`` runs as its own process
(output to /dev/null), a reference ``tcpdump -w`` runs beside it, the traffic runs for
``--seconds``, both are stopped with SIGINT. Reported: packets the reference captured,
packets the engine saw, the engine's share, and the kernel drop counters of both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST, PORT = "127.0.0.1", 9502
MSS = 100  # bytes of data per segment
CONNECTIONS = 8
TICK = 0.005  # seconds between paced sends
GRACE = 4.0  # seconds after the traffic before both captures are stopped


# ---- traffic (inside the namespace) ---------------------------------------------------------


def echo_server(ready: threading.Event, stop: threading.Event) -> None:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, PORT))
    lsock.listen(64)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.1):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is lsock:
                conn, _ = lsock.accept()
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(1 << 16)
            except ConnectionError:
                data = b""
            if data:
                sock.sendall(data)
            else:
                sel.unregister(sock)
                sock.close()
    lsock.close()


def stream(rate_mb: float, seconds: float) -> int:
    """Send rate_mb MB/s of data over CONNECTIONS echo connections; returns bytes sent."""
    socks = []
    for _ in range(CONNECTIONS):
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MSS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((HOST, PORT))
        sock.setblocking(False)
        socks.append(sock)
    per_tick = int(rate_mb * 1e6 * TICK / CONNECTIONS)
    payload = b"x" * per_tick
    sent = 0
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        for sock in socks:
            try:
                sent += sock.send(payload)
            except BlockingIOError:
                pass
            try:
                while sock.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
        tick += 1
        time.sleep(max(0.0, start + tick * TICK - time.monotonic()))
    for sock in socks:
        sock.setblocking(True)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        try:
            while sock.recv(1 << 20):
                pass
        except OSError:
            pass
        sock.close()
    return sent


# ---- one measurement ------------------------------------------------------------------------


def start_and_wait(cmd: list[str], marker: str, **kw: object) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if marker in line:
            break
    else:
        raise SystemExit(f"{cmd[0]} did not start: {''.join(lines)}")
    return proc


SERVER_PORTS = (9502, 9503, 9509, 9510)
REPLAY_IFACE, REPLAY_PEER = "hsreplay0", "hsreplay1"


def replay_frames(copies: int = 400) -> list[bytes]:
    """The TCP frames of captures/echo-lo.pcap, ``copies`` times, each copy with its own
    client ports, addressed to a MAC nobody has."""
    data = (Path(__file__).parents[1] / "captures" / "echo-lo.pcap").read_bytes()
    frames, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        if frame[12:14] == b"\x08\x00" and frame[23] == 6:  # IPv4 TCP
            frames.append(b"\x02\x00\x00\x00\x00\x09" + frame[6:])
    out = []
    for k in range(copies):
        for frame in frames:
            t = 14 + (frame[14] & 0x0F) * 4
            sport, dport = struct.unpack_from("!HH", frame, t)
            shift = lambda p: p if p in SERVER_PORTS else 1024 + (p + 7919 * k) % 64000  # noqa: E731
            out.append(frame[:t] + struct.pack("!HH", shift(sport), shift(dport))
                       + frame[t + 4:])
    return out


def replay(rate_kpps: float, seconds: float) -> int:
    """Send the replay frames at rate_kpps thousand packets/s; returns packets sent."""
    frames = replay_frames()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((REPLAY_IFACE, 0))
    batch, sent, i = 500, 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(batch):
            sock.send(frames[i])
            i = (i + 1) % len(frames)
        sent += batch
        time.sleep(max(0.0, start + sent / (rate_kpps * 1000) - time.monotonic()))
    sock.close()
    return sent


def measure(engine: str, rate: float, seconds: float, tmp: Path,
            traffic: str = "echo") -> dict[str, object]:
    iface, bpf = ("lo", f"tcp port {PORT}") if traffic == "echo" else (REPLAY_IFACE, "tcp")
    ref = start_and_wait(["tcpdump", "-i", iface, "-n", "-B", "65536", "-w",
                          str(tmp / "ref.pcap"), bpf], "listening on")
    sniff = start_and_wait([sys.executable, "-m", "analyzer", "sniff", "-i", iface,
                            "-f", bpf, "--format", "jsonl", "--engine", engine,
                            "-w", str(tmp / "live.pcap")], "sniffing",
                           stdout=subprocess.DEVNULL, cwd=str(Path(__file__).parents[1]))
    time.sleep(0.3)
    started = time.monotonic()
    sent = stream(rate, seconds) if traffic == "echo" else replay(rate, seconds)
    elapsed = time.monotonic() - started
    time.sleep(GRACE)  # > tcpdump's 1 s ring-block timeout, and time for a backlog
    outputs = []
    for proc in (sniff, ref):
        proc.send_signal(signal.SIGINT)
    for proc in (sniff, ref):
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        outputs.append(err)
    live_err, ref_err = outputs
    m = re.search(r"handshake: (\d+) packets .*kernel drops: (\w+)", live_err)
    ref_seen = int(re.search(r"(\d+) packets captured", ref_err).group(1))  # type: ignore
    ref_drops = int(re.search(r"(\d+) packets dropped by kernel", ref_err).group(1))  # type: ignore
    seen = int(m.group(1)) if m else 0
    return {"engine": engine, "rate_mb_s": rate, "ref_packets": ref_seen,
            "ref_pps": round(ref_seen / elapsed), "ref_kernel_drops": ref_drops,
            "seen": seen, "share": round(seen / ref_seen, 4) if ref_seen else None,
            "kernel_drops": m.group(2) if m else "?", "data_bytes": sent,
            "status": "ok" if m else live_err.strip().splitlines()[-1:]}


def inside(args: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up", "gso_max_segs", "1"], check=True)
    if args.traffic == "replay":
        subprocess.run(["ip", "link", "add", REPLAY_IFACE, "type", "veth", "peer", "name",
                        REPLAY_PEER], check=True)
        for dev in (REPLAY_IFACE, REPLAY_PEER):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(target=echo_server, args=(ready, stop), daemon=True).start()
    ready.wait()
    results = []
    unit = "MB/s" if args.traffic == "echo" else "kpps"
    print(f"{'engine':>8} {unit:>5} {'tcpdump pkts':>12} {'pps':>7} {'seen':>9} "
          f"{'share':>7} {'drops':>6} {'ref drops':>9}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            for rate in (float(r) for r in args.rates.split(",")):
                row = measure(engine, rate, args.seconds, Path(tmp), args.traffic)
                results.append(row)
                print(f"{engine:>8} {rate:>5g} {row['ref_packets']:>12} {row['ref_pps']:>7} "
                      f"{row['seen']:>9} {row['share']!s:>7} {row['kernel_drops']!s:>6} "
                      f"{row['ref_kernel_drops']:>9}", flush=True)
                if row["share"] is not None and row["share"] < 0.5:
                    break  # this engine is saturated; higher rates only take longer
    stop.set()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="default,dumpcap,scapy,pyshark")
    parser.add_argument("--rates", default="1,2,5,10,20",
                        help="MB/s of data (echo) or k packets/s (replay), comma separated")
    parser.add_argument("--traffic", choices=("echo", "replay"), default="echo",
                        help="echo sessions on loopback (default), or replayed segments")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        sys.exit("bench_live.py: needs root (network namespace, packet capture)")
    ns = f"hsbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        argv = [a for a in sys.argv[1:]]
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
                               *argv]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    sys.exit(main())
