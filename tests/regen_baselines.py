"""Golden images of the report's plots, and the command that regenerates them.

    python tests/regen_baselines.py        # after an intended change of design

rewrites tests/baseline/*.png; look at each one before committing it.
tests/test_report_golden.py draws the same figures and compares them with matplotlib's
image comparison (a small RMS tolerance absorbs anti-aliasing differences).
``CASES`` also holds the hand-built connections the other report tests use: simultaneous
open and simultaneous close, which a real stack does not produce on demand.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyzer import _engine, fsm  # noqa: E402
from analyzer.capture import Capture, read  # noqa: E402

BASELINE = Path(__file__).resolve().parent / "baseline"
CAPTURES = ROOT / "captures"
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
DPI = 72


def segments_capture(script: list[tuple[int, str, int, int, int, int]],
                     client: tuple[str, int] = ("192.0.2.1", 40000),
                     server: tuple[str, int] = ("192.0.2.2", 80), **opts: Any) -> Capture:
    """A Capture of hand-built segments: (t_ms, "c"/"s", flags, seq, ack, length)."""
    engine = _engine.Engine(fsm.table_bytes(), record=-2)
    hosts = {"c": client, "s": server}
    for t_ms, who, flags, seq, ack, length in script:
        (src, sport), (dst, dport) = hosts[who], hosts["s" if who == "c" else "c"]
        extra = opts if flags & SYN else {}
        engine.feed_segment(t_ms * 1_000_000, ipaddress.ip_address(src).packed,
                            ipaddress.ip_address(dst).packed, sport, dport, flags,
                            seq % 2**32, ack % 2**32, length, **extra)
    engine.finish()
    return Capture(path="<hand-built segments>", engine=engine, stats=engine.stats(),
                   warnings=[])


C, S = 1000, 5000  # ISNs


def simultaneous_open() -> Capture:
    """RFC 9293 figure 7: both SYNs cross, each side answers with SYN,ACK."""
    return segments_capture([
        (0, "c", SYN, C, 0, 0), (1, "s", SYN, S, 0, 0),
        (2, "c", SYN | ACK, C, S + 1, 0), (3, "s", SYN | ACK, S, C + 1, 0),
        (5, "c", PSH | ACK, C + 1, S + 1, 10), (6, "s", ACK, S + 1, C + 11, 0),
        (8, "c", FIN | ACK, C + 11, S + 1, 0), (9, "s", FIN | ACK, S + 1, C + 12, 0),
        (10, "c", ACK, C + 12, S + 2, 0)])


def simultaneous_close() -> Capture:
    """RFC 9293 figure 13: both FINs cross, each is acknowledged, both in TIME_WAIT."""
    return segments_capture([
        (0, "c", SYN, C, 0, 0), (1, "s", SYN | ACK, S, C + 1, 0), (2, "c", ACK, C + 1, S + 1, 0),
        (5, "c", FIN | ACK, C + 1, S + 1, 0), (6, "s", FIN | ACK, S + 1, C + 1, 0),
        (7, "c", ACK, C + 2, S + 2, 0), (8, "s", ACK, S + 2, C + 2, 0)])


def long_transfer(segments: int = 300, size: int = 1448, retransmit: int | None = 120
                  ) -> Capture:
    """A bulk transfer server -> client with one retransmission, for bands and decimation."""
    script = [(0, "c", SYN, C, 0, 0), (1, "s", SYN | ACK, S, C + 1, 0),
              (2, "c", ACK, C + 1, S + 1, 0), (3, "c", PSH | ACK, C + 1, S + 1, 100),
              (4, "s", ACK, S + 1, C + 101, 0)]
    t = 5
    for k in range(segments):
        seq = S + 1 + k * size
        script.append((t, "s", ACK, seq, C + 101, size))
        if k == retransmit:
            script.append((t, "s", ACK, seq - size, C + 101, size))  # the previous one again
        if k % 2:
            script.append((t, "c", ACK, C + 101, seq + size, 0))
        t += 1
    end = S + 1 + segments * size
    script += [(t + 1, "s", FIN | ACK, end, C + 101, 0), (t + 2, "c", ACK, C + 101, end + 1, 0),
               (t + 3, "c", FIN | ACK, C + 101, end + 1, 0), (t + 4, "s", ACK, end + 1, C + 102, 0)]
    return segments_capture(script, wscale=7, mss=1460)


def echo(record: int | None = -2) -> Capture:
    return read(str(CAPTURES / "echo-lo.pcap"), record=record)


def _ladder(conn: int) -> Callable[[], Any]:
    def draw() -> Any:
        from analyzer.report import ladder_plot

        return ladder_plot(echo(conn), conn)
    return draw


def _sequence_half_close() -> Any:
    from analyzer.report import sequence_plot

    return sequence_plot(echo(2), 2)


def _sequence_reset() -> Any:
    """A late RST: the time axis ends with the data and the RST is marked off scale."""
    from analyzer.report import sequence_plot

    return sequence_plot(echo(3), 3)


def _fsm() -> Any:
    from analyzer.report import fsm_plot

    return fsm_plot()


#: baseline file name -> the figure it holds (echo-lo.pcap connection ids: 0 normal
#: four-way close, 2 half-close, 3 RST abort, 4 refused SYN).
GOLDEN: dict[str, Callable[[], Any]] = {
    "ladder_normal.png": _ladder(0), "ladder_half_close.png": _ladder(2),
    "ladder_reset.png": _ladder(3), "ladder_refused.png": _ladder(4),
    "sequence_half_close.png": _sequence_half_close, "sequence_reset.png": _sequence_reset,
    "fsm.png": _fsm}


def render(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)


def main() -> None:
    BASELINE.mkdir(exist_ok=True)
    for name, draw in GOLDEN.items():
        render(draw(), BASELINE / name)
        print(f"wrote {BASELINE / name}")


if __name__ == "__main__":
    main()
