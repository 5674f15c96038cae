"""One hand-made TCP conversation in every container, byte order, timestamp resolution and
link type the reader supports: the connection records must come out identical, down to
the timestamps. Plus the decoding corner cases (VLAN/QinQ, IP options, IPv6 extension
headers, Ethernet padding, fragments, non-TCP packets), pcapng with several interfaces,
gzip, the port filter, and the real corpus traces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import analyzer

import pcapgen as g  # tests/ is on sys.path (pytest's rootdir-relative import)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"

V4 = (("10.0.0.1", 40000), ("10.0.0.2", 80))
V6 = (("2001:db8::1", 40000), ("2001:db8::2", 80))
FAMILIES = {"v4": V4, "v6": V6}


def conv(family: str = "v4", **kw: Any) -> g.Conversation:
    client, server = FAMILIES[family]
    return g.conversation(client, server, **kw)


def read_bytes(tmp_path: Path, data: bytes, name: str = "cap.pcap", **kw: Any
               ) -> analyzer.Capture:
    path = tmp_path / name
    path.write_bytes(data)
    return analyzer.read(str(path), **kw)


def records(cap: analyzer.Capture) -> list[dict[str, Any]]:
    assert cap.error is None, cap.error
    assert cap.warnings == []
    return list(cap.records())


def plain_file(packets: list[g.Packet]) -> bytes:
    """The reference container: little-endian microsecond pcap over Ethernet."""
    return g.pcap_file(g.framed(packets, g.LT_ETHERNET), g.LT_ETHERNET)


_REFERENCE: dict[tuple[str, str], list[dict[str, Any]]] = {}


def reference(tmp_path_factory: pytest.TempPathFactory, family: str,
              close: str = "four_way") -> list[dict[str, Any]]:
    key = (family, close)
    if key not in _REFERENCE:
        c = conv(family, close=close)
        cap = read_bytes(tmp_path_factory.mktemp("ref"), plain_file(c.packets))
        _REFERENCE[key] = records(cap)
    return _REFERENCE[key]


# ---- the reference itself ------------------------------------------------------------


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_reference_conversation(tmp_path: Path, family: str) -> None:
    c = conv(family)
    cap = read_bytes(tmp_path, plain_file(c.packets), verify_checksums=True)
    recs = records(cap)
    assert len(cap) == len(recs) == 1
    r = recs[0]
    assert r["id"] == 0
    assert (r["client"], r["server"]) == (c.client, c.server)
    assert r["client"] == ("10.0.0.1:40000" if family == "v4" else "[2001:db8::1]:40000")
    assert (r["first_packet"], r["last_packet"]) == (1, 11)
    start, end = c.packets[0].ts_ns, c.packets[-1].ts_ns
    assert r["start"] == start / g.NS and r["end"] == end / g.NS
    assert r["duration"] == (end - start) / g.NS
    assert r["packets"] == {"client": 6, "server": 5} == c.count
    assert r["payload_bytes"] == {"client": 18, "server": 40} == c.payload
    assert r["conn_state"] == "SF"
    assert r["history"] == "ShADadFf"
    hs = r["handshake"]
    assert hs["complete"] and not hs["simultaneous_open"]
    assert (hs["client_isn"], hs["server_isn"]) == (1000, 0xFFFFFF00)
    assert hs["irtt"] == 2 * g.NS // 64 / g.NS
    assert hs["client_options"] == {"mss": 1460, "wscale": 7, "sack_permitted": True,
                                    "timestamps": True}
    assert hs["server_options"] == {"mss": 1400, "wscale": 9, "sack_permitted": True,
                                    "timestamps": True}
    assert r["close"]["kind"] == "four_way"
    assert r["close"]["initiator"] == "client"
    assert r["close"]["reset_by"] is None
    assert [s for _, s in r["states"]["client"]] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert [s for _, s in r["states"]["server"]] == [
        "LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert r["unexpected"] == []
    # every checksum pcapgen wrote is right
    assert cap.stats["bad_checksum"] == 0
    assert cap.stats["frames"] == cap.stats["tcp"] == cap.stats["packets_framed"] == 11


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_three_way_close(tmp_path: Path, family: str) -> None:
    c = conv(family, close="three_way")
    [r] = records(read_bytes(tmp_path, plain_file(c.packets)))
    assert r["close"]["kind"] == "three_way"
    assert r["conn_state"] == "SF"
    assert r["packets"] == {"client": 6, "server": 4}
    assert r["last_packet"] == 10


# ---- every container x link type ----------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str
    build: Callable[[list[g.Packet], int, str], bytes]  # (framed packets, linktype, order)
    byteorder: str = "<"
    gzip: bool = False


def _pcap(ns: bool) -> Callable[[list[g.Packet], int, str], bytes]:
    return lambda pk, lt, order: g.pcap_file(pk, lt, byteorder=order, nanosecond=ns)


def _ng(tsresol: int | None = None, tsoffset: int | None = None,
        block: str = "epb") -> Callable[[list[g.Packet], int, str], bytes]:
    return lambda pk, lt, order: g.pcapng_file(
        pk, [g.Interface(lt, tsresol=tsresol, tsoffset=tsoffset)], byteorder=order,
        block=block)


CONTAINERS = [
    Container("pcap-le-usec", _pcap(False)),
    Container("pcap-be-usec", _pcap(False), ">"),
    Container("pcap-le-nsec", _pcap(True)),
    Container("pcap-be-nsec", _pcap(True), ">"),
    Container("pcapng-le", _ng()),
    Container("pcapng-be", _ng(), ">"),
    Container("pcapng-le-tsresol6", _ng(6)),
    Container("pcapng-be-tsresol9", _ng(9), ">"),
    Container("pcapng-le-tsresol2^-20", _ng(0x80 | 20)),
    Container("pcapng-be-tsresol2^-30-tsoffset", _ng(0x80 | 30, 1_600_000_000), ">"),
    Container("pcapng-le-obsolete-pb", _ng(9, block="pb")),
    Container("pcap-le-usec.gz", _pcap(False), gzip=True),
    Container("pcap-be-nsec.gz", _pcap(True), ">", gzip=True),
    Container("pcapng-be-tsresol9.gz", _ng(9), ">", gzip=True),
]

LINKS = [
    g.Link(g.LT_ETHERNET),
    g.Link(g.LT_ETHERNET, vlans=((g.ETH_8021Q, 42),)),
    g.Link(g.LT_ETHERNET, vlans=((g.ETH_8021AD, 100), (g.ETH_8021Q, 200))),
    g.Link(g.LT_ETHERNET, vlans=((0x9100, 7), (g.ETH_8021Q, 8))),
    g.Link(g.LT_SLL),
    g.Link(g.LT_SLL2),
    g.Link(g.LT_RAW),
    g.Link(g.LT_RAW_12),
    g.Link(g.LT_RAW_14),
    g.Link(g.LT_IPV4),
    g.Link(g.LT_IPV6),
    g.Link(g.LT_NULL, af6=24),
    g.Link(g.LT_NULL, af6=28),
    g.Link(g.LT_NULL, af6=30),
    g.Link(g.LT_LOOP, af6=24),
]


def _matrix() -> list[Any]:
    out = []
    for family, version in (("v4", 4), ("v6", 6)):
        for link in LINKS:
            if not link.supports(version):
                continue
            if version == 4 and link.linktype in (g.LT_NULL, g.LT_LOOP) and link.af6 != 24:
                continue  # the IPv6 family value does not matter for IPv4
            for cont in CONTAINERS:
                out.append(pytest.param(family, link, cont,
                                        id=f"{family}-{link.name}-{cont.name}"))
    return out


@pytest.mark.parametrize(("family", "link", "container"), _matrix())
def test_same_conversation_everywhere(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                      family: str, link: g.Link, container: Container) -> None:
    c = conv(family)
    frames = g.framed(c.packets, link, container.byteorder)
    raw = container.build(frames, link.linktype, container.byteorder)
    data = g.gz(raw) if container.gzip else raw
    cap = read_bytes(tmp_path, data, "cap.gz" if container.gzip else "cap",
                     verify_checksums=True)
    recs = records(cap)
    assert recs == reference(tmp_path_factory, family)
    [r] = recs
    assert r["conn_state"] == "SF"
    assert r["close"]["kind"] == "four_way"
    assert r["packets"] == {"client": 6, "server": 5}
    assert r["payload_bytes"] == {"client": 18, "server": 40}
    assert r["start"] == c.packets[0].ts_ns / g.NS
    s = cap.stats
    assert (s["frames"], s["tcp"], s["packets_framed"]) == (11, 11, 11)
    assert s["bad_checksum"] == s["short"] == s["not_ip"] == s["not_tcp"] == 0
    assert s["bytes_framed"] == len(raw)  # offsets are in the (decompressed) file


@pytest.mark.parametrize("family", ["v4", "v6"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_bytes_framed_is_the_file_size(tmp_path: Path, family: str, nanosecond: bool) -> None:
    frames = g.framed(conv(family).packets, g.LT_ETHERNET)
    data = g.pcap_file(frames, g.LT_ETHERNET, nanosecond=nanosecond)
    cap = read_bytes(tmp_path, data)
    assert cap.stats["bytes_framed"] == len(data)
    ng = g.pcapng_file(frames, [g.Interface(g.LT_ETHERNET)])
    assert read_bytes(tmp_path, ng, "x.pcapng").stats["bytes_framed"] == len(ng)


@pytest.mark.parametrize("close", ["four_way", "three_way"])
def test_three_way_close_everywhere(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                    close: str) -> None:
    ref = reference(tmp_path_factory, "v6", close)
    frames = g.framed(conv("v6", close=close).packets, g.LT_SLL2, ">")
    data = g.pcapng_file(frames, [g.Interface(g.LT_SLL2, tsresol=9)], byteorder=">")
    assert records(read_bytes(tmp_path, data)) == ref
    assert ref[0]["close"]["kind"] == close


# ---- nanoseconds --------------------------------------------------------------------


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_nanosecond_timestamps_are_kept(tmp_path: Path, family: str) -> None:
    """Times with nanosecond digits: a nanosecond pcap and a pcapng with if_tsresol 9 keep
    them exactly (and agree with each other)."""
    start = 1_712_345_678 * g.NS + 123_456_789
    c = conv(family, start_ns=start, step_ns=1_000_001)
    frames = g.framed(c.packets, g.LT_ETHERNET)
    a = records(read_bytes(tmp_path, g.pcap_file(frames, 1, nanosecond=True), "a.pcap"))
    b = records(read_bytes(tmp_path, g.pcapng_file(frames, [g.Interface(1, tsresol=9)]),
                           "b.pcapng"))
    assert a == b
    [r] = a
    assert r["start"] == start / g.NS
    assert r["end"] == (start + 10 * 1_000_001) / g.NS
    assert r["duration"] == 10 * 1_000_001 / g.NS
    assert r["handshake"]["irtt"] == 2 * 1_000_001 / g.NS
    assert r["states"]["client"][1][0] == (start + 1_000_001) / g.NS


def test_microsecond_timestamps(tmp_path: Path) -> None:
    start = 1_712_345_678 * g.NS + 654_321_000
    c = conv("v4", start_ns=start, step_ns=7_000)
    frames = g.framed(c.packets, g.LT_RAW)
    a = records(read_bytes(tmp_path, g.pcap_file(frames, g.LT_RAW), "a.pcap"))
    b = records(read_bytes(tmp_path, g.pcapng_file(frames, [g.Interface(g.LT_RAW)]),
                           "b.pcapng"))
    assert a == b
    assert a[0]["start"] == start / g.NS
    assert a[0]["handshake"]["client_rtt"] == 7_000 / g.NS


# ---- link layer details ---------------------------------------------------------------


@pytest.mark.parametrize("family", ["v4", "v6"])
@pytest.mark.parametrize("vlans", [
    pytest.param(((g.ETH_8021Q, 1),), id="802.1Q"),
    pytest.param(((g.ETH_8021AD, 1000), (g.ETH_8021Q, 2)), id="QinQ-802.1ad"),
    pytest.param(((g.ETH_8021Q, 1000), (g.ETH_8021Q, 2)), id="QinQ-double-8100"),
    pytest.param(((g.ETH_8021AD, 1), (g.ETH_8021Q, 2), (g.ETH_8021Q, 3)), id="three-tags"),
])
def test_vlan_tags(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, family: str,
                   vlans: tuple[tuple[int, int], ...]) -> None:
    frames = g.framed(conv(family).packets, g.Link(g.LT_ETHERNET, vlans=vlans))
    cap = read_bytes(tmp_path, g.pcap_file(frames, g.LT_ETHERNET))
    assert records(cap) == reference(tmp_path_factory, family)


def test_vlan_tags_per_direction_differ(tmp_path: Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Both directions of one connection, each seen on a different VLAN (as on a router
    trunk), are still one connection: VLAN ids are not part of the key."""
    c = conv("v4")
    frames = [g.Packet(p.ts_ns, g.frame(g.Link(g.LT_ETHERNET, vlans=(
        (g.ETH_8021Q, 10 if fc else 20),)), p.data)) for p, fc in zip(c.packets,
                                                                      c.from_client)]
    assert records(read_bytes(tmp_path, g.pcap_file(frames, 1))) == reference(
        tmp_path_factory, "v4")


@pytest.mark.parametrize("options", [
    pytest.param(g.IPOPT_NOP * 4, id="nop4"),
    pytest.param(g.ipopt_router_alert(), id="router-alert"),
    pytest.param(g.ipopt_record_route(3), id="record-route"),
    pytest.param(g.ipopt_record_route(9), id="record-route-40-bytes"),
])
@pytest.mark.parametrize("linktype", [g.LT_ETHERNET, g.LT_RAW, g.LT_SLL])
def test_ipv4_options(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                      options: bytes, linktype: int) -> None:
    c = conv("v4", ip_options=options)
    assert all(p.data[0] & 0x0F > 5 for p in c.packets)
    frames = g.framed(c.packets, linktype)
    cap = read_bytes(tmp_path, g.pcap_file(frames, linktype), verify_checksums=True)
    assert records(cap) == reference(tmp_path_factory, "v4")


@pytest.mark.parametrize("ext", [
    pytest.param([g.hop_by_hop()], id="hop-by-hop"),
    pytest.param([g.dest_options()], id="dest-options"),
    pytest.param([g.hop_by_hop(), g.dest_options()], id="hbh+dest"),
    pytest.param([g.hop_by_hop(), g.routing(), g.dest_options()], id="hbh+routing+dest"),
    pytest.param([g.dest_options(b"\x1e\x14" + b"\0" * 20)], id="dest-options-24-bytes"),
    pytest.param([g.hop_by_hop(), g.fragment_header()], id="hbh+atomic-fragment"),
])
@pytest.mark.parametrize("linktype", [g.LT_ETHERNET, g.LT_IPV6, g.LT_NULL])
def test_ipv6_extension_headers(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                                ext: list[g.Ext], linktype: int) -> None:
    c = conv("v6", ext=ext)
    assert c.packets[0].data[6] == ext[0].proto
    frames = g.framed(c.packets, linktype)
    cap = read_bytes(tmp_path, g.pcap_file(frames, linktype), verify_checksums=True)
    assert records(cap) == reference(tmp_path_factory, "v6")
    assert cap.stats["tcp"] == 11


@pytest.mark.parametrize("family", ["v4", "v6"])
@pytest.mark.parametrize("trailer", [b"", b"\xde\xad\xbe\xef"], ids=["padding", "padding+fcs"])
def test_ethernet_padding_is_not_payload(tmp_path: Path,
                                         tmp_path_factory: pytest.TempPathFactory,
                                         family: str, trailer: bytes) -> None:
    c = conv(family)
    frames = g.framed(c.packets, g.Link(g.LT_ETHERNET, pad=True, trailer=trailer))
    if family == "v4":  # the pure ACKs and FINs (54-byte frames) did get padded
        assert len(frames[2].data) == 60 + len(trailer) > 14 + len(c.packets[2].data)
    cap = read_bytes(tmp_path, g.pcap_file(frames, g.LT_ETHERNET), verify_checksums=True)
    recs = records(cap)
    assert recs == reference(tmp_path_factory, family)
    assert recs[0]["payload_bytes"] == {"client": 18, "server": 40}


@pytest.mark.parametrize("family", ["v4", "v6"])
def test_padded_pure_acks_are_not_data(tmp_path: Path, family: str) -> None:
    """A connection without data, every frame padded to 60 bytes (plus an FCS): no payload,
    and Zeek's history has no 'D' / 'd'."""
    c = conv(family, request=b"", response=b"", options=False)
    assert len(c.packets) == 7
    frames = g.framed(c.packets, g.Link(g.LT_ETHERNET, pad=True, trailer=b"\x01\x02\x03\x04"))
    [r] = records(read_bytes(tmp_path, g.pcap_file(frames, 1), verify_checksums=True))
    assert r["payload_bytes"] == {"client": 0, "server": 0}
    assert "D" not in r["history"] and "d" not in r["history"]
    assert r["history"] == "ShAFaf"
    assert r["conn_state"] == "SF"
    assert r["close"]["kind"] == "four_way"


def test_pcap_link_type_with_fcs_flag(tmp_path: Path,
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """The link-type field's upper bits say "frames end with a 4-byte FCS"
    (0x10000000 | 2 << 29): still Ethernet, and the FCS is not payload."""
    frames = g.framed(conv("v4").packets, g.Link(g.LT_ETHERNET, trailer=b"\x11\x22\x33\x44"))
    data = g.pcap_file(frames, 0x50000000 | g.LT_ETHERNET)
    assert records(read_bytes(tmp_path, data)) == reference(tmp_path_factory, "v4")


def test_snaplen_cut_frames_count_ip_payload(tmp_path: Path,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    """Frames cut to a snapshot length still count the payload the IP header announces."""
    c = conv("v4")
    frames = g.framed(c.packets, g.LT_ETHERNET)
    cut = [g.Packet(p.ts_ns, p.data[:74], orig_len=len(p.data)) for p in frames]
    data = g.pcap_file(cut, g.LT_ETHERNET, snaplen=74)
    got, ref = records(read_bytes(tmp_path, data)), reference(tmp_path_factory, "v4")
    # Zeek's history alone differs: data it never saw, once acknowledged, is a content
    # gap (g/G), exactly as Zeek reports snaplen-cut traces (csrc/zeek.c ack_received).
    assert [r["history"].replace("g", "").replace("G", "") for r in got] == \
        [r["history"] for r in ref]
    assert all("g" in r["history"] for r in got)
    def without_history(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "history"} for r in recs]

    assert without_history(got) == without_history(ref)


# ---- skipped packets ----------------------------------------------------------------


def _with_extra(c: g.Conversation, extra: list[bytes], at: int) -> list[g.Packet]:
    """Ethernet frames of the conversation with ``extra`` frames inserted before index
    ``at`` (same timestamp as the packet they precede)."""
    frames = g.framed(c.packets, g.LT_ETHERNET)
    ts = frames[at].ts_ns
    return frames[:at] + [g.Packet(ts, x) for x in extra] + frames[at:]


def _shifted(ref: list[dict[str, Any]], first: int, last: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(json.dumps(ref))
    out[0]["first_packet"], out[0]["last_packet"] = first, last
    return out


def test_ipv4_fragments_are_counted_and_skipped(tmp_path: Path,
                                                tmp_path_factory: pytest.TempPathFactory
                                                ) -> None:
    s, d = g.addr("10.0.0.1"), g.addr("10.0.0.9")
    seg = g.tcp(s, d, 5555, 80, g.PSH | g.ACK, 1, 1, b"x" * 100)
    frags = g.ipv4_fragments(s, d, seg, 48)
    assert len(frags) == 3
    extra = [g.ethernet(f, g.ETH_IPV4) for f in frags]
    frames = _with_extra(conv("v4"), extra, 4)
    cap = read_bytes(tmp_path, g.pcap_file(frames, 1))
    assert cap.stats["fragments"] == 3
    assert cap.stats["frames"] == 14 and cap.stats["tcp"] == 11
    assert len(cap) == 1
    assert records(cap) == _shifted(reference(tmp_path_factory, "v4"), 1, 14)


def test_fragments_of_the_connection_itself_are_not_counted(tmp_path: Path) -> None:
    """The request goes out as two IPv4 fragments: neither is TCP analysed (no
    reassembly), so the client's data is missing but nothing else breaks."""
    c = conv("v4")
    s, d = g.addr("10.0.0.1"), g.addr("10.0.0.2")
    req = c.packets[3].data
    frags = g.ipv4_fragments(s, d, req[20:], 16)
    frames = g.framed(c.packets, g.LT_ETHERNET)
    frames[3:4] = [g.Packet(frames[3].ts_ns, g.ethernet(f, g.ETH_IPV4)) for f in frags]
    cap = read_bytes(tmp_path, g.pcap_file(frames, 1))
    assert cap.stats["fragments"] == len(frags)
    [r] = records(cap)
    assert r["packets"] == {"client": 5, "server": 5}
    assert r["payload_bytes"] == {"client": 0, "server": 40}


def test_ipv6_fragments_are_counted_and_skipped(tmp_path: Path,
                                                tmp_path_factory: pytest.TempPathFactory
                                                ) -> None:
    s, d = g.addr("2001:db8::1"), g.addr("2001:db8::9")
    seg = g.tcp(s, d, 5555, 80, g.PSH | g.ACK, 1, 1, b"y" * 64)
    first = g.ipv6(s, d, seg[:32], ext=[g.fragment_header(0, more=True)])
    second = g.ipv6(s, d, seg[32:], ext=[g.fragment_header(32, more=False)])
    extra = [g.ethernet(first, g.ETH_IPV6), g.ethernet(second, g.ETH_IPV6)]
    frames = _with_extra(conv("v6"), extra, 0)
    cap = read_bytes(tmp_path, g.pcap_file(frames, 1))
    assert cap.stats["fragments"] == 2
    assert records(cap) == _shifted(reference(tmp_path_factory, "v6"), 3, 13)


def test_non_tcp_packets_are_counted_and_skipped(tmp_path: Path,
                                                 tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    icmp = g.ipv4(g.addr("10.0.0.1"), g.addr("10.0.0.2"), b"\x08\x00\xf7\xff\0\0\0\0",
                  proto=1)
    extra = [
        g.arp_request(),
        g.ethernet(g.udp_packet("10.0.0.1", "10.0.0.53", 5353, 53, b"q" * 20), g.ETH_IPV4),
        g.ethernet(g.udp_packet("2001:db8::1", "2001:db8::53", 5353, 53, b"q"), g.ETH_IPV6),
        g.ethernet(icmp, g.ETH_IPV4),
        g.ethernet(b"\x00" * 30, 0x88CC),  # LLDP
    ]
    frames = _with_extra(conv("v4"), extra, 0)
    cap = read_bytes(tmp_path, g.pcap_file(frames, 1))
    s = cap.stats
    assert s["not_ip"] == 2  # ARP, LLDP
    assert s["not_tcp"] == 3  # UDP over IPv4 and IPv6, ICMP
    assert s["tcp"] == 11 and s["frames"] == 16
    assert records(cap) == _shifted(reference(tmp_path_factory, "v4"), 6, 16)


def test_short_and_bad_frames_are_counted(tmp_path: Path,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    tcp_ok = conv("v4").packets[0].data
    bad_offset = bytearray(tcp_ok)
    bad_offset[20 + 12] = 0x20  # TCP data offset 8 bytes < 20
    extra = [
        b"\x02\x00",                                     # shorter than Ethernet
        g.ethernet(tcp_ok[:30], g.ETH_IPV4),             # IPv4 + 10 bytes of TCP
        g.ethernet(bytes(bad_offset), g.ETH_IPV4),
    ]
    frames = _with_extra(conv("v4"), extra, 11 - 1)
    cap = read_bytes(tmp_path, g.pcap_file(frames, 1))
    assert cap.stats["short"] == 2
    assert cap.stats["bad_tcp_header"] == 1
    assert cap.stats["tcp"] == 11
    assert records(cap) == _shifted(reference(tmp_path_factory, "v4"), 1, 14)


# ---- pcapng specifics -----------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_pcapng_two_interfaces(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                               byteorder: str) -> None:
    """Client packets on an Ethernet interface in microseconds, server packets on a raw-IP
    interface in nanoseconds: one connection, the same records."""
    c = conv("v4")
    ifaces = [g.Interface(g.LT_ETHERNET, tsresol=6, name="eth0"),
              g.Interface(g.LT_RAW, tsresol=9, name="tun0")]
    pk = [g.Packet(p.ts_ns, g.frame(ifaces[0 if fc else 1].linktype, p.data, byteorder),
                   0 if fc else 1) for p, fc in zip(c.packets, c.from_client)]
    cap = read_bytes(tmp_path, g.pcapng_file(pk, ifaces, byteorder), "x.pcapng")
    assert records(cap) == reference(tmp_path_factory, "v4")


def test_pcapng_many_interfaces_resolutions_and_offsets(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Four interfaces, four link types, four time bases (µs, ns, 2^-20 s with an offset,
    ms-free binary 2^-10); packets spread over them round robin."""
    c = conv("v6")
    ifaces = [g.Interface(g.LT_ETHERNET),
              g.Interface(g.LT_IPV6, tsresol=9),
              g.Interface(g.LT_SLL2, tsresol=0x80 | 20, tsoffset=1_000_000_000),
              g.Interface(g.LT_NULL, tsresol=0x80 | 6)]
    pk = []
    for k, p in enumerate(c.packets):
        i = k % len(ifaces)
        pk.append(g.Packet(p.ts_ns, g.frame(g.Link(ifaces[i].linktype, af6=30), p.data), i))
    cap = read_bytes(tmp_path, g.pcapng_file(pk, ifaces), "x.pcapng")
    assert records(cap) == reference(tmp_path_factory, "v6")


def test_pcapng_nanosecond_and_microsecond_interfaces(tmp_path: Path) -> None:
    """Nanosecond digits survive on the if_tsresol 9 interface, and microsecond times on
    the default one, in the same file."""
    start = 1_712_345_678 * g.NS + 111_222_333
    c = conv("v4", start_ns=start, step_ns=1_000)  # the client's times are ...333 + k µs
    # the server's packets are sent on the µs interface: round their times to µs
    pk = []
    for p, fc in zip(c.packets, c.from_client):
        ts = p.ts_ns if fc else p.ts_ns - p.ts_ns % 1000
        pk.append(g.Packet(ts, g.frame(g.LT_RAW, p.data), 1 if fc else 0))
    ifaces = [g.Interface(g.LT_RAW, tsresol=6), g.Interface(g.LT_RAW, tsresol=9)]
    [r] = records(read_bytes(tmp_path, g.pcapng_file(pk, ifaces), "x.pcapng"))
    assert r["start"] == start / g.NS
    assert r["end"] == pk[-1].ts_ns / g.NS
    assert r["handshake"]["server_rtt"] == (pk[1].ts_ns - pk[0].ts_ns) / g.NS
    assert r["conn_state"] == "SF"


def test_pcapng_sections_with_different_byte_orders(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second section (big-endian, its own interfaces) continues the connection."""
    c = conv("v4")
    first = g.pcapng_file(g.framed(c.packets[:5], g.LT_ETHERNET),
                          [g.Interface(g.LT_ETHERNET)], "<")
    second = g.pcapng_file(
        [g.Packet(p.ts_ns, g.frame(g.LT_RAW, p.data), 1) for p in c.packets[5:]],
        [g.Interface(g.LT_LOOP), g.Interface(g.LT_RAW, tsresol=9)], ">")
    cap = read_bytes(tmp_path, first + second, "x.pcapng")
    assert records(cap) == reference(tmp_path_factory, "v4")


def test_pcapng_unknown_blocks_and_options_are_skipped(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    c = conv("v4")
    iface = g.Interface(g.LT_ETHERNET, tsresol=9)
    blocks = [g.shb("<", [(1, b"a comment"), (2, b"x86_64"), (3, b"Linux")]), g.idb(iface)]
    epb_opts = [(1, b"packet comment"), (2, (1).to_bytes(4, "little"))]  # epb_flags
    for k, p in enumerate(g.framed(c.packets, g.LT_ETHERNET)):
        blocks.append(g.epb(p, iface, "<", epb_opts))
        if k == 2:
            blocks.append(g.ng_block(4, b"\x00\x00\x00\x00"))          # empty NRB
            blocks.append(g.ng_block(5, b"\0" * 12))                    # ISB
            blocks.append(g.ng_block(0x0BAD, b"custom"))
            blocks.append(g.ng_block(0x0000000A, b"\0" * 16))           # DSB-like
    cap = read_bytes(tmp_path, b"".join(blocks), "x.pcapng")
    assert records(cap) == reference(tmp_path_factory, "v4")


def test_pcapng_simple_packet_blocks(tmp_path: Path,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    """SPBs carry no timestamp: everything but the times matches."""
    c = conv("v4")
    data = g.pcapng_file(g.framed(c.packets, g.LT_ETHERNET), [g.Interface(g.LT_ETHERNET)],
                         block="spb")
    [r] = records(read_bytes(tmp_path, data, "x.pcapng"))
    [ref] = reference(tmp_path_factory, "v4")
    for key in ("client", "server", "first_packet", "last_packet", "packets",
                "payload_bytes", "conn_state", "history", "close"):
        assert r[key] == ref[key], key
    assert r["start"] == r["end"] == 0


@pytest.mark.parametrize(("start", "step"), [(0, g.NS // 64), (0, 0)],
                         ids=["epoch-0-start", "all-times-0"])
def test_timestamps_at_the_epoch(tmp_path: Path, start: int, step: int) -> None:
    """A capture whose clock starts at 0 (crafted traces, anonymised ones, SPB-only
    pcapng): time 0 is a time like any other."""
    c = conv("v4", start_ns=start, step_ns=step)
    [r] = records(read_bytes(tmp_path, g.pcap_file(g.framed(c.packets, g.LT_RAW), g.LT_RAW)))
    assert r["start"] == 0.0
    assert r["end"] == 10 * step / g.NS
    assert r["conn_state"] == "SF"
    assert r["handshake"]["complete"] is True
    assert r["handshake"]["irtt"] == 2 * step / g.NS
    assert r["handshake"]["server_rtt"] == step / g.NS
    assert r["close"]["kind"] == "four_way"


# ---- gzip -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["v4", "v6"])
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, family: str,
              kind: str) -> None:
    frames = g.framed(conv(family).packets, g.LT_SLL)
    data = (g.pcap_file(frames, g.LT_SLL) if kind == "pcap" else
            g.pcapng_file(frames, [g.Interface(g.LT_SLL)]))
    plain = read_bytes(tmp_path, data, "plain")
    packed = read_bytes(tmp_path, g.gz(data), "packed.gz")
    assert records(packed) == records(plain) == reference(tmp_path_factory, family)
    assert packed.stats["bytes_framed"] == len(data)  # offsets are in the decompressed file


def test_gzip_large_capture(tmp_path: Path) -> None:
    """Many connections, bigger than one read chunk once decompressed."""
    pk: list[g.Packet] = []
    n = 1500
    for i in range(n):
        c = g.conversation(("10.1.%d.%d" % (i // 250, i % 250 + 1), 1024 + i),
                           ("10.2.0.1", 443), start_ns=1_700_000_000 * g.NS + i * g.NS,
                           response=b"r" * 2500)
        pk += g.framed(c.packets, g.LT_ETHERNET)
    data = g.pcap_file(pk, g.LT_ETHERNET)
    assert len(data) > 4 << 20
    cap = read_bytes(tmp_path, g.gz(data), "big.pcap.gz")
    recs = records(cap)
    assert len(recs) == n
    assert all(r["conn_state"] == "SF" and r["close"]["kind"] == "four_way" for r in recs)
    assert cap.stats["bytes_framed"] == len(data)


# ---- the port filter ----------------------------------------------------------------


def _two_services() -> bytes:
    a = g.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
    b = g.conversation(("10.0.0.1", 40001), ("10.0.0.2", 443),
                       start_ns=a.packets[0].ts_ns + 1_000_000)
    pk = sorted(a.packets + b.packets, key=lambda p: p.ts_ns)
    return g.pcap_file(g.framed(pk, g.LT_ETHERNET), g.LT_ETHERNET)


@pytest.mark.parametrize(("port", "servers"), [
    (None, ["10.0.0.2:80", "10.0.0.2:443"]),
    (443, ["10.0.0.2:443"]),
    (80, ["10.0.0.2:80"]),
    (40001, ["10.0.0.2:443"]),
    (22, []),
])
def test_port_filter(tmp_path: Path, port: int | None, servers: list[str]) -> None:
    cap = read_bytes(tmp_path, _two_services(), port=port)
    recs = records(cap)
    assert [r["server"] for r in recs] == servers
    for r in recs:
        assert r["conn_state"] == "SF" and r["packets"] == {"client": 6, "server": 5}
    assert cap.stats["skipped_port"] == 22 - 11 * len(servers)


@pytest.mark.parametrize(("port", "servers"), [(443, ["10.0.0.2:443"]), (None, 2)])
def test_port_filter_cli(tmp_path: Path, port: int | None, servers: Any) -> None:
    path = tmp_path / "two.pcap"
    path.write_bytes(_two_services())
    args = [sys.executable, "-m", "analyzer", "read", str(path), "--format", "jsonl"]
    if port is not None:
        args += ["--port", str(port)]
    p = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    if isinstance(servers, int):
        assert len(lines) == servers
    else:
        assert [x["server"] for x in lines] == servers


# ---- the real corpus -----------------------------------------------------------------


def _corpus_files() -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CORPUS} is absent"),
                             id="no-corpus")]
    return [pytest.param(p, id=p.name) for p in sorted(CORPUS.iterdir()) if p.is_file()]


@pytest.mark.parametrize("trace", _corpus_files())
def test_corpus_trace_loads(trace: Path) -> None:
    cap = analyzer.read(str(trace))
    assert cap.error is None, cap.error
    assert cap.warnings == []
    assert len(cap) >= 1, f"no TCP connection found; stats {cap.stats}"
    recs = list(cap.records())
    assert len(recs) == len(cap)
    for r in recs:
        assert 1 <= r["first_packet"] <= r["last_packet"] <= cap.stats["frames"]
        assert r["start"] <= r["end"]
    assert cap.stats["packets_framed"] == cap.stats["frames"]
    assert cap.stats["bytes_framed"] == os.path.getsize(trace)
