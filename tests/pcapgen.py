"""A tiny, dependency-free writer of hand-made packets and capture files, for tests.

Layers, each a plain function returning bytes:

* TCP (``tcp``) with a correct checksum and optional options (``tcp_options``: MSS, window
  scale, SACK-permitted, timestamps); UDP (``udp``).
* IPv4 (``ipv4``, optional IP options, header checksum; ``ipv4_fragments`` splits one
  datagram) and IPv6 (``ipv6``, optional extension headers: ``hop_by_hop``,
  ``dest_options``, ``routing``, ``fragment_header``).
* Link layers (``frame``): Ethernet with optional 802.1Q / 802.1ad (QinQ) tags and
  padding, Linux SLL (113), SLL2 (276), raw IP (101, 228, 229), BSD NULL (0, the file's
  byte order) and LOOP (108, network order).
* Files: classic pcap (``pcap_file``: either byte order, micro- or nanosecond magic) and
  pcapng (``pcapng_file``: SHB, several IDBs with their own link type, ``if_tsresol`` and
  ``if_tsoffset``, then EPB, SPB or the obsolete PB), optionally gzip-compressed (``gz``).

``conversation`` builds a complete normal TCP connection between two endpoints.
Timestamps are integer nanoseconds everywhere.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# LINKTYPE_* values
LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = (
    0, 1, 101, 108, 113, 228, 229, 276)
LT_RAW_12, LT_RAW_14 = 12, 14  # DLT_RAW's value on some BSDs (12) and OpenBSD (14)
RAW_TYPES = (LT_RAW, LT_RAW_12, LT_RAW_14, LT_IPV4, LT_IPV6)

NS = 1_000_000_000


# ---- checksums and addresses ------------------------------------------------------------


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def addr(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


# ---- transport ------------------------------------------------------------------------


def tcp_options(mss: int | None = None, wscale: int | None = None,
                sack_permitted: bool = False,
                timestamps: tuple[int, int] | None = None) -> bytes:
    """TCP options in the usual Linux layout, padded with NOPs to a multiple of 4."""
    out = b""
    if mss is not None:
        out += struct.pack("!BBH", 2, 4, mss)
    if sack_permitted:
        out += b"\x04\x02"
    if timestamps is not None:
        out += struct.pack("!BBII", 8, 10, *timestamps)
    if wscale is not None:
        out += b"\x01" + struct.pack("!BBB", 3, 3, wscale)
    while len(out) % 4:
        out = b"\x01" + out
    return out


def tcp(src: bytes, dst: bytes, sport: int, dport: int, flags: int, seq: int = 0,
        ack: int = 0, payload: bytes = b"", window: int = 65535, options: bytes = b"",
        urgent: int = 0, bad_checksum: bool = False) -> bytes:
    """A TCP segment (header + payload) with its checksum over the IPv4/IPv6 pseudo-header."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset << 4, flags, window, 0, urgent) + options
    seg = header + payload
    csum = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    if bad_checksum:
        csum ^= 0x5A5A
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes = b"") -> bytes:
    length = 8 + len(payload)
    dgram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(_pseudo(src, dst, 17, length) + dgram) or 0xFFFF
    return dgram[:6] + struct.pack("!H", csum) + dgram[8:]


# ---- IPv4 -----------------------------------------------------------------------------


def ipv4(src: bytes, dst: bytes, payload: bytes, proto: int = 6, ident: int = 1,
         ttl: int = 64, options: bytes = b"", dont_fragment: bool = True,
         more_fragments: bool = False, frag_offset: int = 0,
         total_length: int | None = None) -> bytes:
    """An IPv4 datagram. ``options`` are padded with End-of-Options to a multiple of 4;
    ``frag_offset`` is in bytes (a multiple of 8)."""
    if len(options) % 4:
        options += b"\0" * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0)
    frag = flags | (frag_offset // 8)
    total = 20 + len(options) + len(payload) if total_length is None else total_length
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, frag, ttl, proto, 0,
                         src, dst) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv4_fragments(src: bytes, dst: bytes, payload: bytes, size: int, proto: int = 6,
                   ident: int = 7) -> list[bytes]:
    """``payload`` (a whole transport segment) split into IPv4 fragments of ``size`` bytes
    (a multiple of 8) of data each."""
    assert size % 8 == 0
    pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
    return [ipv4(src, dst, piece, proto=proto, ident=ident, dont_fragment=False,
                 more_fragments=k < len(pieces) - 1, frag_offset=k * size)
            for k, piece in enumerate(pieces)]


# IPv4 options
IPOPT_NOP = b"\x01"


def ipopt_record_route(slots: int = 3) -> bytes:
    return bytes([7, 3 + 4 * slots, 4]) + b"\0" * (4 * slots)


def ipopt_router_alert() -> bytes:
    return b"\x94\x04\x00\x00"


# ---- IPv6 -----------------------------------------------------------------------------


@dataclass
class Ext:
    """One IPv6 extension header: its protocol number and its body after the two-byte
    (next header, length) prefix (the length field is computed)."""

    proto: int
    body: bytes


def _tlv_options(body: bytes) -> bytes:
    """Pad hop-by-hop / destination option TLVs to a 8n+6 body with PadN / Pad1."""
    need = (-(len(body) + 2)) % 8
    if need == 1:
        body += b"\x00"
    elif need:
        body += bytes([1, need - 2]) + b"\0" * (need - 2)
    return body


def hop_by_hop(options: bytes = b"\x05\x02\x00\x00") -> Ext:  # router alert (MLD)
    return Ext(0, _tlv_options(options))


def dest_options(options: bytes = b"") -> Ext:
    return Ext(60, _tlv_options(options or b"\x01\x0c" + b"\0" * 12))


def routing(segments_left: int = 0, addresses: Sequence[bytes] = ()) -> Ext:
    """A type 0 (deprecated, ignored when segments_left is 0) routing header."""
    return Ext(43, bytes([0, segments_left]) + b"\0" * 4 + b"".join(addresses))


def fragment_header(offset: int = 0, more: bool = False, ident: int = 0x1234) -> Ext:
    """An IPv6 fragment header; offset 0 and no more fragments is an atomic fragment."""
    return Ext(44, struct.pack("!HI", (offset // 8) << 3 | int(more), ident))


def _ext_bytes(exts: Sequence[Ext], final: int) -> tuple[int, bytes]:
    """The chain's first next-header value and the headers themselves."""
    out = b""
    nxt = final
    for ext in reversed(exts):
        if ext.proto == 44:
            hdr = bytes([nxt, 0]) + ext.body
            assert len(hdr) == 8
        else:
            assert (len(ext.body) + 2) % 8 == 0, "extension header must be 8n bytes"
            hdr = bytes([nxt, (len(ext.body) + 2) // 8 - 1]) + ext.body
        out = hdr + out
        nxt = ext.proto
    return nxt, out


def ipv6(src: bytes, dst: bytes, payload: bytes, proto: int = 6, hop_limit: int = 64,
         ext: Sequence[Ext] = (), flow: int = 0) -> bytes:
    first, headers = _ext_bytes(ext, proto)
    body = headers + payload
    return struct.pack("!IHBB16s16s", 6 << 28 | flow, len(body), first, hop_limit, src,
                       dst) + body


# ---- TCP/IP packet in one call ----------------------------------------------------------


def tcp_packet(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 0,
               ack: int = 0, payload: bytes = b"", window: int = 65535,
               options: bytes = b"", ip_options: bytes = b"", ext: Sequence[Ext] = (),
               bad_checksum: bool = False) -> bytes:
    """An IPv4 or IPv6 packet (chosen by the address) carrying one TCP segment."""
    s, d = addr(src), addr(dst)
    seg = tcp(s, d, sport, dport, flags, seq, ack, payload, window, options,
              bad_checksum=bad_checksum)
    if len(s) == 4:
        assert not ext
        return ipv4(s, d, seg, options=ip_options)
    assert not ip_options
    return ipv6(s, d, seg, ext=ext)


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes = b"") -> bytes:
    s, d = addr(src), addr(dst)
    dgram = udp(s, d, sport, dport, payload)
    return ipv4(s, d, dgram, proto=17) if len(s) == 4 else ipv6(s, d, dgram, proto=17)


def ip_version(packet: bytes) -> int:
    return packet[0] >> 4


# ---- link layers ------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_8021Q, ETH_8021AD = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8


def ethernet(payload: bytes, ethertype: int, vlans: Sequence[tuple[int, int]] = (),
             src: bytes = MAC_A, dst: bytes = MAC_B, pad: bool = False,
             trailer: bytes = b"") -> bytes:
    """An Ethernet II frame. ``vlans`` are (TPID, VLAN id) tags, outermost first, e.g.
    ``[(0x88A8, 100), (0x8100, 200)]`` for QinQ. ``pad`` pads to the 60-byte minimum
    (with non-zero junk, as some NICs do); ``trailer`` is appended after that (an FCS)."""
    head = dst + src
    for tpid, vid in vlans:
        head += struct.pack("!HH", tpid, vid & 0x0FFF)
    frame = head + struct.pack("!H", ethertype) + payload
    if pad and len(frame) < 60:
        frame += bytes([0xA5]) * (60 - len(frame))
    return frame + trailer


def arp_request(sender: str = "10.0.0.1", target: str = "10.0.0.2") -> bytes:
    """An Ethernet frame carrying an ARP who-has."""
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_A, addr(sender),
                       b"\0" * 6, addr(target))
    return ethernet(body, ETH_ARP, dst=b"\xff" * 6, pad=True)


def sll(payload: bytes, ethertype: int, packet_type: int = 0) -> bytes:
    """Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16-byte header)."""
    return struct.pack("!HHH8sH", packet_type, 1, 6, MAC_A + b"\0\0", ethertype) + payload


def sll2(payload: bytes, ethertype: int, ifindex: int = 1, packet_type: int = 0) -> bytes:
    """Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20-byte header)."""
    return struct.pack("!HHIHBB8s", ethertype, 0, ifindex, 1, packet_type, 6,
                       MAC_A + b"\0\0") + payload


AF_INET = 2
AF_INET6_BSD = (24, 28, 30)  # NetBSD/OpenBSD, FreeBSD, macOS


def null(payload: bytes, family: int, byteorder: str = "<") -> bytes:
    """BSD loopback (LINKTYPE_NULL): a 4-byte address family in the capturing host's byte
    order (the file's byte order)."""
    return struct.pack(byteorder + "I", family) + payload


def loop(payload: bytes, family: int) -> bytes:
    """OpenBSD loopback (LINKTYPE_LOOP): the address family in network byte order."""
    return struct.pack("!I", family) + payload


@dataclass(frozen=True)
class Link:
    """How to wrap an IP packet: a link type plus its options."""

    linktype: int
    vlans: tuple[tuple[int, int], ...] = ()
    pad: bool = False
    trailer: bytes = b""
    af6: int = 24  # for NULL / LOOP

    @property
    def name(self) -> str:
        names = {LT_NULL: "null", LT_ETHERNET: "eth", LT_RAW: "raw", LT_LOOP: "loop",
                 LT_SLL: "sll", LT_IPV4: "ipv4", LT_IPV6: "ipv6", LT_SLL2: "sll2",
                 LT_RAW_12: "raw12", LT_RAW_14: "raw14"}
        name = names.get(self.linktype, str(self.linktype))
        if self.vlans:
            name += "-" + "-".join(f"{tpid:04x}.{vid}" for tpid, vid in self.vlans)
        if self.linktype in (LT_NULL, LT_LOOP):
            name += f"-af6={self.af6}"
        return name

    def supports(self, version: int) -> bool:
        return not ((self.linktype == LT_IPV4 and version == 6) or
                    (self.linktype == LT_IPV6 and version == 4))


def frame(link: Link | int, packet: bytes, byteorder: str = "<") -> bytes:
    """``packet`` (an IPv4 or IPv6 packet) wrapped in ``link``'s link layer.
    ``byteorder`` is the file's, used by LINKTYPE_NULL."""
    if isinstance(link, int):
        link = Link(link)
    version = ip_version(packet)
    ethertype = ETH_IPV6 if version == 6 else ETH_IPV4
    family = link.af6 if version == 6 else AF_INET
    lt = link.linktype
    if lt == LT_ETHERNET:
        return ethernet(packet, ethertype, link.vlans, pad=link.pad, trailer=link.trailer)
    if lt == LT_SLL:
        return sll(packet, ethertype)
    if lt == LT_SLL2:
        return sll2(packet, ethertype)
    if lt in RAW_TYPES:
        assert link.supports(version), f"link type {lt} cannot carry IPv{version}"
        return packet
    if lt == LT_NULL:
        return null(packet, family, byteorder)
    if lt == LT_LOOP:
        return loop(packet, family)
    raise ValueError(f"unknown link type {lt}")


# ---- capture files ------------------------------------------------------------------------


@dataclass
class Packet:
    """One captured frame: its time (integer ns), bytes, and pcapng interface id."""

    ts_ns: int
    data: bytes
    iface: int = 0
    orig_len: int | None = None


def pcap_header(linktype: int, byteorder: str = "<", nanosecond: bool = False,
                snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    return struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(pkt: Packet, byteorder: str = "<", nanosecond: bool = False,
                caplen: int | None = None) -> bytes:
    units = NS if nanosecond else 1_000_000
    sec, frac = divmod(pkt.ts_ns * units // NS, units)
    assert (sec * units + frac) * (NS // units) == pkt.ts_ns, \
        f"{pkt.ts_ns} ns is not representable in this file"
    incl = len(pkt.data) if caplen is None else caplen
    orig = pkt.orig_len if pkt.orig_len is not None else len(pkt.data)
    return struct.pack(byteorder + "IIII", sec, frac, incl, orig) + pkt.data


def pcap_file(packets: Iterable[Packet], linktype: int, byteorder: str = "<",
              nanosecond: bool = False, snaplen: int = 262144) -> bytes:
    """A classic pcap file: ``byteorder`` "<" or ">", micro- or nanosecond magic."""
    out = [pcap_header(linktype, byteorder, nanosecond, snaplen)]
    out += [pcap_record(p, byteorder, nanosecond) for p in packets]
    return b"".join(out)


def record_offsets(packets: Sequence[Packet]) -> list[int]:
    """Byte offset of each record in ``pcap_file(packets, ...)``."""
    offsets, pos = [], 24
    for p in packets:
        offsets.append(pos)
        pos += 16 + len(p.data)
    return offsets


# pcapng ---------------------------------------------------------------------------------


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def ng_option(code: int, value: bytes, byteorder: str = "<") -> bytes:
    return struct.pack(byteorder + "HH", code, len(value)) + _pad4(value)


def ng_options(opts: Sequence[tuple[int, bytes]], byteorder: str = "<") -> bytes:
    if not opts:
        return b""
    return b"".join(ng_option(c, v, byteorder) for c, v in opts) + ng_option(0, b"",
                                                                            byteorder)


def ng_block(btype: int, body: bytes, byteorder: str = "<") -> bytes:
    body = _pad4(body)
    length = 12 + len(body)
    return struct.pack(byteorder + "II", btype, length) + body + struct.pack(
        byteorder + "I", length)


def shb(byteorder: str = "<", options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    body = struct.pack(byteorder + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return ng_block(0x0A0D0D0A, body + ng_options(options, byteorder), byteorder)


@dataclass(frozen=True)
class Interface:
    """A pcapng interface: link type, snaplen and timestamp resolution/offset.

    ``tsresol`` is the raw if_tsresol byte: 6 = microseconds (the default when None),
    9 = nanoseconds, 0x80 | n = 2**-n seconds. ``tsoffset`` is if_tsoffset in seconds."""

    linktype: int
    tsresol: int | None = None
    tsoffset: int | None = None
    snaplen: int = 262144
    name: str | None = None

    @property
    def units(self) -> int:
        r = 6 if self.tsresol is None else self.tsresol
        return 1 << (r & 0x7F) if r & 0x80 else 10 ** r

    def ticks(self, ts_ns: int) -> int:
        """``ts_ns`` in this interface's units (asserting it is exactly representable)."""
        t = ts_ns - (self.tsoffset or 0) * NS
        ticks, rem = divmod(t * self.units, NS)
        assert rem == 0, f"{ts_ns} ns is not exactly representable with {self}"
        return ticks


def idb(iface: Interface, byteorder: str = "<") -> bytes:
    opts: list[tuple[int, bytes]] = []
    if iface.name is not None:
        opts.append((2, iface.name.encode()))
    if iface.tsresol is not None:
        opts.append((9, bytes([iface.tsresol])))
    if iface.tsoffset is not None:
        opts.append((14, struct.pack(byteorder + "q", iface.tsoffset)))
    body = struct.pack(byteorder + "HHI", iface.linktype, 0, iface.snaplen)
    return ng_block(1, body + ng_options(opts, byteorder), byteorder)


def epb(pkt: Packet, iface: Interface, byteorder: str = "<",
        options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    ticks = iface.ticks(pkt.ts_ns)
    orig = pkt.orig_len if pkt.orig_len is not None else len(pkt.data)
    body = struct.pack(byteorder + "IIIII", pkt.iface, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(pkt.data), orig) + _pad4(pkt.data)
    return ng_block(6, body + ng_options(options, byteorder), byteorder)


def obsolete_pb(pkt: Packet, iface: Interface, byteorder: str = "<") -> bytes:
    ticks = iface.ticks(pkt.ts_ns)
    body = struct.pack(byteorder + "HHIIII", pkt.iface, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(pkt.data), len(pkt.data)) + _pad4(pkt.data)
    return ng_block(2, body, byteorder)


def spb(pkt: Packet, byteorder: str = "<") -> bytes:
    orig = pkt.orig_len if pkt.orig_len is not None else len(pkt.data)
    return ng_block(3, struct.pack(byteorder + "I", orig) + _pad4(pkt.data), byteorder)


def pcapng_file(packets: Iterable[Packet], interfaces: Sequence[Interface],
                byteorder: str = "<", block: str = "epb",
                epb_options: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """One pcapng section: SHB, an IDB per interface, then one packet block per packet
    (``block``: "epb", "spb" (interface 0 only, no timestamps) or "pb")."""
    out = [shb(byteorder, [(4, b"pcapgen")])]
    out += [idb(i, byteorder) for i in interfaces]
    for p in packets:
        iface = interfaces[p.iface]
        if block == "epb":
            out.append(epb(p, iface, byteorder, epb_options))
        elif block == "spb":
            assert p.iface == 0
            out.append(spb(p, byteorder))
        elif block == "pb":
            out.append(obsolete_pb(p, iface, byteorder))
        else:
            raise ValueError(block)
    return b"".join(out)


def gz(data: bytes, flush_every: Sequence[int] = ()) -> bytes:
    """gzip-compress ``data``. With ``flush_every`` (byte offsets), a full flush is done at
    each offset, so a stream cut after it still decompresses up to there."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        pos = 0
        for cut in flush_every:
            g.write(data[pos:cut])
            g.flush(zlib.Z_FULL_FLUSH)
            pos = cut
        g.write(data[pos:])
    return buf.getvalue()


# ---- a whole conversation ----------------------------------------------------------------


@dataclass
class Conversation:
    """A normal TCP connection as IP packets, with what the analyzer should report."""

    packets: list[Packet]          # IP packets (no link layer), ts in ns
    from_client: list[bool]
    client: str                    # "ip:port" / "[v6]:port", as in records
    server: str
    payload: dict[str, int] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    close_kind: str = "four_way"


def endpoint_text(ip: str, port: int) -> str:
    return f"[{ipaddress.ip_address(ip)}]:{port}" if ":" in ip else \
        f"{ipaddress.ip_address(ip)}:{port}"


def conversation(client: tuple[str, int] = ("10.0.0.1", 40000),
                 server: tuple[str, int] = ("10.0.0.2", 80),
                 start_ns: int = 1_700_000_000 * NS + NS // 8,
                 step_ns: int = NS // 64,
                 request: bytes = b"GET / HTTP/1.0\r\n\r\n",
                 response: bytes = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
                 client_isn: int = 1000, server_isn: int = 0xFFFFFF00,
                 options: bool = True, close: str = "four_way",
                 ip_options: bytes = b"", ext: Sequence[Ext] = ()) -> Conversation:
    """SYN, SYN-ACK, ACK, request, ACK, response, ACK, then the close:

    * ``four_way``: client FIN/ACK, server ACK, server FIN/ACK, client ACK (11 packets);
    * ``three_way``: client FIN/ACK, server FIN/ACK (acking it), client ACK (10 packets).

    An empty ``request`` / ``response`` leaves out that data packet and its ACK.

    The default times (1/64 s steps) are exact in microseconds, nanoseconds and binary
    fractions, so every file format stores them without rounding. The server ISN is
    near 2**32 so sequence numbers wrap during the connection.
    """
    (cip, cport), (sip, sport) = client, server
    c, s = client_isn, server_isn
    m = 1 << 32
    copts = tcp_options(1460, 7, True, (100, 0)) if options else b""
    sopts = tcp_options(1400, 9, True, (200, 100)) if options else b""
    rq, rs = len(request), len(response)
    script: list[tuple[bool, int, int, int, bytes, bytes]] = [
        (True, SYN, c, 0, b"", copts),
        (False, SYN | ACK, s, c + 1, b"", sopts),
        (True, ACK, c + 1, s + 1, b"", b""),
    ]
    if request:  # the request and its ACK
        script += [(True, PSH | ACK, c + 1, s + 1, request, b""),
                   (False, ACK, s + 1, c + 1 + rq, b"", b"")]
    if response:  # the response and its ACK
        script += [(False, PSH | ACK, s + 1, c + 1 + rq, response, b""),
                   (True, ACK, c + 1 + rq, s + 1 + rs, b"", b"")]
    script.append((True, FIN | ACK, c + 1 + rq, s + 1 + rs, b"", b""))
    if close == "four_way":
        script += [
            (False, ACK, s + 1 + rs, c + 2 + rq, b"", b""),
            (False, FIN | ACK, s + 1 + rs, c + 2 + rq, b"", b""),
            (True, ACK, c + 2 + rq, s + 2 + rs, b"", b""),
        ]
    elif close == "three_way":
        script += [
            (False, FIN | ACK, s + 1 + rs, c + 2 + rq, b"", b""),
            (True, ACK, c + 2 + rq, s + 2 + rs, b"", b""),
        ]
    else:
        raise ValueError(close)
    packets, dirs = [], []
    for k, (fc, flags, seq, ack, data, opts) in enumerate(script):
        src, dst = (client, server) if fc else (server, client)
        ip = tcp_packet(src[0], dst[0], src[1], dst[1], flags, seq % m, ack % m, data,
                        options=opts, ip_options=ip_options, ext=ext)
        packets.append(Packet(start_ns + k * step_ns, ip))
        dirs.append(fc)
    return Conversation(
        packets=packets, from_client=dirs, client=endpoint_text(cip, cport),
        server=endpoint_text(sip, sport), payload={"client": rq, "server": rs},
        count={"client": dirs.count(True), "server": dirs.count(False)}, close_kind=close)


def framed(packets: Iterable[Packet], link: Link | int, byteorder: str = "<") -> list[Packet]:
    """IP packets wrapped in a link layer (same times and interface ids)."""
    return [Packet(p.ts_ns, frame(link, p.data, byteorder), p.iface, None) for p in packets]
