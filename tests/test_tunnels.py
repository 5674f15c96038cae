"""TCP inside UDP tunnels: GTP-U (3GPP TS 29.281) and Teredo (RFC 4380).

A real stack will not make these on loopback, so the outer layers are built by hand
around a normal conversation (tests/pcapgen.py); the Zeek corpus has real ones
(gtp2_different_udp_port.pcap, Teredo.pcap, checked in test_zeek_corpus.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import analyzer
import pcapgen as g

OUTER_A, OUTER_B = "192.0.2.1", "192.0.2.2"


def gtp_u(inner: bytes, *, teid: int = 0x1234, extension: bool = False) -> bytes:
    """A G-PDU carrying ``inner``; with ``extension`` a PDU session container header."""
    if not extension:
        return struct.pack("!BBHI", 0x30, 0xFF, len(inner), teid) + inner
    ext = bytes([1, 0x10, 0x05, 0])  # length 1 (4 bytes), content, next type 0
    body = struct.pack("!HBB", 0, 0, 0x85) + ext + inner
    return struct.pack("!BBHI", 0x34, 0xFF, len(body), teid) + body


def teredo(inner: bytes, *, origin: bool = False, auth: bool = False) -> bytes:
    head = b""
    if auth:  # client id "ab", no auth value, nonce, confirmation
        head += b"\x00\x01\x02\x00" + b"ab" + b"\x11" * 8 + b"\x00"
    if origin:
        head += b"\x00\x00" + struct.pack("!H4s", 0xFFFF ^ 3544, bytes([1, 2, 3, 4]))
    return head + inner


def tunnelled(conv: g.Conversation, wrap, sport: int, dport: int) -> list[g.Packet]:
    out = []
    for pkt, from_client in zip(conv.packets, conv.from_client):
        a, b = (OUTER_A, OUTER_B) if from_client else (OUTER_B, OUTER_A)
        pa, pb = (sport, dport) if from_client else (dport, sport)
        out.append(g.Packet(pkt.ts_ns, g.udp_packet(a, b, pa, pb, wrap(pkt.data))))
    return out


def read(tmp_path: Path, packets: list[g.Packet], name: str) -> analyzer.Capture:
    path = tmp_path / name
    path.write_bytes(g.pcap_file(g.framed(packets, g.LT_ETHERNET), g.LT_ETHERNET))
    return analyzer.read(str(path), verify_checksums=True)


def assert_inner_connection(cap: analyzer.Capture, conv: g.Conversation) -> None:
    (rec,) = list(cap.records())
    assert rec["client"] == conv.client and rec["server"] == conv.server
    assert rec["packets"] == conv.count
    assert rec["payload_bytes"] == conv.payload
    assert rec["close"]["kind"] == "four_way"
    assert rec["conn_state"] == "SF" and rec["history"] == "ShADadFf"
    assert cap.stats["tcp"] == len(conv.packets) and cap.stats["bad_checksum"] == 0


@pytest.mark.parametrize("extension", [False, True])
@pytest.mark.parametrize("ports", [(2152, 2152), (5906, 2152)])
def test_gtp_u(tmp_path: Path, extension: bool, ports: tuple[int, int]) -> None:
    conv = g.conversation()
    packets = tunnelled(conv, lambda ip: gtp_u(ip, extension=extension), *ports)
    assert_inner_connection(read(tmp_path, packets, "gtp.pcap"), conv)


@pytest.mark.parametrize("origin,auth", [(False, False), (True, False), (True, True)])
def test_teredo_on_its_port(tmp_path: Path, origin: bool, auth: bool) -> None:
    conv = g.conversation(client=("2001:0:4137:9e50::1", 40000),
                          server=("2001:db8::68", 80))
    packets = tunnelled(conv, lambda ip: teredo(ip, origin=origin, auth=auth), 3797, 3544)
    assert_inner_connection(read(tmp_path, packets, "teredo.pcap"), conv)


def test_teredo_through_a_relay_on_another_port(tmp_path: Path) -> None:
    """Teredo relays use arbitrary ports; an IPv6 packet that fills the datagram exactly
    is taken as Teredo, as Zeek's protocol detection does."""
    conv = g.conversation(client=("2001:0:4137:9e50::1", 40000),
                          server=("2001:db8::68", 80))
    assert_inner_connection(read(tmp_path, tunnelled(conv, teredo, 3797, 32900), "relay.pcap"),
                            conv)


def test_gtp_inside_a_first_fragment(tmp_path: Path) -> None:
    """An outer datagram fragmented by the transport network: the first fragment holds
    the inner TCP header, so the segment is tracked; the rest are counted fragments."""
    conv = g.conversation(response=b"x" * 1200)
    packets = []
    for pkt, from_client in zip(conv.packets, conv.from_client):
        a, b = (OUTER_A, OUTER_B) if from_client else (OUTER_B, OUTER_A)
        dgram = g.udp(g.addr(a), g.addr(b), 2152, 2152, gtp_u(pkt.data))
        if len(dgram) > 600:
            for frag in g.ipv4_fragments(g.addr(a), g.addr(b), dgram, 512, proto=17):
                packets.append(g.Packet(pkt.ts_ns, frag))
        else:
            packets.append(g.Packet(pkt.ts_ns, g.ipv4(g.addr(a), g.addr(b), dgram, proto=17)))
    path = tmp_path / "frag.pcap"
    path.write_bytes(g.pcap_file(g.framed(packets, g.LT_ETHERNET), g.LT_ETHERNET))
    cap = analyzer.read(str(path))  # the inner checksum spans fragments: not verifiable
    (rec,) = list(cap.records())
    assert rec["payload_bytes"] == conv.payload and rec["packets"] == conv.count
    assert cap.stats["fragments"] == 2


def test_plain_udp_is_not_taken_for_a_tunnel(tmp_path: Path) -> None:
    """DNS-like datagrams, a GTP port with a non-G-PDU message, and a datagram whose
    IPv6-looking payload does not fill it: no TCP comes out."""
    conv = g.conversation()
    ip = conv.packets[0].data
    echo = struct.pack("!BBHI", 0x32, 0x01, 4, 0) + b"\0\0\0\0"  # GTP echo request
    v6 = g.tcp_packet("2001:db8::1", "2001:db8::2", 1, 2, g.SYN)
    packets = [g.Packet(1000, g.udp_packet(OUTER_A, OUTER_B, 5353, 53, b"\x12\x34" + ip)),
               g.Packet(2000, g.udp_packet(OUTER_A, OUTER_B, 2152, 2152, echo)),
               g.Packet(3000, g.udp_packet(OUTER_A, OUTER_B, 4000, 4001, v6 + b"trailer"))]
    cap = read(tmp_path, packets, "udp.pcap")
    assert len(cap) == 0 and cap.stats["tcp"] == 0 and cap.stats["not_tcp"] == 3
