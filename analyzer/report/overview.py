"""The capture at a glance: every connection over time, handshake RTTs, conn_state
counts, and per listening port SYNs received against handshakes completed."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ._data import ACK, SYN, new_figure, time_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..capture import Capture

CLOSE_COLOURS = {"four_way": "#2ca02c", "three_way": "#98df8a", "simultaneous": "#17becf",
                 "reset": "#d62728", "refused": "#ff7f0e", "unanswered": "#9467bd",
                 "incomplete": "#8c564b", "open": "#7f7f7f"}
CONN_STATE_MEANING = {
    "S0": "SYN, no reply", "S1": "established, not closed", "SF": "normal close",
    "REJ": "rejected", "S2": "closed by originator only", "S3": "closed by responder only",
    "RSTO": "originator aborted", "RSTR": "responder aborted",
    "RSTOS0": "SYN then originator RST", "RSTRH": "responder SYN-ACK then RST",
    "SH": "SYN then FIN, no SYN-ACK", "SHR": "responder SYN-ACK then FIN",
    "OTH": "no SYN seen"}
MAX_PORTS = 4


def overview_plot(capture: Capture, *, syn_times: dict[int, list[int]] | None = None
                  ) -> Figure:
    """Four panels: connection timeline, handshake RTT histogram, conn_state counts, SYNs
    received vs handshakes completed per listening port.

    ``syn_times`` (server port -> SYN timestamps in ns) defaults to the SYNs in the rows
    the capture recorded, else the first SYN of each connection and its retransmission
    count (retransmitted SYNs placed at the time of the SYN that was answered).
    """
    recs = list(capture.records())
    raws = [capture.raw(i) for i in range(len(capture))]
    fig = new_figure(13, 9)
    grid = fig.subplot_mosaic([["timeline", "timeline"], ["rtt", "states"],
                               ["syns", "syns"]], height_ratios=[1.3, 1, 1])
    t0 = min((r.first_ns for r in raws), default=0)
    span = max((r.last_ns for r in raws), default=0) - t0
    unit, per = time_unit(float(span))
    draw_timeline(grid["timeline"], recs, raws, t0, unit, per)
    draw_rtt_histogram(grid["rtt"], recs)
    draw_conn_states(grid["states"], recs)
    draw_syns_vs_handshakes(grid["syns"], raws, syn_times or _syn_times(capture, raws),
                            t0, unit, per)
    fig.suptitle(f"{capture.path}: {len(recs):,} TCP connections, "
                 f"{sum(r.packets_client + r.packets_server for r in raws):,} packets",
                 fontsize=12)
    return fig  # type: ignore[no-any-return]


def draw_timeline(ax: Axes, recs: list[dict[str, Any]], raws: list[Any], t0: int, unit: str,
                  per: float) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    segs, colours = [], []
    for rec, raw in zip(recs, raws):
        start, end = (raw.first_ns - t0) / per, (raw.last_ns - t0) / per
        segs.append([(start, rec["id"]), (max(end, start), rec["id"])])
        colours.append(CLOSE_COLOURS.get(rec["close"]["kind"], "#000000"))
    width = max(1.0, min(8.0, 300 / max(len(recs), 1)))
    ax.add_collection(LineCollection(segs, colors=colours, linewidths=width,
                                     capstyle="butt", rasterized=len(segs) > 2000))
    # A zero-length connection (refused) would vanish: mark every start too.
    ax.scatter([s[0][0] for s in segs], [s[0][1] for s in segs], c=colours, s=12,
               marker="|", zorder=3)
    ax.autoscale_view()
    ax.invert_yaxis()
    ax.set_xlabel(f"time since the first packet ({unit})")
    ax.set_ylabel("connection id")
    kinds = Counter(r["close"]["kind"] for r in recs)
    ax.legend(handles=[Line2D([], [], color=CLOSE_COLOURS[k], lw=5,
                              label=f"{k.replace('_', ' ')} ({n})")
                       for k, n in kinds.most_common()], fontsize=8, loc="upper right",
              title="close kind", title_fontsize=8, ncols=2)
    ax.set_title("every connection from its first to its last packet", fontsize=10,
                 loc="left")
    ax.grid(True, axis="x", alpha=0.3)


def draw_rtt_histogram(ax: Axes, recs: list[dict[str, Any]]) -> None:
    import numpy as np

    rtts = np.array([r["handshake"]["irtt"] for r in recs if r["handshake"]["irtt"] is not None])
    ax.set_title(f"handshake RTT (SYN to the ACK that completes it), {len(rtts)} handshakes",
                 fontsize=10, loc="left")
    if not len(rtts):
        ax.text(0.5, 0.5, "no complete handshake", ha="center", transform=ax.transAxes)
        return
    ms = rtts * 1e3
    if ms.max() / max(ms.min(), 1e-6) > 50:  # wide spread: log bins keep both ends visible
        bins: int | list[float] = list(np.logspace(np.log10(max(ms.min(), 1e-4)),
                                                   np.log10(ms.max()), 30))
        ax.set_xscale("log")
    else:
        bins = 30
    ax.hist(ms, bins=bins, color="#1f5fbf", edgecolor="white")
    ax.axvline(float(np.median(ms)), color="#d62728", ls="--", lw=1,
               label=f"median {np.median(ms):.3g} ms")
    ax.set_xlabel("iRTT (ms)")
    ax.set_ylabel("connections")
    ax.legend(fontsize=8)


def draw_conn_states(ax: Axes, recs: list[dict[str, Any]]) -> None:
    counts = Counter(r["conn_state"] for r in recs).most_common()
    labels = [f"{s}  {CONN_STATE_MEANING.get(s, '')}" for s, _ in counts]
    bars = ax.barh(range(len(counts)), [n for _, n in counts], color="#6baed6")
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_yticks(range(len(counts)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("connections")
    ax.set_title("Zeek conn_state", fontsize=10, loc="left")


def _syn_times(capture: Capture, raws: list[Any]) -> dict[int, list[int]]:
    server_port = {r.id: r.server_port for r in raws}
    times: dict[int, list[int]] = {}
    rows = capture.packet_rows()
    if rows:
        for row in rows:
            if row[3] and row[4] & SYN and not row[4] & ACK:
                times.setdefault(server_port[row[2]], []).append(row[1])
        return times
    for r in raws:
        if r.first_syn_ns is None or r.roles_guessed:
            continue
        ts = times.setdefault(r.server_port, [])
        ts.append(r.first_syn_ns)
        ts.extend([r.syn_ns or r.first_syn_ns] * r.syn_retransmits)
    return times


def draw_syns_vs_handshakes(ax: Axes, raws: list[Any], syn_times: dict[int, list[int]],
                            t0: int, unit: str, per: float) -> None:
    import numpy as np

    done: dict[int, list[int]] = {}
    for r in raws:
        if r.handshake_complete and r.ack_ns is not None:
            done.setdefault(r.server_port, []).append(r.ack_ns)
    ports = sorted(syn_times, key=lambda p: -len(syn_times[p]))[:MAX_PORTS]
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for port, colour in zip(ports, colours):
        syns = (np.sort(np.array(syn_times[port])) - t0) / per
        ok = (np.sort(np.array(done.get(port, []), dtype=np.int64)) - t0) / per
        ax.step(syns, np.arange(1, len(syns) + 1), where="post", color=colour, lw=1.6,
                label=f"port {port}: SYNs received ({len(syns)})")
        if len(ok):
            ax.step(ok, np.arange(1, len(ok) + 1), where="post", color=colour, lw=1.6,
                    ls="--", label=f"port {port}: handshakes completed ({len(ok)})")
    ax.set_xlabel(f"time since the first packet ({unit})")
    ax.set_ylabel("cumulative count")
    ax.set_title("per listening port: SYNs received vs handshakes completed "
                 "(a gap = SYNs dropped: backlog overflow, SYN flood)", fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    if ports:
        ax.legend(fontsize=8, loc="upper left")
