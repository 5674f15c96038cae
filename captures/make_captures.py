#!/usr/bin/env python3
"""Make real sample captures of TCP handshakes and closes on loopback.

Run as root::

    sudo python3 captures/make_captures.py [--out DIR]

The script starts three captures at the same time, all with the same BPF
filter on the demo ports:

* ``tcpdump -i lo``  -> ``echo-lo.pcap``  (pcap, Ethernet link type)
* ``tcpdump -i any`` -> ``echo-any.pcap`` (pcap, LINUX_SLL2 link type)
* ``dumpcap -i lo -i any`` -> ``echo.pcapng`` (pcapng, two interface blocks)

It waits until every capture is really running, drives the scenarios below
with ordinary Python sockets (127.0.0.1 / ::1 only, nothing else is ever
contacted), stops the captures with SIGINT and then reads the capture files
back with a small stdlib pcap/pcapng reader.  What the packets actually show
(handshake kind, close kind, who closed first, SYN retransmissions) is written
to ``scenarios.json`` next to the captures, so analyzer tests can compare
against it.

Scenarios (each a separate connection):

1. normal close by the client, genuine four-way close;
2. close by the server first;
3. half-close: client shutdown(SHUT_WR), server keeps sending, then closes;
4. abort: client closes with SO_LINGER(on, 0) and unread data -> RST;
5. connection refused (nothing listens on the port -> RST/ACK);
6. listen backlog overflow: listen(1), no accept() for a while, 6 clients
   -> dropped and retransmitted SYNs, then everything completes;
7. TCP self-connect (simultaneous open and close on one socket);
8. a normal echo session over IPv6 ``::1``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

V4 = "127.0.0.1"
V6 = "::1"
ECHO_PORT = 9502
BACKLOG_PORT = 9503
REFUSED_PORT = 9509
SELF_PORT = 9510
PORTS = (ECHO_PORT, BACKLOG_PORT, REFUSED_PORT, SELF_PORT)
BPF = " or ".join(f"tcp port {p}" for p in PORTS)

GAP = 0.2  # pause between scenarios, seconds
FIN_ACK_PAUSE = 0.25  # > Linux delayed-ACK timeout, so the ACK of a FIN goes out alone
BACKLOG_CLIENTS = 6
BACKLOG_ACCEPT_DELAY = 1.5  # SYN retransmits at ~1 s (dropped) and ~3 s (accepted)
IO_TIMEOUT = 10.0

LO_PCAP = "echo-lo.pcap"
ANY_PCAP = "echo-any.pcap"
PCAPNG = "echo.pcapng"
SCENARIOS_JSON = "scenarios.json"

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

Endpoint = tuple[str, int]


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------


@dataclass
class Conn:
    """One TCP connection made by a scenario, plus what the capture showed."""

    id: str
    scenario: int
    name: str
    description: str
    family: str
    client_addr: str
    client_port: int
    server_addr: str
    server_port: int
    intended_close_kind: str
    zeek_conn_state: str | None
    client_events: list[str] = field(default_factory=list)
    time_wait: str = "unknown"
    observed: dict[str, object] = field(default_factory=dict)
    frames: dict[str, list[int]] = field(default_factory=dict)

    @property
    def client(self) -> Endpoint:
        return (self.client_addr, self.client_port)

    @property
    def server(self) -> Endpoint:
        return (self.server_addr, self.server_port)


@dataclass(frozen=True)
class Segment:
    """One TCP segment read back from a capture file."""

    frame: int
    ts: float
    iface: int
    src: Endpoint
    dst: Endpoint
    flags: int
    seq: int
    ack: int
    length: int


# --------------------------------------------------------------------------
# Capture processes
# --------------------------------------------------------------------------


@dataclass
class Capture:
    """A running tcpdump/dumpcap process and its collected stderr."""

    path: Path
    proc: subprocess.Popen[bytes]
    marker: str
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            if self.marker in line:
                self.ready.set()
        self.ready.set()  # process ended; wait_ready() reports the failure


def tcpdump_cmd(iface: str, path: Path, linktype: str | None = None) -> list[str]:
    # -B: immediate mode uses one ring slot per packet of snaplen size; the default
    # 2 MiB buffer holds only ~7 slots on "any" and drops packets in bursts.
    cmd = ["tcpdump", "-i", iface, "-s", "0", "-B", "32768", "--immediate-mode", "-U",
           "-Z", "root"]
    if linktype:
        cmd += ["-y", linktype]
    return cmd + ["-w", str(path), BPF]


def dumpcap_cmd(path: Path) -> list[str]:
    return ["dumpcap", "-i", "lo", "-f", BPF, "-i", "any", "-y", "LINUX_SLL2",
            "-f", BPF, "-w", str(path)]


def start_capture(cmd: list[str], path: Path, marker: str) -> Capture:
    path.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    cap = Capture(path=path, proc=proc, marker=marker)
    threading.Thread(target=cap.read_stderr, daemon=True).start()
    return cap


def wait_ready(cap: Capture, timeout: float = 10.0) -> None:
    if not cap.ready.wait(timeout) or cap.proc.poll() is not None:
        stop_capture(cap)
        raise SystemExit(f"capture for {cap.path.name} did not start: {' | '.join(cap.lines)}")


def stop_capture(cap: Capture) -> None:
    if cap.proc.poll() is None:
        cap.proc.send_signal(signal.SIGINT)
    try:
        cap.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        cap.proc.kill()
        cap.proc.wait()
    time.sleep(0.1)  # let the stderr reader collect the final statistics


# --------------------------------------------------------------------------
# Socket helpers
# --------------------------------------------------------------------------


def family_of(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listener(addr: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(family_of(addr), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    sock.listen(backlog)
    return sock


def bound_client(addr: str) -> tuple[socket.socket, int]:
    """A client socket bound to an ephemeral port, so the port is known even if connect fails."""
    sock = socket.socket(family_of(addr), socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT)
    sock.bind((addr, 0))
    return sock, sock.getsockname()[1]


def recv_until_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def serve_once(lsock: socket.socket, handler: Callable[[socket.socket], None]) -> threading.Thread:
    """Accept one connection in a thread and run handler on it."""

    def run() -> None:
        conn, _ = lsock.accept()
        conn.settimeout(IO_TIMEOUT)
        with conn:
            handler(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def new_conn(scenario: int, name: str, description: str, client_addr: str, client_port: int,
             server_port: int, intended: str, zeek: str | None, suffix: str = "") -> Conn:
    return Conn(id=f"{scenario}{suffix}", scenario=scenario, name=name, description=description,
                family="ipv6" if ":" in client_addr else "ipv4", client_addr=client_addr,
                client_port=client_port, server_addr=client_addr, server_port=server_port,
                intended_close_kind=intended, zeek_conn_state=zeek)


# --------------------------------------------------------------------------
# Server behaviours
# --------------------------------------------------------------------------


def echo_wait_eof_pause_close(conn: socket.socket) -> None:
    """Echo once, read the client's FIN, wait past the delayed ACK, then close."""
    conn.sendall(conn.recv(4096))
    recv_until_eof(conn)
    time.sleep(FIN_ACK_PAUSE)


def echo_then_close(conn: socket.socket) -> None:
    conn.sendall(conn.recv(4096))


def echo_until_eof(conn: socket.socket) -> None:
    while data := conn.recv(4096):
        conn.sendall(data)


def half_close_server(conn: socket.socket) -> None:
    recv_until_eof(conn)
    for i in range(3):
        conn.sendall(f"reply part {i + 1} after your FIN\n".encode())
        time.sleep(0.05)


def echo_expect_reset(conn: socket.socket) -> None:
    conn.sendall(conn.recv(4096))
    try:
        conn.recv(4096)
    except ConnectionResetError:
        pass


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def client_echo(addr: str, port: int, message: bytes) -> tuple[socket.socket, int]:
    sock, cport = bound_client(addr)
    sock.connect((addr, port))
    sock.sendall(message)
    if sock.recv(4096) != message:
        raise RuntimeError("echo mismatch")
    return sock, cport


def scenario_client_close(lsock: socket.socket, addr: str, num: int, name: str) -> list[Conn]:
    server = serve_once(lsock, echo_wait_eof_pause_close)
    sock, cport = client_echo(addr, ECHO_PORT, b"hello")
    sock.close()
    server.join(IO_TIMEOUT)
    desc = (f"echo over {addr}; client closes first; server waits {FIN_ACK_PAUSE}s after "
            "reading EOF so its ACK of the client FIN goes out alone before its own FIN")
    return [new_conn(num, name, desc, addr, cport, ECHO_PORT, "four_way", "SF")]


def scenario_server_close(lsock: socket.socket) -> list[Conn]:
    server = serve_once(lsock, echo_then_close)
    sock, cport = client_echo(V4, ECHO_PORT, b"hello")
    rest = recv_until_eof(sock)
    sock.close()
    server.join(IO_TIMEOUT)
    desc = "echo; server closes right after echoing, client reads EOF and closes at once"
    conn = new_conn(2, "server_closes_first", desc, V4, cport, ECHO_PORT, "three_way", "SF")
    conn.client_events.append(f"client read EOF (extra bytes: {len(rest)})")
    return [conn]


def scenario_half_close(lsock: socket.socket) -> list[Conn]:
    server = serve_once(lsock, half_close_server)
    sock, cport = bound_client(V4)
    sock.connect((V4, ECHO_PORT))
    sock.sendall(b"request then FIN")
    sock.shutdown(socket.SHUT_WR)
    data = recv_until_eof(sock)
    sock.close()
    server.join(IO_TIMEOUT)
    desc = ("client sends data then shutdown(SHUT_WR); server sends 3 segments after "
            "receiving the FIN, then closes")
    conn = new_conn(3, "half_close", desc, V4, cport, ECHO_PORT, "four_way", "SF")
    conn.client_events.append(f"client received {len(data)} bytes after its own FIN")
    return [conn]


def scenario_reset(lsock: socket.socket) -> list[Conn]:
    server = serve_once(lsock, echo_expect_reset)
    sock, cport = bound_client(V4)
    sock.connect((V4, ECHO_PORT))
    sock.sendall(b"hello, never read the echo")
    time.sleep(0.05)  # echo arrives and stays unread in the receive buffer
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    server.join(IO_TIMEOUT)
    desc = "client leaves the echo unread and closes with SO_LINGER(on, 0) -> RST"
    return [new_conn(4, "client_abort_rst", desc, V4, cport, ECHO_PORT, "reset", "RSTO")]


def scenario_refused() -> list[Conn]:
    sock, cport = bound_client(V4)
    conn = new_conn(5, "connection_refused", f"connect to {V4}:{REFUSED_PORT}, nothing listens",
                    V4, cport, REFUSED_PORT, "refused", "REJ")
    try:
        sock.connect((V4, REFUSED_PORT))
        conn.client_events.append("unexpectedly connected")
    except ConnectionRefusedError:
        conn.client_events.append("connect(): ECONNREFUSED")
    finally:
        sock.close()
    return [conn]


def backlog_client(index: int, ports: list[int], events: list[str]) -> None:
    time.sleep(index * 0.03)
    sock, cport = bound_client(V4)
    ports[index] = cport
    started = time.monotonic()
    sock.connect((V4, BACKLOG_PORT))
    waited = time.monotonic() - started
    msg = f"hello {index}".encode()
    sock.sendall(msg)
    ok = sock.recv(4096) == msg
    sock.close()
    events[index] = f"connect() returned after {waited:.2f}s, echo ok={ok}"


def backlog_server(lsock: socket.socket, count: int) -> None:
    time.sleep(BACKLOG_ACCEPT_DELAY)
    handlers = [serve_once(lsock, echo_until_eof) for _ in range(count)]
    for handler in handlers:
        handler.join(IO_TIMEOUT)


def scenario_backlog() -> list[Conn]:
    ports = [0] * BACKLOG_CLIENTS
    events = [""] * BACKLOG_CLIENTS
    with listener(V4, BACKLOG_PORT, 1) as lsock:
        server = threading.Thread(target=backlog_server, args=(lsock, BACKLOG_CLIENTS), daemon=True)
        server.start()
        clients = [threading.Thread(target=backlog_client, args=(i, ports, events), daemon=True)
                   for i in range(BACKLOG_CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(3 * IO_TIMEOUT)
        server.join(IO_TIMEOUT)
    desc = (f"listen(1), no accept() for {BACKLOG_ACCEPT_DELAY}s while {BACKLOG_CLIENTS} "
            "clients connect 30 ms apart; extra SYNs are dropped and retransmitted")
    conns = []
    for i, cport in enumerate(ports):
        conn = new_conn(6, "listen_backlog_overflow", desc, V4, cport, BACKLOG_PORT,
                        "three_way", "SF", suffix="abcdefgh"[i])
        conn.client_events.append(events[i] or "client did not finish")
        conns.append(conn)
    return conns


def scenario_self_connect() -> list[Conn]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(IO_TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((V4, SELF_PORT))
    sock.connect((V4, SELF_PORT))
    sock.sendall(b"talking to myself")
    echoed = sock.recv(4096)
    time.sleep(0.05)
    sock.close()
    desc = f"socket bound to {V4}:{SELF_PORT} connects to itself (simultaneous open and close)"
    conn = new_conn(7, "self_connect", desc, V4, SELF_PORT, SELF_PORT, "simultaneous", None)
    conn.client_events.append(f"read back {echoed!r}")
    return [conn]


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind((V6, 0))
        return True
    except OSError:
        return False


def run_scenarios(v4_listener: socket.socket, v6_listener: socket.socket | None) -> list[Conn]:
    steps: list[Callable[[], list[Conn]]] = [
        lambda: scenario_client_close(v4_listener, V4, 1, "client_closes_first"),
        lambda: scenario_server_close(v4_listener),
        lambda: scenario_half_close(v4_listener),
        lambda: scenario_reset(v4_listener),
        scenario_refused,
        scenario_backlog,
        scenario_self_connect,
    ]
    if v6_listener is not None:
        steps.append(lambda: scenario_client_close(v6_listener, V6, 8, "ipv6_client_closes_first"))
    conns: list[Conn] = []
    for step in steps:
        new = step()
        time.sleep(GAP)
        record_time_wait(new)
        conns += new
        print(f"  scenario {new[0].scenario} ({new[0].name}): {len(new)} connection(s)")
    return conns


# --------------------------------------------------------------------------
# TIME_WAIT snapshot from /proc
# --------------------------------------------------------------------------


def time_wait_port_pairs() -> set[tuple[int, int]]:
    """(local port, remote port) of every TIME_WAIT socket in /proc/net/tcp{,6}."""
    pairs = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "06":
                pairs.add((int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)))
    return pairs


def record_time_wait(conns: list[Conn]) -> None:
    pairs = time_wait_port_pairs()
    for conn in conns:
        client = (conn.client_port, conn.server_port) in pairs
        server = (conn.server_port, conn.client_port) in pairs
        if conn.client_port == conn.server_port:
            conn.time_wait = "both" if client else "none"
        else:
            conn.time_wait = {(True, True): "both", (True, False): "client",
                              (False, True): "server", (False, False): "none"}[(client, server)]


# --------------------------------------------------------------------------
# Reading pcap / pcapng (stdlib only)
# --------------------------------------------------------------------------


def read_pcap(data: bytes) -> Iterator[tuple[int, float, bytes]]:
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack_from(endian + "IIII", data, pos)
        yield linktype, sec + frac * scale, data[pos + 16:pos + 16 + incl]
        pos += 16 + incl


def idb_tsresol(body: bytes, endian: str) -> float:
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = body[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        pos += 4 + (length + 3) // 4 * 4
    return 1e-6


def read_pcapng(data: bytes) -> Iterator[tuple[int, float, bytes]]:
    """Yield (iface_id << 16 | linktype, timestamp, frame) for each packet block."""
    pos, endian = 0, "<"
    ifaces: list[tuple[int, float]] = []
    while pos + 12 <= len(data):
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            endian = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        body = data[pos + 8:pos + blen - 4]
        if btype == 1:
            ifaces.append((struct.unpack_from(endian + "H", body, 0)[0], idb_tsresol(body, endian)))
        elif btype == 6:
            iface, hi, lo, caplen, _ = struct.unpack_from(endian + "IIIII", body, 0)
            linktype, res = ifaces[iface]
            yield iface << 16 | linktype, ((hi << 32) | lo) * res, body[20:20 + caplen]
        pos += blen


def l3_payload(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    if linktype == 1:  # EN10MB
        return struct.unpack_from("!H", frame, 12)[0], frame[14:]
    if linktype == 276:  # LINUX_SLL2
        return struct.unpack_from("!H", frame, 0)[0], frame[20:]
    if linktype == 113:  # LINUX_SLL
        return struct.unpack_from("!H", frame, 14)[0], frame[16:]
    return None


def parse_tcp(frame_no: int, ts: float, iface: int, linktype: int, frame: bytes) -> Segment | None:
    l3 = l3_payload(linktype, frame)
    if l3 is None:
        return None
    ethertype, pkt = l3
    if ethertype == 0x0800 and pkt[9] == 6:
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack_from("!H", pkt, 2)[0]
        src = socket.inet_ntop(socket.AF_INET, pkt[12:16])
        dst = socket.inet_ntop(socket.AF_INET, pkt[16:20])
        tcp, tcp_total = pkt[ihl:], total - ihl
    elif ethertype == 0x86DD and pkt[6] == 6:
        src = socket.inet_ntop(socket.AF_INET6, pkt[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, pkt[24:40])
        tcp, tcp_total = pkt[40:], struct.unpack_from("!H", pkt, 4)[0]
    else:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", tcp, 0)
    return Segment(frame_no, ts, iface, (src, sport), (dst, dport), flags, seq, ack,
                   tcp_total - (off >> 4) * 4)


def read_segments(path: Path) -> list[Segment]:
    data = path.read_bytes()
    reader = read_pcapng if data[:4] == b"\x0a\x0d\x0d\x0a" else read_pcap
    segments = []
    for number, (tag, ts, frame) in enumerate(reader(data), start=1):
        seg = parse_tcp(number, ts, tag >> 16, tag & 0xFFFF, frame)
        if seg is not None:
            segments.append(seg)
    return segments


def link_types(path: Path) -> list[int]:
    data = path.read_bytes()
    seen: list[int] = []
    reader = read_pcapng if data[:4] == b"\x0a\x0d\x0d\x0a" else read_pcap
    for tag, _, _ in reader(data):
        if tag not in seen:
            seen.append(tag)
    return [tag & 0xFFFF for tag in sorted(seen)]


# --------------------------------------------------------------------------
# Classifying a connection from its segments
# --------------------------------------------------------------------------


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def is_syn(seg: Segment) -> bool:
    return bool(seg.flags & SYN) and not seg.flags & ACK


def handshake_kind(segs: list[Segment], client: Endpoint, server: Endpoint) -> str:
    c_syn = [s for s in segs if s.src == client and is_syn(s)]
    if any(s.src == server and is_syn(s) for s in segs) and c_syn:
        return "simultaneous"
    synack = next((s for s in segs if s.src == server and s.flags & SYN and s.flags & ACK), None)
    if synack is None:
        if any(s.src == server and s.flags & RST for s in segs):
            return "refused"
        return "unanswered" if c_syn else "incomplete"
    done = any(s.src == client and s.frame > synack.frame and s.flags & ACK
               and not s.flags & SYN and s.ack == (synack.seq + 1) & 0xFFFFFFFF for s in segs)
    return "three_way" if done else "incomplete"


def fin_end(seg: Segment) -> int:
    return (seg.seq + seg.length + 1) & 0xFFFFFFFF


def acked_by(segs: list[Segment], sender: Endpoint, target: int, after: int) -> Segment | None:
    return next((s for s in segs if s.src == sender and s.frame > after and s.flags & ACK
                 and seq_ge(s.ack, target)), None)


def fin_close_kind(segs: list[Segment], client: Endpoint, server: Endpoint) -> tuple[str, str]:
    firsts = (next((s for s in segs if s.src == ep and s.flags & FIN), None)
              for ep in (client, server))
    present = [f for f in firsts if f is not None]
    side = {client: "client", server: "server"}
    if not present:
        return "open", "none"
    if len(present) == 1:
        return "incomplete", side[present[0].src]
    first, second = sorted(present, key=lambda s: s.frame)
    if not (second.flags & ACK and seq_ge(second.ack, fin_end(first))):
        done = acked_by(segs, second.src, fin_end(first), second.frame) and \
            acked_by(segs, first.src, fin_end(second), first.frame)
        return ("simultaneous" if done else "incomplete"), "both"
    if not acked_by(segs, first.src, fin_end(second), second.frame):
        return "incomplete", side[first.src]
    early = acked_by(segs, second.src, fin_end(first), first.frame)
    kind = "four_way" if early is not None and early.frame < second.frame else "three_way"
    return kind, side[first.src]


def self_connect_kinds(segs: list[Segment]) -> tuple[str, str, str]:
    syn = next((s for s in segs if is_syn(s)), None)
    synack = next((s for s in segs if s.flags & SYN and s.flags & ACK), None)
    handshake = "simultaneous" if syn and synack and synack.seq == syn.seq else "incomplete"
    fin = next((s for s in segs if s.flags & FIN), None)
    if fin is None:
        return handshake, "open", "none"
    acked = acked_by(segs, fin.src, fin_end(fin), fin.frame)
    return handshake, ("simultaneous" if acked else "incomplete"), "both"


def classify(segs: list[Segment], client: Endpoint, server: Endpoint) -> dict[str, object]:
    if client == server:
        handshake, close, initiator = self_connect_kinds(segs)
    else:
        handshake = handshake_kind(segs, client, server)
        rst = next((s for s in segs if s.flags & RST), None)
        if handshake in ("refused", "unanswered"):
            close, initiator = handshake, "server" if handshake == "refused" else "none"
        elif rst is not None:
            close, initiator = "reset", "client" if rst.src == client else "server"
        else:
            close, initiator = fin_close_kind(segs, client, server)
    syns = [s for s in segs if s.src == client and is_syn(s)]
    return {
        "handshake": handshake,
        "close_kind": close,
        "close_initiator": initiator,
        "syn_count": len(syns),
        "syn_retransmissions": sum(1 for s in syns[1:] if s.seq == syns[0].seq),
        "syn_times": [round(s.ts - syns[0].ts, 3) for s in syns],
        "packets": len(segs),
    }


def conn_segments(segs: list[Segment], conn: Conn) -> list[Segment]:
    ends = {conn.client, conn.server}
    return [s for s in segs if {s.src, s.dst} == ends]


# --------------------------------------------------------------------------
# Verification and output
# --------------------------------------------------------------------------


def analyse_file(path: Path, conns: list[Conn], primary: bool) -> list[str]:
    """Classify every connection on every interface of path; return problems found."""
    segs = read_segments(path)
    problems = []
    for conn in conns:
        mine = conn_segments(segs, conn)
        frames = [s.frame for s in mine]
        conn.frames[path.name] = frames
        for iface in sorted({s.iface for s in segs}):
            per_iface = [s for s in mine if s.iface == iface]
            if not per_iface:
                problems.append(f"{path.name} iface {iface}: scenario {conn.id} missing")
                continue
            result = classify(per_iface, conn.client, conn.server)
            if primary and iface == 0:
                conn.observed.update(result)
            elif {k: v for k, v in result.items() if k != "syn_times"} != \
                    {k: conn.observed.get(k) for k in result if k != "syn_times"}:
                problems.append(f"{path.name} iface {iface}: scenario {conn.id} differs: {result}")
    return problems


def check_expectations(conns: list[Conn]) -> list[str]:
    notes = []
    for conn in conns:
        if conn.observed.get("close_kind") != conn.intended_close_kind:
            notes.append(f"scenario {conn.id}: intended {conn.intended_close_kind}, "
                         f"capture shows {conn.observed.get('close_kind')}")
    backlog = [c for c in conns if c.scenario == 6]
    if backlog and not any(c.observed.get("syn_retransmissions") not in (0, None) for c in backlog):
        notes.append("scenario 6: no SYN retransmission seen in the capture")
    return notes


def conn_json(conn: Conn) -> dict[str, object]:
    obs = conn.observed
    return {
        "id": conn.id, "scenario": conn.scenario, "name": conn.name,
        "description": conn.description, "family": conn.family,
        "client_addr": conn.client_addr, "client_port": conn.client_port,
        "server_addr": conn.server_addr, "server_port": conn.server_port,
        "handshake": obs.get("handshake"), "close_kind": obs.get("close_kind"),
        "close_initiator": obs.get("close_initiator"),
        "intended_close_kind": conn.intended_close_kind,
        "time_wait": conn.time_wait, "zeek_conn_state": conn.zeek_conn_state,
        "syn_count": obs.get("syn_count"), "syn_retransmissions": obs.get("syn_retransmissions"),
        "syn_times": obs.get("syn_times"), "packets": obs.get("packets"),
        "frames": conn.frames, "client_events": conn.client_events,
    }


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def capture_stats(cap: Capture) -> list[str]:
    """Final packet/drop counters printed by tcpdump or dumpcap (progress lines dropped)."""
    lines = [line.split("\r")[-1].strip() for line in cap.lines]
    return [line for line in lines if "captured" in line or "dropped" in line]


def write_json(out: Path, conns: list[Conn], caps: list[Capture], notes: list[str]) -> None:
    doc = {
        "generated_by": "captures/make_captures.py",
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "kernel": f"{platform.system()} {platform.release()}",
        "tools": {"tcpdump": tool_version(["tcpdump", "--version"]),
                  "dumpcap": tool_version(["dumpcap", "--version"])},
        "bpf_filter": BPF,
        "files": {cap.path.name: {"command": shlex.join(cap.proc.args),  # type: ignore[arg-type]
                                  "link_types": link_types(cap.path),
                                  "capture_stats": capture_stats(cap)}
                  for cap in caps},
        "close_kinds": {
            "four_way": "FIN, then a separate ACK of it from the peer, then the peer's FIN, ACK",
            "three_way": "FIN, then peer's FIN that is also the first ACK of the first FIN, ACK",
            "simultaneous": "each side sent its FIN before receiving the other's",
            "reset": "connection established, then aborted by RST",
            "refused": "SYN answered by RST/ACK",
        },
        "notes": notes,
        "connections": [conn_json(c) for c in conns],
    }
    (out / SCENARIOS_JSON).write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def preflight() -> bool:
    """Exit with a one-line message if we cannot run; return whether dumpcap is usable."""
    if os.geteuid() != 0:
        sys.exit("make_captures.py: must run as root (sudo python3 captures/make_captures.py)")
    if shutil.which("tcpdump") is None:
        sys.exit("make_captures.py: tcpdump not found in PATH (apt-get install tcpdump)")
    has_dumpcap = shutil.which("dumpcap") is not None
    if not has_dumpcap:
        print(f"warning: dumpcap not found, {PCAPNG} will not be written", file=sys.stderr)
    return has_dumpcap


def start_all(out: Path, with_dumpcap: bool) -> list[Capture]:
    caps = [start_capture(tcpdump_cmd("lo", out / LO_PCAP), out / LO_PCAP, "listening on"),
            start_capture(tcpdump_cmd("any", out / ANY_PCAP, "LINUX_SLL2"), out / ANY_PCAP,
                          "listening on")]
    if with_dumpcap:
        caps.append(start_capture(dumpcap_cmd(out / PCAPNG), out / PCAPNG, "Capturing on"))
    for cap in caps:
        wait_ready(cap)
    time.sleep(0.5)  # margin after the capture reports it is live
    return caps


def open_listeners() -> tuple[socket.socket, socket.socket | None]:
    try:
        v4 = listener(V4, ECHO_PORT, 16)
        v6 = listener(V6, ECHO_PORT, 16) if ipv6_available() else None
    except OSError as exc:
        raise SystemExit(f"make_captures.py: cannot listen on port {ECHO_PORT}: {exc}") from exc
    if v6 is None:
        print("warning: ::1 not usable, skipping the IPv6 scenario", file=sys.stderr)
    return v4, v6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output directory (default: the directory of this script)")
    args = parser.parse_args()
    with_dumpcap = preflight()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    v4, v6 = open_listeners()
    caps = start_all(out, with_dumpcap)
    try:
        print(f"captures running, filter: {BPF}")
        conns = run_scenarios(v4, v6)
        time.sleep(0.5)
    finally:
        for cap in caps:
            stop_capture(cap)
        v4.close()
        if v6 is not None:
            v6.close()
    for cap in caps:
        cap.path.chmod(0o644)  # dumpcap creates its file 0600
        if cap.path.stat().st_size <= 32 or not read_segments(cap.path):
            raise SystemExit(f"make_captures.py: {cap.path} is empty: {' | '.join(cap.lines)}")
    problems = []
    for cap in caps:
        problems += analyse_file(cap.path, conns, primary=cap.path.name == LO_PCAP)
    notes = check_expectations(conns) + problems
    write_json(out, conns, caps, notes)
    for cap in caps:
        print(f"{cap.path}: {cap.path.stat().st_size} bytes; " + "; ".join(capture_stats(cap)))
    for conn in conns:
        obs = conn.observed
        print(f"  {conn.id:>3} {conn.family} {conn.client_port}->{conn.server_port} "
              f"{obs.get('handshake')}/{obs.get('close_kind')} by {obs.get('close_initiator')}, "
              f"TIME_WAIT: {conn.time_wait}, SYNs: {obs.get('syn_count')}")
    for note in notes:
        print(f"note: {note}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
