"""Time the time-sequence graph and the ladder of one connection of N packets.

    python3 benchmarks/bench_plot.py --packets 1000000

Writes a raw-IP pcap of one bulk transfer (handshake, N data segments and ACKs, close)
to benchmarks/.data/, then times: reading it with per-packet rows, turning the rows into
arrays, drawing + saving the time-sequence graph (PNG), and the ladder (data collapsed).
"""

from __future__ import annotations

import argparse
import resource
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10


def write_pcap(path: Path, packets: int, size: int = 1448) -> None:
    """Client 10.0.0.1:40000 downloads from 10.0.0.2:80; every 2nd segment is ACKed.
    Checksums are left zero (the reader does not verify them by default)."""
    cip, sip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ip_hdr = struct.Struct("!BBHHHBBH4s4s")
    tcp_hdr = struct.Struct("!HHIIBBHHH")
    rec = struct.Struct("<IIII")
    c_isn, s_isn = 1000, 4_000_000_000  # the server's sequence numbers wrap
    t = 1_700_000_000_000_000  # µs
    body = b"\0" * size
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))

        def emit(from_client: bool, flags: int, seq: int, ack: int, length: int) -> None:
            nonlocal t
            src, dst = (cip, sip) if from_client else (sip, cip)
            sport, dport = (40000, 80) if from_client else (80, 40000)
            tcp = tcp_hdr.pack(sport, dport, seq % 2**32, ack % 2**32, 5 << 4, flags, 512, 0, 0)
            ip = ip_hdr.pack(0x45, 0, 40 + length, 0, 0, 64, 6, 0, src, dst)
            frame = ip + tcp + body[:length]
            out.write(rec.pack(t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
            out.write(frame)
            t += 10

        emit(True, SYN, c_isn, 0, 0)
        emit(False, SYN | ACK, s_isn, c_isn + 1, 0)
        emit(True, ACK, c_isn + 1, s_isn + 1, 0)
        data = max(1, (packets - 7) * 2 // 3)
        seq = s_isn + 1
        for k in range(data):
            emit(False, ACK, seq, c_isn + 1, size)
            seq += size
            if k % 2:
                emit(True, ACK, c_isn + 1, seq, 0)
        emit(False, FIN | ACK, seq, c_isn + 1, 0)
        emit(True, FIN | ACK, c_isn + 1, seq + 1, 0)
        emit(False, ACK, seq + 1, c_isn + 2, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / ".data"))
    args = ap.parse_args()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import analyzer
    from analyzer.report import ladder_plot, sequence_plot
    from analyzer.report._data import packets_of

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pcap = work / f"plot_{args.packets}.pcap"
    if not pcap.exists():
        write_pcap(pcap, args.packets)
    timings: dict[str, float] = {}

    def timed(name: str, fn):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - start
        return value

    cap = timed("read with rows", lambda: analyzer.read(str(pcap), record=0))
    pk = timed("rows to arrays", lambda: packets_of(cap, 0))

    def save(fig, name):  # type: ignore[no-untyped-def]
        FigureCanvasAgg(fig)
        fig.savefig(work / name, dpi=100)

    timed("sequence graph (draw + PNG)",
          lambda: save(sequence_plot(cap, 0, packets=pk), "bench_sequence.png"))
    timed("sequence graph (draw + SVG)",
          lambda: save(sequence_plot(cap, 0, packets=pk), "bench_sequence.svg"))
    timed("ladder (draw + PNG)",
          lambda: save(ladder_plot(cap, 0, packets=pk), "bench_ladder.png"))
    print(f"{len(pk):,} packets in one connection ({pcap})")
    for name, secs in timings.items():
        print(f"  {name:<30} {secs:7.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  {'peak memory':<30} {peak:7.0f} MB")


if __name__ == "__main__":
    main()
