"""The time-sequence graph (Stevens / tcptrace style), one panel per direction.

Data segments are vertical bars from seq to seq+len; the other side's ACK line and
receive-window line (ack + window << wscale) run above them; SYN, FIN and RST are marked;
retransmissions, holes, duplicate ACKs and zero windows (as Wireshark's analysis flags
them, csrc/anomaly.c) have their own colours. A long connection is decimated to one
envelope bar per pixel column, so a million packets draw as fast as a few thousand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..anomalies import Anomaly
from ..words import plural
from ._data import (
    ACK,
    FIN,
    RST,
    SYN,
    Packets,
    flag_names,
    new_figure,
    packets_of,
    seq_space,
    stacked,
    time_unit,
    unwrap,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from numpy.typing import NDArray

    from ..results import Results

#: Above this many segments in a panel, draw per-column envelopes instead of each one.
DECIMATE_OVER = 4000
COLUMNS = 1200

RETRANSMITTED = (Anomaly.RETRANSMISSION | Anomaly.FAST_RETRANSMISSION
                 | Anomaly.SPURIOUS_RETRANSMISSION)
COLOURS = {"data": "#1f5fbf", "ack": "#2ca02c", "window": "#d4a017",
           "retransmission": "#d62728", "hole": "#ff7f0e", "dup_ack": "#9467bd",
           "zero_window": "#8c564b", "syn": "#17becf", "fin": "#000000", "rst": "#d62728"}


def sequence_plot(capture: Results, conn_id: int, *, ax: Axes | None = None,
                  absolute: bool = False, direction: str | None = None,
                  packets: Packets | None = None) -> Figure:
    """Time-sequence graph of connection ``conn_id``.

    Without ``ax`` the figure has two panels, client->server above server->client. With
    ``ax`` one direction is drawn on it: ``direction`` ("client" or "server", the
    sender), by default the one that sent more payload. ``absolute`` plots raw sequence
    numbers instead of offsets from the sender's ISN.
    """
    rec = capture.record(conn_id)
    pk = packets if packets is not None else packets_of(capture, conn_id)
    if ax is None:
        fig = new_figure(10, 7.5, margins=(1.05, 0.2, 0.7, 0.55))
        axes = stacked(fig, 2, 0.45, sharex=True)
        for sender, a in zip(("client", "server"), axes):
            draw_direction(a, rec, pk, sender, absolute=absolute)
        axes[0].set_xlabel("")
        fig.suptitle(f"connection {conn_id}: {rec['client']} → {rec['server']}  "
                     f"({rec['close']['kind']}, {rec['conn_state']})", fontsize=11)
        return fig  # type: ignore[no-any-return]  # pyplot-free Figure, typed Any here
    if direction is None:
        pay = rec["payload_bytes"]
        direction = "server" if pay["server"] > pay["client"] else "client"
    draw_direction(ax, rec, pk, direction, absolute=absolute)
    return ax.figure  # type: ignore[return-value]


def _origin_ns(rec: dict[str, Any], pk: Packets) -> int:
    """Time zero: the first SYN, else the first packet."""
    import numpy as np

    syn = np.flatnonzero((pk.flags & SYN) != 0)
    return int(pk.ts_ns[syn[0]] if len(syn) else pk.ts_ns[0])


def draw_direction(ax: Axes, rec: dict[str, Any], pk: Packets, sender: str, *,
                   absolute: bool = False) -> dict[str, Any]:
    """Draw the segments ``sender`` sent and the other side's ACK and window lines.

    Returns what was drawn (counts and arrays), which the tests read.
    """
    import numpy as np
    from matplotlib.ticker import EngFormatter, MaxNLocator

    hs = rec["handshake"]
    receiver = "server" if sender == "client" else "client"
    mine = pk.from_client if sender == "client" else ~pk.from_client
    sent_idx = np.flatnonzero(mine)
    back_idx = np.flatnonzero(~mine)
    # relative to the sender's base: analyzer.relative's rule, as show, ladder and frames
    isn = pk.bases[0 if sender == "client" else 1] or 0
    base = 0 if not absolute else isn
    t0 = _origin_ns(rec, pk)
    cut = data_end_ns(pk)  # a late RST or an idle tail would squash the data at x = 0
    last = cut if cut is not None else (int(pk.ts_ns.max()) if len(pk) else t0)
    span = last - min(t0, int(pk.ts_ns.min()) if len(pk) else t0)
    unit, per = time_unit(span)

    # This side's segments, sequence offsets unwrapped from its ISN.
    t = (pk.ts_ns[sent_idx] - t0) / per
    flags = pk.flags[sent_idx]
    start = unwrap(pk.seq[sent_idx], isn) + base
    length = seq_space(pk)[sent_idx]
    # SYN and FIN take one sequence number each; the payload follows the SYN.
    data_start = start + ((flags & SYN) != 0)
    payload = pk.length[sent_idx]
    end = start + length
    has_data = payload > 0
    # Wireshark's analysis (csrc/anomaly.c): retransmissions (plain, fast, spurious) and
    # segments after a hole ("previous segment not captured").
    an = pk.anomalies[sent_idx]
    retrans = (an & RETRANSMITTED) != 0
    hole = (an & Anomaly.LOST_SEGMENT) != 0
    drawn: dict[str, Any] = {"sender": sender, "segments": int(has_data.sum()),
                             "retransmissions": int(retrans.sum()), "holes": int(hole.sum())}

    normal = has_data & ~retrans
    drawn["data_columns"] = _bars(ax, t[normal], data_start[normal],
                                  data_start[normal] + payload[normal],
                                  COLOURS["data"], f"data {sender}→{receiver}", lw=1.6)
    again = retrans & has_data
    _bars(ax, t[again], data_start[again], (data_start + payload)[again],
          COLOURS["retransmission"], "retransmission", lw=2.2)
    if again.any():  # a bar can hide in a steep line: ring it as well
        _points(ax, t[again], (data_start + payload)[again], "o", COLOURS["retransmission"],
                "", size=45, zorder=6, hollow=True)
    if hole.any():
        _points(ax, t[hole], start[hole], "v", COLOURS["hole"],
                "hole before this segment (lost before capture / reordered)", size=40)

    # The other side's ACK and advertised receive-window lines (a RST's ACK and window
    # are no advertisement: RFC 9293 3.10.7.4 discards the rest of a reset segment).
    acks = back_idx[((pk.flags[back_idx] & ACK) != 0) & ((pk.flags[back_idx] & RST) == 0)]
    at = (pk.ts_ns[acks] - t0) / per
    ack_rel = unwrap(pk.ack[acks], isn) + base
    wscale = _wscale(hs, receiver)
    not_syn = (pk.flags[acks] & SYN) == 0  # RFC 7323 2.2: a SYN's window is never scaled
    window = pk.win[acks] << np.where(not_syn, wscale, 0)
    drawn["acks"] = len(acks)
    # the y of every segment and ACK by packet number (tests compare them with show)
    drawn["seq_of"] = dict(zip(pk.pkt_no[sent_idx].tolist(), start.tolist()))
    drawn["ack_of"] = dict(zip(pk.pkt_no[acks].tolist(), ack_rel.tolist()))
    _step(ax, at, ack_rel, COLOURS["ack"], f"ACK from {receiver}")
    edge = ack_rel + window
    _step(ax, at, edge, COLOURS["window"],
          f"receive window of {receiver} (ack + win << {wscale})", style="--")
    dup = (pk.anomalies[acks] & Anomaly.DUPLICATE_ACK) != 0
    drawn["dup_acks"] = int(dup.sum())
    zero = (pk.anomalies[acks] & Anomaly.ZERO_WINDOW) != 0
    drawn["zero_windows"] = int(zero.sum())
    if dup.any():
        _points(ax, at[dup], ack_rel[dup], "x", COLOURS["dup_ack"], "duplicate ACK", size=18)
    if zero.any():
        _points(ax, at[zero], ack_rel[zero], "s", COLOURS["zero_window"], "zero window",
                size=30)

    # SYN, FIN and RST at the sequence number they occupy.
    marks = {}
    for bit, name, marker in ((SYN, "SYN", "^"), (FIN, "FIN", "D"), (RST, "RST", "X")):
        sel = (flags & bit) != 0
        where = start[sel] if bit != FIN else (start + length - 1)[sel]
        marks[name] = list(zip(t[sel].tolist(), where.tolist()))
        if sel.any():
            _points(ax, t[sel], where, marker, COLOURS[name.lower()], name,
                    size=70 if name != "FIN" else 45, zorder=5)
    drawn["marks"] = marks

    _fit_y(ax, [start, end, ack_rel], edge, drawn)
    xlabel = (f"time since first SYN ({unit})" if (pk.flags & SYN).any()
              else f"time since first packet ({unit})")
    drawn["off_scale"] = []
    if cut is not None:
        _zoom_time(ax, pk, t0, cut, per)
        late = pk.ts_ns[sent_idx] > cut
        drawn["off_scale"] = _mark_off_scale(ax, t[late], start[late], flags[late], per)
        xlabel += "; zoomed to the data, later packets are marked → at the right edge"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("sequence number" + (" (absolute)" if absolute else f" (relative to {sender} ISN)"))
    # Sequence numbers count bytes: whole numbers only (no "250 mB" on a short axis).
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(EngFormatter(unit="B" if not absolute else "", places=None))
    ax.set_title(f"{sender} → {receiver}: {plural(int(payload.sum()), 'payload byte')} in "
                 f"{plural(drawn['segments'], 'segment')}"
                 + (f", {drawn['retransmissions']} retransmitted" if drawn["retransmissions"]
                    else "")
                 + (f"  [decimated to {COLUMNS} columns]" if drawn["segments"] > DECIMATE_OVER
                    else ""), fontsize=10, loc="left", y=1.0)
    ax.grid(True, alpha=0.3)
    # Sequence numbers rise from left to right: the upper left corner is the free one.
    # A direction that sent nothing drawable has no labelled artist: no empty legend.
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    return drawn


def data_end_ns(pk: Packets) -> int | None:
    """Where the time axis should end when a short tail after a long silence (a RST a
    minute later, keep-alives, a FIN after an idle period) would otherwise take most of
    it: the time of the last packet before the longest gap, if that gap is over 60 % of
    the connection's duration and at most max(3, 10 %) of its packets follow it."""
    import numpy as np

    if len(pk) < 3:
        return None
    ts = np.sort(pk.ts_ns)
    gaps = np.diff(ts)
    k = int(np.argmax(gaps))
    after = len(ts) - (k + 1)
    span = int(ts[-1] - ts[0])
    if span <= 0 or gaps[k] <= 0.6 * span or after > max(3, len(ts) // 10):
        return None
    return int(ts[k])


def _zoom_time(ax: Axes, pk: Packets, t0: int, cut: int, per: float) -> None:
    first = (min(int(pk.ts_ns.min()), t0) - t0) / per
    end = (cut - t0) / per
    pad = max((end - first) * 0.04, 1e-9)
    ax.set_xlim(first - pad, end + pad)


def _mark_off_scale(ax: Axes, t: Any, seq: Any, flags: Any, per: float
                    ) -> list[tuple[str, float]]:
    """An arrow at the right edge for each packet beyond the zoomed time axis, at its
    sequence number (kept inside the panel), naming it and its time (in the axis's
    origin, in a unit of its own: "RST,ACK at 61.0 s" on a millisecond axis)."""
    low, high = ax.get_ylim()
    marks = []
    for k, (when, where, bits) in enumerate(zip(t.tolist(), seq.tolist(), flags.tolist())):
        name = flag_names(int(bits))
        marks.append((name, when))
        unit, own = time_unit(abs(when * per))
        y = min(max(where, low + 0.05 * (high - low)), high - 0.05 * (high - low))
        ax.annotate(f"{name} at {when * per / own:,.1f} {unit}", xy=(1.0, y),
                    xycoords=("axes fraction", "data"), xytext=(-14, 14 * (k + 1)),
                    textcoords="offset points", ha="right", va="center", fontsize=8,
                    color=COLOURS.get(name.split(",")[0].lower(), "#333333"),
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1},
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999"},
                    zorder=7, gid="off-scale")
    return marks


def _fit_y(ax: Axes, shown: list[Any], edge: Any, drawn: dict[str, Any]) -> None:
    """Keep the data readable: a window edge far above it is cut off and said so."""
    import numpy as np

    values = np.concatenate([np.asarray(v) for v in shown if len(v)]) if any(
        len(v) for v in shown) else np.zeros(1)
    low, high = float(values.min()), float(values.max())
    top = float(edge.max()) if len(edge) else high
    span = max(high - low, 10.0)
    drawn["window_clipped"] = top > high + 3 * span
    if drawn["window_clipped"]:
        ax.set_ylim(low - 0.08 * span, high + 0.6 * span)
        ax.text(0.99, 0.97, f"window edge up to {top - low:,.0f} B above: off scale",
                transform=ax.transAxes, ha="right", va="top", fontsize=8,
                color=COLOURS["window"])
    else:
        pad = max(0.05 * (top - low), 1.0)  # at least a byte: whole-number ticks fit
        ax.set_ylim(low - pad, top + pad)


def _wscale(hs: dict[str, Any], side: str) -> int:
    """Window scale applies only when both SYNs carried the option (RFC 7323 2.2)."""
    mine, other = hs.get(f"{side}_options"), hs.get(
        f"{'server' if side == 'client' else 'client'}_options")
    if not mine or not other or mine.get("wscale") is None or other.get("wscale") is None:
        return 0
    return int(mine["wscale"])


def _columns(x: NDArray[Any], lo: NDArray[Any], hi: NDArray[Any]) -> tuple[Any, Any, Any]:
    """Per pixel column: the lowest start and highest end (the envelope a viewer sees)."""
    import numpy as np

    edges = np.linspace(x.min(), x.max(), COLUMNS + 1)
    col = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, COLUMNS - 1)
    low = np.full(COLUMNS, np.iinfo(np.int64).max)
    high = np.full(COLUMNS, np.iinfo(np.int64).min)
    np.minimum.at(low, col, lo)
    np.maximum.at(high, col, hi)
    used = high >= low
    centre = (edges[:-1] + edges[1:]) / 2
    return centre[used], low[used], high[used]


def _bars(ax: Axes, x: Any, lo: Any, hi: Any, colour: str, label: str, lw: float) -> int:
    """Vertical bars from lo to hi at x; returns how many were drawn."""
    import numpy as np
    from matplotlib.collections import LineCollection

    if len(x) == 0:
        return 0
    if len(x) > DECIMATE_OVER:
        x, lo, hi = _columns(x, lo, hi)
    segs = np.stack([np.column_stack([x, lo]), np.column_stack([x, hi])], axis=1)
    coll = LineCollection(list(segs), colors=colour, linewidths=lw, label=label, zorder=3,
                          rasterized=len(x) > 2000)
    ax.add_collection(coll)
    # Short segments are invisible as bars on a long axis: cap them with a tick.
    ax.scatter(x, hi, marker="_", s=25, color=colour, linewidths=1, zorder=3,
               rasterized=len(x) > 2000)
    ax.update_datalim(np.column_stack([np.concatenate([x, x]), np.concatenate([lo, hi])]))
    ax.autoscale_view()
    return len(x)


def _step(ax: Axes, x: Any, y: Any, colour: str, label: str, style: str = "-") -> None:
    import numpy as np

    if len(x) == 0:
        return
    if len(x) > DECIMATE_OVER:
        x, _lo, y = _columns(x, y, y)
    ax.step(x, y, where="post", color=colour, lw=1.1, ls=style, label=label, zorder=2,
            rasterized=len(x) > 2000)
    del np


def _points(ax: Axes, x: Any, y: Any, marker: str, colour: str, label: str, size: float,
            zorder: int = 4, hollow: bool = False) -> None:
    if len(x) > DECIMATE_OVER:
        x, _lo, y = _columns(x, y, y)
    if hollow:
        ax.scatter(x, y, marker=marker, s=size, facecolors="none", edgecolors=colour,
                   linewidths=1.5, zorder=zorder)
        return
    ax.scatter(x, y, marker=marker, s=size, color=colour, label=label, zorder=zorder,
               edgecolors="white" if marker in "^DXs" else None, linewidths=0.5)
