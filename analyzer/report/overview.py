"""The capture at a glance: every connection over time, handshake RTTs, conn_state
counts, and per listening port SYNs received against handshakes completed.

Everything is drawn from per-connection arrays (``connection_arrays``), aggregated before
drawing: beyond ``TIMELINE_LINES`` connections the timeline is an image (time x
connection-id bins coloured by the close kind found there), and the cumulative SYN
counts are sampled on a grid, so 500 k connections draw as fast as 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..records import CLOSE_KINDS, CONN_STATES
from ..words import plural
from ._data import ACK, SYN, connection_arrays, integer_ticks, new_figure, time_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from ..results import Results

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
TIMELINE_LINES = 2000  # above this, the timeline is drawn as an image of binned spans
RASTER = (600, 1200)  # (connection-id rows, time columns) of that image
STEP_POINTS = 4000  # above this, a cumulative count is sampled on a grid this fine


def overview_plot(capture: Results) -> Figure:
    """Four panels: connection timeline, handshake RTT histogram, conn_state counts, SYNs
    received vs handshakes completed per listening port.

    SYN times come from the packet rows when the capture recorded them; else each
    connection gives its first SYN and its retransmission count (the retransmitted SYNs
    placed at the time of the SYN that was answered, or of the last packet when none was).
    """
    import numpy as np

    conns = connection_arrays(capture)
    fig = new_figure(13, 9)
    grid = fig.subplot_mosaic([["timeline", "timeline"], ["rtt", "states"],
                               ["syns", "syns"]], height_ratios=[1.3, 1, 1])
    t0 = int(conns["first_ns"].min()) if len(capture) else 0
    span = int(conns["last_ns"].max()) - t0 if len(capture) else 0
    unit, per = time_unit(float(span))
    draw_timeline(grid["timeline"], conns, t0, unit, per)
    draw_rtt_histogram(grid["rtt"], conns["irtt"])
    draw_conn_states(grid["states"], conns["conn_state"])
    draw_syns_vs_handshakes(grid["syns"], conns, syn_times(capture, conns), t0, unit, per)
    packets = int(np.sum(conns["packets_client"] + conns["packets_server"]))
    fig.suptitle(f"{capture.path}: {len(capture):,} TCP connections, {packets:,} packets",
                 fontsize=12)
    return fig  # type: ignore[no-any-return]


def _kind_counts(kinds: NDArray[Any]) -> list[tuple[str, int]]:
    import numpy as np

    counts = np.bincount(kinds, minlength=len(CLOSE_KINDS))
    order = sorted(range(len(CLOSE_KINDS)), key=lambda k: (-counts[k], k))
    return [(CLOSE_KINDS[k], int(counts[k])) for k in order if counts[k]]


def draw_timeline(ax: Axes, conns: dict[str, NDArray[Any]], t0: int, unit: str,
                  per: float) -> None:
    import numpy as np
    from matplotlib.lines import Line2D

    n = len(conns["first_ns"])
    start = (conns["first_ns"] - t0) / per
    end = np.maximum((conns["last_ns"] - t0) / per, start)
    palette = np.array([CLOSE_COLOURS.get(k, "#000000") for k in CLOSE_KINDS])
    if n <= TIMELINE_LINES:
        from matplotlib.collections import LineCollection

        ids = np.arange(n)
        colours = palette[conns["close_kind"]]
        width = max(1.0, min(8.0, 300 / max(n, 1)))
        ax.add_collection(LineCollection(
            list(np.stack([np.column_stack([start, ids]), np.column_stack([end, ids])], axis=1)),
            colors=colours, linewidths=width, capstyle="butt"))
        # A zero-length connection (refused) would vanish: mark every start too.
        ax.scatter(start, ids, c=colours, s=12, marker="|", zorder=3)
        ax.autoscale_view()
        ax.invert_yaxis()
        title = "every connection from its first to its last packet"
    else:
        _timeline_image(ax, conns["close_kind"], start, end, palette)
        title = (f"every connection from its first to its last packet ({n:,} binned into "
                 f"{min(n, RASTER[0])} rows x {RASTER[1]} time columns, each pixel the "
                 "close kind most seen there)")
    ax.set_xlabel(f"time since the first packet ({unit})")
    ax.set_ylabel("connection id")
    ax.legend(handles=[Line2D([], [], color=CLOSE_COLOURS[k], lw=5,
                              label=f"{k.replace('_', ' ')} ({c:,})")
                       for k, c in _kind_counts(conns["close_kind"])], fontsize=8,
              loc="upper right", title="close kind", title_fontsize=8, ncols=2)
    ax.set_title(title, fontsize=10, loc="left", y=1.0)
    ax.grid(True, axis="x", alpha=0.3)


def _timeline_image(ax: Axes, kinds: NDArray[Any], start: NDArray[Any], end: NDArray[Any],
                    palette: NDArray[Any]) -> None:
    """Spans binned into an image: per (row, column) cell and close kind, how many
    connections cover it (a difference array summed along time), coloured by the most."""
    import numpy as np
    from matplotlib.colors import to_rgb

    n = len(kinds)
    rows, cols = min(n, RASTER[0]), RASTER[1]
    last = float(end.max()) or 1.0
    row = np.arange(n) * rows // n
    c0 = np.clip((start / last * cols).astype(np.int64), 0, cols - 1)
    c1 = np.clip((end / last * cols).astype(np.int64), 0, cols - 1)
    best = np.zeros((rows, cols), dtype=np.int64)  # close kind shown in each cell
    most = np.zeros((rows, cols), dtype=np.int32)  # how many connections of it
    for kind in np.unique(kinds):
        mine = kinds == kind
        at = row[mine] * (cols + 1)
        diff = (np.bincount(at + c0[mine], minlength=rows * (cols + 1))
                - np.bincount(at + c1[mine] + 1, minlength=rows * (cols + 1)))
        cover = np.cumsum(diff.reshape(rows, cols + 1)[:, :cols], axis=1, dtype=np.int32)
        more = cover > most
        best[more], most[more] = kind, cover[more]
    rgb = np.array([to_rgb(c) for c in palette])[best]
    rgb[most == 0] = 1.0  # nothing there: white
    ax.imshow(rgb, aspect="auto", interpolation="nearest", extent=(0, last, n, 0))


def draw_rtt_histogram(ax: Axes, irtt: NDArray[Any]) -> None:
    import numpy as np

    rtts = irtt[~np.isnan(irtt)]
    ax.set_title(f"handshake RTT (SYN to the ACK that completes it), "
                 f"{plural(len(rtts), 'handshake')}", fontsize=10, loc="left", y=1.0)
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
    integer_ticks(ax.yaxis)
    ax.legend(fontsize=8)


def draw_conn_states(ax: Axes, states: NDArray[Any]) -> None:
    import numpy as np

    counts = np.bincount(states, minlength=len(CONN_STATES))
    order = [s for s in sorted(range(len(CONN_STATES)), key=lambda s: (-counts[s], s))
             if counts[s]]
    labels = [f"{CONN_STATES[s]}  {CONN_STATE_MEANING.get(CONN_STATES[s], '')}" for s in order]
    bars = ax.barh(range(len(order)), [int(counts[s]) for s in order], color="#6baed6")
    ax.bar_label(bars, fmt="{:,.0f}", fontsize=8, padding=2)
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("connections")
    integer_ticks(ax.xaxis)
    ax.set_title("Zeek conn_state", fontsize=10, loc="left", y=1.0)


def syn_times(capture: Results, conns: dict[str, NDArray[Any]]) -> dict[int, NDArray[Any]]:
    """Server port -> timestamps (ns) of the SYNs it received: every client SYN in the
    recorded rows, else first SYNs plus retransmission counts from the connections."""
    import numpy as np

    from ..columns import row_columns

    port = conns["server_port"]
    rows = row_columns(capture.engine)
    if len(rows["conn"]):
        syn = rows["from_client"] & ((rows["flags"] & SYN) != 0) & ((rows["flags"] & ACK) == 0)
        times, ports = rows["ts_ns"][syn], port[rows["conn"][syn].astype(np.int64)]
    else:
        # A client ISN = the client's SYN was seen. The engine times the first SYN of a
        # handshake once it is answered; an unanswered one (refused, dropped by a full
        # backlog) opened the connection, so its time is the first packet's.
        seen = conns["client_isn"] >= 0
        first = np.where(conns["first_syn_ns"] >= 0, conns["first_syn_ns"], conns["first_ns"])
        again = np.repeat(np.flatnonzero(seen), conns["syn_retransmits"][seen])
        answered = np.where(conns["syn_ns"] >= 0, conns["syn_ns"], conns["last_ns"])
        times = np.concatenate([first[seen], answered[again]])
        ports = np.concatenate([port[seen], port[again]])
    return {int(p): np.sort(times[ports == p]) for p in np.unique(ports)}


def draw_syns_vs_handshakes(ax: Axes, conns: dict[str, NDArray[Any]],
                            syns_by_port: dict[int, NDArray[Any]], t0: int, unit: str,
                            per: float) -> None:
    import numpy as np

    done = (conns["handshake_complete"] != 0) & (conns["ack_ns"] >= 0)
    ports = sorted(syns_by_port, key=lambda p: (-len(syns_by_port[p]), p))[:MAX_PORTS]
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    for port, colour in zip(ports, colours):
        syns = (syns_by_port[port] - t0) / per
        ok = (np.sort(conns["ack_ns"][done & (conns["server_port"] == port)]) - t0) / per
        _cumulative(ax, syns, colour, "-", f"port {port}: SYNs received ({len(syns):,})")
        if len(ok):
            _cumulative(ax, ok, colour, "--",
                        f"port {port}: handshakes completed ({len(ok):,})")
    ax.set_xlabel(f"time since the first packet ({unit})")
    ax.set_ylabel("cumulative count")
    integer_ticks(ax.yaxis)
    ax.set_title("per listening port: SYNs received vs handshakes completed "
                 "(a gap = SYNs dropped: backlog overflow, SYN flood)", fontsize=10, loc="left",
                 y=1.0)
    ax.grid(True, alpha=0.3)
    if ports:
        ax.legend(fontsize=8, loc="upper left")


def _cumulative(ax: Axes, times: NDArray[Any], colour: str, style: str, label: str) -> None:
    """Count of events up to each time (sorted input), as a step line; a long one is
    sampled on a grid (the count at each grid point), which looks the same."""
    import numpy as np

    if len(times) > STEP_POINTS:
        x = np.linspace(times[0], times[-1], STEP_POINTS)
        y = np.searchsorted(times, x, side="right")
    else:
        x, y = times, np.arange(1, len(times) + 1)
    ax.step(x, y, where="post", color=colour, lw=1.6, ls=style, label=label)

