"""Write the seed corpus (fuzz/seeds/) from the bundled captures: each capture read as a
file (plain and gzip), fed live in chunks, and its TCP segments as feed_segment calls
(see harness.py for the input layout). Deterministic; run again after the captures
change:  python fuzz/make_seeds.py
"""

from __future__ import annotations

import gzip
import os
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


if __name__ == "__main__":
    main()
