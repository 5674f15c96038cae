"""Write the seed corpus (fuzz/seeds/) from the bundled captures: each capture read as a
file (plain and gzip), fed live in chunks, and its TCP segments as feed_segment calls
(see harness.py for the input layout); plus small generated captures of the link types
and encapsulations the bundled ones lack. Deterministic; run again after the captures
change:  python fuzz/make_seeds.py
"""

from __future__ import annotations

import gzip
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import harness

FILE, LIVE, SEGMENTS = 0, 1, 2
MAX_SEED = 6 << 10  # keep seeds small: the fuzzer runs each many times a second


def first_byte(way: int, option_bits: int) -> bytes:
    """The byte that selects ``way`` (byte % 3) with ``option_bits`` (harness.options)."""
    return bytes([next(b for b in range(256) if b % 3 == way and b & 0x3C == option_bits)])


def live_body(data: bytes) -> bytes:
    """``data`` in chunks of varying sizes, each preceded by its size byte."""
    out, pos, k = bytearray(), 0, 0
    while pos < len(data):
        b = (k * 37 + 11) % 256
        size = 1 + b * 7
        out.append(b)
        out += data[pos:pos + size]
        pos += size
        k += 1
    return bytes(out)


def segment_body(path: str) -> bytes:
    """The capture's TCP segments as feed_segment records (addresses folded to 2 bits)."""
    import analyzer

    cap = analyzer.read(path, record=-2)
    out = bytearray()
    for row in cap.packet_rows()[:120]:
        pkt_no, ts, conn, from_client, flags, seq, ack, length, win = row[:9]
        src, dst = (0, 1) if from_client else (1, 0)
        sport, dport = (conn % 7 + 1, 0) if from_client else (0, conn % 7 + 1)
        out += harness.SEGMENT.pack(ts, src, dst, sport, dport, flags, seq, ack,
                                    min(length, 65535), win, 1460 if flags & 2 else -1,
                                    7 if flags & 2 else -1, 1, 1, pkt_no & 0xFF)
    return bytes(out)


def generated() -> dict[str, bytes]:
    """Link types, encapsulations and IP variants the bundled captures lack, made by the
    tests' packet writer (tests/pcapgen.py): what the decoder reads besides loopback."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import pcapgen as g

    v4 = g.conversation()
    v6 = g.conversation(client=("2001:db8::1", 40000), server=("2001:db8::2", 80),
                        ext=[g.hop_by_hop(), g.dest_options()])
    opts = g.conversation(ip_options=g.ipopt_record_route(), close="three_way")
    out: dict[str, bytes] = {}
    links = [g.Link(g.LT_ETHERNET, vlans=((0x8100, 5), (0x88A8, 7))),
             g.Link(g.LT_ETHERNET, pad=True), g.Link(g.LT_SLL), g.Link(g.LT_SLL2),
             g.Link(g.LT_NULL), g.Link(g.LT_LOOP), g.Link(g.LT_RAW), g.Link(g.LT_IPV6)]
    for link in links:
        conv = v6 if link.linktype == g.LT_IPV6 else v4
        out[f"gen-{link.name}"] = g.pcap_file(g.framed(conv.packets, link), link.linktype)
    out["gen-ipv4-options"] = g.pcap_file(g.framed(opts.packets, g.LT_RAW), g.LT_RAW)
    frags = [g.Packet(v4.packets[0].ts_ns, f)
             for f in g.ipv4_fragments(g.addr("10.0.0.1"), g.addr("10.0.0.2"), bytes(64), 24)]
    out["gen-fragments"] = g.pcap_file(g.framed(frags + v4.packets, g.LT_RAW), g.LT_RAW)
    gtp = [g.Packet(p.ts_ns, g.udp_packet("192.0.2.1", "192.0.2.2", 2152, 2152,
                                          struct.pack("!BBHI", 0x30, 0xFF, len(p.data), 1)
                                          + p.data)) for p in v4.packets]
    out["gen-gtp-u"] = g.pcap_file(g.framed(gtp, g.LT_ETHERNET), g.LT_ETHERNET)
    teredo = [g.Packet(p.ts_ns, g.udp_packet("192.0.2.1", "192.0.2.2", 3797, 3544, p.data))
              for p in v6.packets]
    out["gen-teredo"] = g.pcap_file(g.framed(teredo, g.LT_ETHERNET), g.LT_ETHERNET)
    ng = [g.Interface(g.LT_ETHERNET, tsresol=9), g.Interface(g.LT_RAW, tsresol=0x80 | 20,
                                                             tsoffset=1)]
    mixed = [g.Packet(p.ts_ns, q.data if k % 2 else p.data, k % 2) for k, (p, q) in
             enumerate(zip(g.framed(v4.packets, g.LT_ETHERNET), v4.packets))]
    out["gen-pcapng-two-interfaces-be"] = g.pcapng_file(mixed, ng, byteorder=">")
    return out


def main() -> None:
    out = os.path.join(HERE, "seeds")
    os.makedirs(out, exist_ok=True)
    captures = os.path.join(ROOT, "captures")
    for name in sorted(os.listdir(captures)):
        if not name.endswith((".pcap", ".pcapng")):
            continue
        path = os.path.join(captures, name)
        with open(path, "rb") as f:
            data = f.read()[:MAX_SEED]
        base = os.path.splitext(name)[0]
        seeds = {f"file-{base}": first_byte(FILE, 0x00) + data,
                 f"file-gz-{base}": first_byte(FILE, 0x0C) + gzip.compress(data, mtime=0),
                 f"live-{base}": first_byte(LIVE, 0x30) + live_body(data),
                 f"segments-{base}": first_byte(SEGMENTS, 0x08) + segment_body(path)}
        for seed, body in seeds.items():
            with open(os.path.join(out, seed), "wb") as f:
                f.write(body)
    for name, data in generated().items():
        for seed, body in {f"file-{name}": first_byte(FILE, 0x04) + data,
                           f"live-{name}": first_byte(LIVE, 0x00) + live_body(data)}.items():
            with open(os.path.join(out, seed), "wb") as f:
                f.write(body)


if __name__ == "__main__":
    main()
