#!/usr/bin/env python3
"""A SYN flood against one server: time and peak memory of ``handshake read`` vs tcptrace.

Issue 12 item 6: 1 M SYNs to one server, none answered, 10 k SYN/s for 100 s. Half-open
connections must cost little (Zeek reports an unanswered attempt after 5 s), so reading
the flood should take bounded memory (target: under 200 MB) with every attempt still
reported as an S0 record.

    python3 benchmarks/bench_flood.py [--syns 1000000] [--rate 10000] [--json OUT]

The capture is written (once, cached in ``--workdir``) by ``flood_pcap``: Ethernet, IPv4,
TCP SYNs with MSS/SACK/window-scale options and correct checksums, from 10.0.0.0/8
sources (address and port from the SYN's number, so every SYN is its own connection) to
192.0.2.80:80. No packet is sent anywhere: the file is built in memory.

Each tool runs as a child under ``/usr/bin/time -f '%e %M'`` (wall seconds, peak RSS of
that process alone): ``handshake read --format jsonl`` (the S0 lines are counted) and
``tcptrace -n``. Results are printed as a Markdown table, and as ratios to tcptrace.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = bytes([192, 0, 2, 80])
MSS_SACK_WS = bytes([2, 4, 5, 0xB4, 4, 2, 1, 3, 3, 7])  # MSS 1460, SACK-permitted, WS 7


def _sum16(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def syn_frame(k: int) -> bytes:
    """SYN number ``k``: from 10.a.b.c:port to the server, ISN from k."""
    src = bytes([10, (k >> 16) & 0xFF, (k >> 8) & 0xFF, k & 0xFF or 1])
    sport = 1024 + (k * 7919) % 64000
    opts = MSS_SACK_WS + b"\x01\x01"  # padded to 12 bytes
    tcp_len = 20 + len(opts)
    tcp = struct.pack("!HHIIBBHHH", sport, 80, (k * 2654435761) & 0xFFFFFFFF, 0,
                      (tcp_len // 4) << 4, 0x02, 64240, 0, 0) + opts
    pseudo = src + SERVER + struct.pack("!BBH", 0, 6, tcp_len)
    csum = ~_sum16(pseudo + tcp) & 0xFFFF
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, k & 0xFFFF, 0x4000, 64, 6, 0,
                     src, SERVER)
    ip = ip[:10] + struct.pack("!H", ~_sum16(ip) & 0xFFFF) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    return eth + ip + tcp


def flood_pcap(path: Path, syns: int, rate: int) -> None:
    """``syns`` SYNs at ``rate`` per second, as a classic microsecond pcap."""
    step_us = 1_000_000 // rate
    start = 1_700_000_000 * 1_000_000
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        batch = []
        for k in range(syns):
            frame = syn_frame(k)
            sec, usec = divmod(start + k * step_us, 1_000_000)
            batch.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
            if len(batch) == 65536:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))


def timed(cmd: list[str], stdout: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd`` alone."""
    with tempfile.NamedTemporaryFile("r") as stats, open(stdout, "wb") as out:
        subprocess.run(["/usr/bin/time", "-o", stats.name, "-f", "%e %M", *cmd],
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
        seconds, kib = stats.read().split()[-2:]
    return float(seconds), int(kib)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--syns", type=int, default=1_000_000)
    ap.add_argument("--rate", type=int, default=10_000, help="SYNs per second")
    ap.add_argument("--workdir", type=Path, default=HERE / ".data")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    pcap = args.workdir / f"flood_{args.syns}_{args.rate}.pcap"
    if not pcap.exists():
        print(f"writing {pcap} ...", file=sys.stderr)
        flood_pcap(pcap, args.syns, args.rate)
    results: dict[str, dict[str, float]] = {}
    out = args.workdir / "flood.out"
    handshake = [sys.executable, "-m", "analyzer", "read", "--format", "jsonl", str(pcap)]
    seconds, kib = timed(handshake, out)
    with open(out, encoding="utf-8") as f:
        records = s0 = 0
        for line in f:
            records += 1
            s0 += json.loads(line)["conn_state"] == "S0"
    results["handshake read --format jsonl"] = {"seconds": seconds, "peak_mib": kib / 1024,
                                               "records": records, "s0": s0}
    if shutil.which("tcptrace"):
        seconds, kib = timed(["tcptrace", "-n", str(pcap)], out)
        results["tcptrace -n"] = {"seconds": seconds, "peak_mib": kib / 1024}
    os.unlink(out)
    print(f"\n{args.syns} SYNs at {args.rate}/s, none answered ({pcap.stat().st_size >> 20} MiB)\n")
    print("| tool | seconds | peak MiB | records | S0 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | "
              f"{r.get('records', '')} | {r.get('s0', '')} |")
    ref = results.get("tcptrace -n")
    if ref:
        ours = results["handshake read --format jsonl"]
        print(f"\nhandshake / tcptrace: time {ours['seconds'] / ref['seconds']:.2f}x, "
              f"peak memory {ours['peak_mib'] / ref['peak_mib']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
