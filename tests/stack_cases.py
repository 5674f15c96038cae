"""Real Linux TCP doing what other stacks were caught doing, in a private network namespace.

    unshare -n python3 stack_cases.py CASE OUT.pcap      -> prints one JSON line of facts

Run by tests/test_other_stacks.py. The fresh namespace has only ``lo`` and nobody else's
traffic, so every port is free and no other test can interfere. A packet socket on
``lo`` keeps each packet once (its outgoing copy, with the kernel's timestamp); the case
drives real sockets, waits for the packets that end it (never a fixed sleep), and the
packets are written as a nanosecond pcap. Where Linux will not send something another
stack does (a SYN repeated after a refusal, an nmap probe), that one packet is hand-made
and sent through a raw socket; every answer still comes from the Linux stack.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import pcapgen

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
SERVER = ("127.0.0.1", 80)
CLOSED_PORT = 81
CLIENT_ADDR = "127.0.0.2"  # any 127/8 address is local
TCP_REPAIR, TCP_FASTOPEN, MSG_FASTOPEN = 19, 23, 0x20000000
ETH_P_ALL, PACKET_OUTGOING, SO_TIMESTAMPNS = 3, 4, 35


@dataclass
class Seg:
    ts_ns: int
    src: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    length: int


class Tap:
    """Every packet sent on lo, in order, with the kernel's receive timestamp."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("lo", 0))
        self.frames: list[tuple[int, bytes, Seg | None]] = []
        self.segs: list[Seg] = []

    def _read(self, timeout: float) -> None:
        while select.select([self.sock], [], [], timeout)[0]:
            timeout = 0
            data, anc, _flags, addr = self.sock.recvmsg(65535, 64)
            if addr[2] != PACKET_OUTGOING:  # lo delivers each packet twice
                continue
            ts = time.time_ns()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    ts = sec * 1_000_000_000 + nsec
            ip = data[14:]
            seg = None
            if len(ip) >= 40 and ip[0] >> 4 == 4 and ip[9] == 6:
                ihl = (ip[0] & 15) * 4
                sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", ip[ihl:ihl + 14])
                length = struct.unpack("!H", ip[2:4])[0] - ihl - (off >> 4) * 4
                seg = Seg(ts, socket.inet_ntoa(ip[12:16]), sport, dport, flags, seq, ack,
                          length)
                self.segs.append(seg)
            self.frames.append((ts, data, seg))

    def wait(self, what: str, pred: Callable[[list[Seg]], bool], timeout: float = 15) -> None:
        """Read packets until ``pred`` holds for those seen so far."""
        end = time.monotonic() + timeout
        while not pred(self.segs):
            left = end - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timed out waiting for {what}")
            self._read(min(left, 0.2))

    def write(self, path: str, keep: Callable[[Seg], bool] = lambda s: True,
              stretch: int = 1) -> None:
        """The capture as pcap; ``stretch`` multiplies every time since the first packet."""
        self._read(0)
        kept = [(ts, d) for ts, d, s in self.frames if s is None or keep(s)]
        t0 = kept[0][0]
        pkts = [pcapgen.Packet(t0 + (ts - t0) * stretch, d) for ts, d in kept]
        Path(path).write_bytes(pcapgen.pcap_file(pkts, pcapgen.LT_ETHERNET, nanosecond=True))


def on_port(port: int) -> Callable[[Seg], bool]:
    return lambda s: port in (s.sport, s.dport)


def closed(port: int) -> Callable[[list[Seg]], bool]:
    """Both FINs of the connection from ``port`` are out and the last one is acknowledged."""
    def pred(segs: list[Seg]) -> bool:
        mine = [s for s in segs if port in (s.sport, s.dport)]
        fins = [i for i, s in enumerate(mine) if s.flags & FIN]
        sides = {mine[i].sport for i in fins}
        if len(sides) < 2:
            return False
        last = mine[fins[-1]]
        return any(s.sport != last.sport and s.flags & ACK and s.ack == (last.seq + last.length
                   + 1) % 2**32 for s in mine[fins[-1] + 1:])
    return pred


def count(port: int, flags: int, n: int, from_port: int | None = None
          ) -> Callable[[list[Seg]], bool]:
    """At least ``n`` segments of the connection on ``port`` carrying all of ``flags``."""
    return lambda segs: sum(1 for s in segs if port in (s.sport, s.dport) and
                            s.flags & flags == flags and
                            (from_port is None or s.sport == from_port)) >= n


def listener(addr: tuple[str, int] = SERVER) -> socket.socket:
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(addr)
    lsock.listen(16)
    return lsock


def client(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(10)
    sock.bind((CLIENT_ADDR, port))
    return sock


def raw_send(sport: int, dport: int, flags: int, seq: int, ack: int = 0) -> None:
    """One hand-made segment from CLIENT_ADDR (the kernel answers it as it would anyone)."""
    pkt = pcapgen.tcp_packet(CLIENT_ADDR, SERVER[0], sport, dport, flags, seq, ack,
                             window=8192, options=pcapgen.tcp_options(mss=1460))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(pkt, (SERVER[0], 0))


def abort(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- the cases ----------------------------------------------------------------------------


def refused_retry(tap: Tap, out: str) -> dict[str, int]:
    """Windows' answer to a refusal: the same SYN (same ISN) twice more, 0.5 s apart."""
    port = 40001
    for n in range(1, 4):
        raw_send(port, CLOSED_PORT, SYN, 1000)
        tap.wait(f"RST {n}", count(port, RST | ACK, n, from_port=CLOSED_PORT))
    tap.write(out)
    return {"client_port": port}


def stale_ack(tap: Tap, out: str) -> dict[str, int]:
    """A SYN from a port whose old connection the server still holds: the server answers
    with a (challenge) ACK for the old connection, the client's SYN-SENT socket resets it
    with <SEQ=SEG.ACK><RST> (RFC 9293 3.10.7.3) and its SYN retransmission completes."""
    lsock = listener()
    old = client()
    port = old.getsockname()[1]
    old.connect(SERVER)
    held, _ = lsock.accept()
    old.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)  # gone without a FIN or RST
    old.close()
    new = client(port)
    new.connect(SERVER)  # SYN, ACK, RST, SYN again after the 1 s RTO, SYN-ACK, ACK
    conn, _ = lsock.accept()
    new.sendall(b"hello\n")
    conn.recv(100)
    new.close()
    conn.recv(100)
    conn.close()
    tap.wait("the close", closed(port))
    held.close()
    tap.write(out)
    return {"client_port": port}


def keepalive(tap: Tap, out: str) -> dict[str, int]:
    """Keep-alives over a quiet connection, a half-close, more keep-alives, then an abort.
    Written with times stretched 400 times: 1 s probes become the 400 s gaps of a real
    Windows or Linux keep-alive (Linux's default first probe is after 7200 s)."""
    lsock = listener()
    cli = client()
    port = cli.getsockname()[1]
    for sock in (cli,):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    cli.connect(SERVER)
    srv, _ = lsock.accept()
    cli.sendall(b"hello\n")
    srv.recv(100)
    srv.sendall(b"hello\n")
    cli.recv(100)
    tap.wait("two keep-alives answered", lambda segs: answered(segs, port, port) >= 2)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
    cli.shutdown(socket.SHUT_WR)
    assert srv.recv(100) == b""
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    tap.wait("a keep-alive after the FIN answered",
             lambda segs: answered(segs, port, SERVER[1]) >= 1)
    abort(srv)
    tap.wait("the RST", count(port, RST, 1))
    cli.close()
    tap.write(out, stretch=400)
    return {"client_port": port, "stretch": 400}


def probes(segs: list[Seg], port: int) -> list[Seg]:
    """Keep-alive probes: no data (or one octet), one below what the sender sent next."""
    nxt: dict[int, int] = {}
    found = []
    for s in segs:
        if port not in (s.sport, s.dport):
            continue
        end = (s.seq + s.length + (1 if s.flags & (SYN | FIN) else 0)) % 2**32
        if s.sport in nxt and s.length <= 1 and not s.flags & (SYN | FIN | RST) and \
                s.seq == (nxt[s.sport] - 1) % 2**32:
            found.append(s)
            continue
        if s.sport not in nxt or (end - nxt[s.sport]) % 2**32 < 2**31:
            nxt[s.sport] = end
    return found


def answered(segs: list[Seg], port: int, sender: int) -> int:
    """How many of ``sender``'s keep-alive probes the other side has answered."""
    mine = [s for s in segs if port in (s.sport, s.dport)]
    return sum(1 for p in probes(segs, port) if p.sport == sender and
               any(s.sport != sender for s in mine[mine.index(p) + 1:]))


def fin_then_abort(tap: Tap, out: str) -> dict[str, int]:
    """The server closes first; the client then aborts with RST instead of its FIN."""
    lsock = listener()
    cli = client()
    port = cli.getsockname()[1]
    cli.connect(SERVER)
    srv, _ = lsock.accept()
    srv.close()
    assert cli.recv(100) == b""
    abort(cli)
    tap.wait("the RST", count(port, RST, 1))
    tap.write(out)
    return {"client_port": port}


def orphan_rst(tap: Tap, out: str) -> dict[str, int]:
    """The client closes first; data then reaching its orphaned FIN-WAIT-2 socket (a
    TIME-WAIT mini-socket in Linux) is answered by RST and the socket is gone."""
    lsock = listener()
    cli = client()
    port = cli.getsockname()[1]
    cli.connect(SERVER)
    srv, _ = lsock.accept()
    cli.close()
    assert srv.recv(100) == b""
    srv.sendall(b"late\n")
    tap.wait("the RST", count(port, RST, 1))
    srv.close()
    tap.write(out)
    return {"client_port": port}


def fast_open(tap: Tap, out: str) -> dict[str, int]:
    """TCP Fast Open (RFC 7413): the first connection fetches a cookie, the second sends
    its request in the SYN and the SYN-ACK acknowledges it."""
    Path("/proc/sys/net/ipv4/tcp_fastopen").write_text("3\n")
    lsock = listener()
    lsock.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 16)
    facts = {}
    for n in (1, 2):
        cli = client()
        port = cli.getsockname()[1]
        cli.settimeout(None)  # a socket with a timeout is non-blocking: EINPROGRESS
        cli.sendto(b"request %d\n" % n, MSG_FASTOPEN, SERVER)
        srv, _ = lsock.accept()
        srv.recv(100)
        srv.sendall(b"answer\n")
        cli.recv(100)
        cli.close()
        assert srv.recv(100) == b""
        srv.close()
        tap.wait("the close", closed(port))
        facts[f"port{n}"] = port
    tap.write(out)
    return facts


def one_direction(tap: Tap, out: str) -> dict[str, int]:
    """An ordinary connection; OUT-client.pcap keeps only the client's packets and
    OUT-server.pcap only the server's, as a tap on one direction of an asymmetric path
    (or `tcpdump -Q out` on one host) sees it."""
    lsock = listener()
    cli = client()
    port = cli.getsockname()[1]
    cli.connect(SERVER)
    srv, _ = lsock.accept()
    cli.sendall(b"hello\n")
    srv.recv(100)
    srv.sendall(b"hello\n")
    cli.recv(100)
    cli.close()
    assert srv.recv(100) == b""
    srv.close()
    tap.wait("the close", closed(port))
    tap.write(out)
    tap.write(out.replace(".pcap", "-client.pcap"), keep=lambda s: s.sport == port)
    tap.write(out.replace(".pcap", "-server.pcap"), keep=lambda s: s.sport == SERVER[1])
    return {"client_port": port}


def nmap_probes(tap: Tap, out: str) -> dict[str, int]:
    """nmap's OS-detection probes, each sent twice with the same ISN as nmap retries:
    SYN+FIN+PSH+URG to an open and to a closed port, and a segment with no flags at all."""
    lsock = listener()
    sent = 0
    for sport, dport, flags in ((42001, SERVER[1], SYN | FIN | PSH | URG),
                                (42002, SERVER[1], 0),
                                (42003, CLOSED_PORT, SYN | FIN | PSH | URG)):
        for _ in range(2):
            raw_send(sport, dport, flags, 7777)
            sent += 1
            tap.wait(f"probe {sent}", lambda segs, n=sent: sum(
                1 for s in segs if s.sport in (42001, 42002, 42003)) >= n)
    tap.wait("the closed port's answers", count(42003, RST, 2, from_port=CLOSED_PORT))
    lsock.close()
    tap.write(out)
    return {"open": 42001, "null": 42002, "closed": 42003}


CASES = {f.__name__: f for f in (refused_retry, stale_ack, keepalive, fin_then_abort,
                                  orphan_rst, fast_open, one_direction, nmap_probes)}


def main() -> None:
    case, out = sys.argv[1], sys.argv[2]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tap = Tap()
    facts = CASES[case](tap, out)
    print(json.dumps(facts), flush=True)
    os._exit(0)  # sockets left in TIME-WAIT go with the namespace


if __name__ == "__main__":
    main()
