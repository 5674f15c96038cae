"""The ladder diagram: client and server lifelines, one slanted arrow per packet, each
endpoint's RFC 9293 state written on its lifeline where it changes.

Time runs down in the order the capture point saw the packets, one row per packet (a
loopback handshake takes 50 µs and its close 250 ms: to scale, the handshake would be
one line). The capture time of each packet is written in the left margin. An arrow
leaves the sender and reaches the receiver one row later, unless the receiver is seen to
send before it got the segment (its ACK does not cover it, e.g. crossing FINs in a
simultaneous close): then the arrows cross, as in RFC 9293's figures. Long uneventful
runs (data transfer) are collapsed into one labelled band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..anomalies import Anomaly, tags
from ..fsm import Input, TcpState
from ..relative import relative
from ..words import plural
from ._data import (
    ACK,
    FIN,
    RST,
    SYN,
    Packets,
    flag_names,
    human_bytes,
    new_figure,
    packets_of,
    seq_space,
    time_unit,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..results import Results

SLANT = 0.7  # rows an arrow descends between sender and receiver
CROSS_LOOKAHEAD = 8  # rows searched for a packet that crossed this one in flight
CLIENT_X, SERVER_X = 0.0, 1.0
#: Packets with these flags are drawn one by one, never folded into a band.
SHOWN_ANOMALIES = (Anomaly.RETRANSMISSION | Anomaly.FAST_RETRANSMISSION
                   | Anomaly.SPURIOUS_RETRANSMISSION | Anomaly.DUPLICATE_ACK
                   | Anomaly.LOST_SEGMENT | Anomaly.OUT_OF_ORDER)

STATE_COLOURS = {
    "CLOSED": "#d9d9d9", "LISTEN": "#d9d9d9", "SYN_SENT": "#c6dbef", "SYN_RECEIVED": "#c6dbef",
    "ESTABLISHED": "#c7e9c0", "FIN_WAIT_1": "#fdd0a2", "FIN_WAIT_2": "#fdd0a2",
    "CLOSE_WAIT": "#fdd0a2", "CLOSING": "#fdd0a2", "LAST_ACK": "#fdd0a2",
    "TIME_WAIT": "#dadaeb"}


@dataclass
class Arrow:
    index: int  # row index in the connection's packets
    from_client: bool
    y_send: float
    y_recv: float
    label: str
    pkt_no: int
    ts_ns: int
    flags: int
    unexpected: bool
    tags: list[str] = field(default_factory=list)  # as handshake show: "[TCP Dup ACK #1]"


@dataclass
class Band:
    first: int  # packet indexes [first, last]
    last: int
    y: float
    label: str


@dataclass
class Ladder:
    """What the diagram shows, computed before drawing (the tests read it)."""

    arrows: list[Arrow] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    # (role "client"/"server", state name, y) in drawing order
    states: list[tuple[str, str, float]] = field(default_factory=list)
    rows: float = 0.0


def ladder_plot(capture: Results, conn_id: int, *, ax: Axes | None = None,
                max_packets: int = 40, packets: Packets | None = None) -> Figure:
    """Ladder diagram of connection ``conn_id``.

    When the connection has more than ``max_packets`` packets, the longest runs of packets
    that change no state and carry no SYN, FIN or RST are collapsed into bands until it
    fits; the handshake and the close are always drawn packet by packet.
    """
    rec = capture.record(conn_id)
    pk = packets if packets is not None else packets_of(capture, conn_id)
    layout = build_ladder(rec, pk, capture.state_changes(conn_id), max_packets)
    if ax is None:
        fig = new_figure(9, 1.4 + 0.4 * (layout.rows + 3), margins=(0.1, 0.1, 0.4, 0.1))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    draw_ladder(ax, rec, pk, layout)
    return fig  # type: ignore[no-any-return]


def _relative(pk: Packets, k: int) -> tuple[int | None, int | None]:
    """Packet k's relative seq and ack (analyzer.relative's rule, as show and frames)."""
    mine, theirs = pk.bases if pk.from_client[k] else pk.bases[::-1]
    return relative(int(pk.seq[k]), mine), relative(int(pk.ack[k]), theirs)


def _label(pk: Packets, rec: dict[str, Any], k: int) -> str:
    flags = int(pk.flags[k])
    rseq, rack = _relative(pk, k)
    text = f"{flag_names(flags)}  seq={rseq}"
    if flags & ACK:
        text += f" ack={rack}"
    if pk.length[k]:
        text += f" len={int(pk.length[k])}"
    if flags & SYN:
        side = "client" if pk.from_client[k] else "server"
        opts = rec["handshake"][f"{side}_options"]
        if opts:
            parts = [f"MSS {opts['mss']}" if opts["mss"] is not None else "",
                     f"WS {opts['wscale']}" if opts["wscale"] is not None else "",
                     "SACK" if opts["sack_permitted"] else "", "TS" if opts["timestamps"] else ""]
            text += "\n" + ", ".join(p for p in parts if p)
    return text


def _eventful(pk: Packets, k: int) -> bool:
    changed = k == 0 or (pk.client_state[k] != pk.client_state[k - 1]
                         or pk.server_state[k] != pk.server_state[k - 1])
    return bool(changed or pk.flags[k] & (SYN | FIN | RST) or pk.unexpected[k]
                or pk.anomalies[k] & SHOWN_ANOMALIES)


def _collapse_runs(pk: Packets, max_packets: int) -> list[tuple[int, int]]:
    """Runs [first, last] of uneventful packets to collapse, longest first, until the
    diagram fits in ``max_packets`` rows (a band counts as two)."""
    n = len(pk)
    if n <= max_packets:
        return []
    runs, start = [], None
    for k in range(n + 1):
        quiet = k < n and not _eventful(pk, k)
        if quiet and start is None:
            start = k
        elif not quiet and start is not None:
            if k - start >= 4:
                runs.append((start, k - 1))
            start = None
    chosen, rows = [], n
    for first, last in sorted(runs, key=lambda r: r[0] - r[1]):
        if rows <= max_packets:
            break
        # Keep the first and last packet of the run as context around the band.
        if last - first >= 4:
            first, last = first + 1, last - 1
        chosen.append((first, last))
        rows -= (last - first + 1) - 2
    return sorted(chosen)


def build_ladder(rec: dict[str, Any], pk: Packets, transitions: Sequence[tuple[int, ...]],
                 max_packets: int) -> Ladder:
    out = Ladder()
    bands = dict(_collapse_runs(pk, max_packets))
    y = 0.0
    row_of: dict[int, int] = {}  # packet index -> arrow index
    k = 0
    n = len(pk)
    while k < n:
        if k in bands:
            last = bands[k]
            sel = slice(k, last + 1)
            c_bytes = int(pk.length[sel][pk.from_client[sel]].sum())
            s_bytes = int(pk.length[sel][~pk.from_client[sel]].sum())
            count = last - k + 1
            unit, per = time_unit(float(pk.ts_ns[last] - pk.ts_ns[k]))
            label = (f"{plural(count, 'segment')}, {human_bytes(c_bytes + s_bytes)} "
                     f"(client→server {human_bytes(c_bytes)}, server→client "
                     f"{human_bytes(s_bytes)}) in {(pk.ts_ns[last] - pk.ts_ns[k]) / per:,.1f} "
                     f"{unit}")
            out.bands.append(Band(k, last, y + 0.5, label))
            y += 2.0
            k = last + 1
            continue
        row_of[k] = len(out.arrows)
        out.arrows.append(Arrow(k, bool(pk.from_client[k]), y, y + SLANT, _label(pk, rec, k),
                                int(pk.pkt_no[k]), int(pk.ts_ns[k]), int(pk.flags[k]),
                                bool(pk.unexpected[k]),
                                tags(int(pk.anomalies[k]), int(pk.dup_ack_num[k]))))
        y += 1.0 + (0.35 if pk.flags[k] & SYN else 0.0)  # SYNs carry a line of options
        k += 1
    _cross_in_flight(pk, out, row_of)
    out.rows = y
    _place_states(out, transitions, pk)
    return out


def _cross_in_flight(pk: Packets, out: Ladder, row_of: dict[int, int]) -> None:
    """A segment that uses sequence space arrives after every later segment of the peer
    whose ACK does not cover it yet: the peer sent those before receiving it."""
    space = seq_space(pk)
    for arrow in out.arrows:
        k = arrow.index
        if space[k] == 0:
            continue
        end = (int(pk.seq[k]) + int(space[k])) % 2**32
        for j in range(k + 1, min(len(pk), k + 1 + CROSS_LOOKAHEAD)):
            if pk.from_client[j] == pk.from_client[k]:
                continue
            if j not in row_of:
                break
            covered = bool(pk.flags[j] & ACK) and ((int(pk.ack[j]) - end) % 2**32) < 2**31
            if covered or pk.flags[j] & RST:
                break
            other = out.arrows[row_of[j]]
            arrow.y_recv = max(arrow.y_recv, other.y_send + 0.45)


def _place_states(out: Ladder, transitions: Sequence[tuple[int, ...]], pk: Packets) -> None:
    """Each state change sits where its packet leaves (a send) or arrives (a receive)."""
    by_pkt = {a.pkt_no: a for a in out.arrows}
    band_of = {int(pk.pkt_no[b.first]): b for b in out.bands}
    for role, state, _ts, pkt, how, seen in transitions:
        who = "client" if role == 0 else "server"
        name = TcpState(state).name
        if how == 2:
            continue  # unexpected: drawn on the arrow, the state does not change
        arrow = by_pkt.get(pkt)
        if how == 1 or arrow is None:
            y = -0.9 if how == 1 else (band_of[pkt].y if pkt in band_of else out.rows)
        elif Input(seen).name.startswith("SEND"):
            y = arrow.y_send
        else:
            # The engine may note a receive at the packet that revealed it (the server's
            # SYN_RECEIVED at its SYN-ACK); its time is the segment's that was received.
            got = [a for a in out.arrows if a.from_client == (role == 1)
                   and a.pkt_no <= pkt and a.ts_ns <= _ts]
            y = got[-1].y_recv if got else arrow.y_recv
        out.states.append((who, name, y))


def _spread(states: list[tuple[str, str, float]], gap: float = 0.45
             ) -> list[tuple[str, str, float]]:
    """Two changes at the same moment (FIN_WAIT_2 then TIME_WAIT on one FIN,ACK) stack
    downwards instead of hiding each other."""
    last: dict[str, float] = {}
    out = []
    for who, name, y in sorted(states, key=lambda s: (s[0], s[2])):
        y = max(y, last.get(who, -1e9) + gap)
        last[who] = y
        out.append((who, name, y))
    return out


def draw_ladder(ax: Axes, rec: dict[str, Any], pk: Packets, layout: Ladder) -> None:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    top, bottom = -1.8, layout.rows + 0.6
    t0 = int(pk.ts_ns[0]) if len(pk) else 0
    unit, per = time_unit(float(pk.ts_ns[-1] - t0) if len(pk) else 0.0)
    for x, who in ((CLIENT_X, "client"), (SERVER_X, "server")):
        ax.plot([x, x], [top + 0.5, bottom], color="#444444", lw=1.5, zorder=1)
        ax.text(x, top, f"{who}\n{rec[who]}", ha="center", va="bottom", fontsize=10,
                fontweight="bold")
    for a in layout.arrows:
        x0, x1 = (CLIENT_X, SERVER_X) if a.from_client else (SERVER_X, CLIENT_X)
        colour = "#d62728" if a.flags & RST else ("#1f5fbf" if a.from_client else "#2a7f3f")
        ax.add_patch(FancyArrowPatch((x0, a.y_send), (x1, a.y_recv), arrowstyle="-|>",
                                     mutation_scale=14, color=colour, lw=1.4, zorder=3))
        # Label on the arrow's middle, nudged towards the sender so crossings stay legible.
        frac = 0.5 if a.y_recv - a.y_send <= SLANT + 1e-9 else 0.3
        xm, ym = x0 + (x1 - x0) * frac, a.y_send + (a.y_recv - a.y_send) * frac
        ax.text(xm, ym - 0.08, a.label, ha="center", va="bottom", fontsize=8,
                color=colour, zorder=4, linespacing=1.1,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        notes = a.tags + (["unexpected in this state"] if a.unexpected else [])
        if notes:  # Wireshark's analysis, worded as handshake show and tshark word it
            ax.text(xm, ym + 0.12, " ".join(notes), ha="center", va="top", fontsize=7,
                    color=_tag_colour(a), style="italic", zorder=4, gid=f"tags-{a.pkt_no}",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                          "alpha": 0.85})
        ax.text(-0.42, a.y_send + SLANT / 2, f"#{a.pkt_no}  {(a.ts_ns - t0) / per:,.3f} {unit}",
                ha="left", va="center", fontsize=7.5, color="#555555", family="monospace")
    for b in layout.bands:
        ax.add_patch(FancyBboxPatch((CLIENT_X + 0.03, b.y - 0.45), SERVER_X - CLIENT_X - 0.06,
                                    1.1, boxstyle="round,pad=0.02", fc="#eeeeee",
                                    ec="#999999", hatch="///", lw=1, zorder=2))
        ax.text((CLIENT_X + SERVER_X) / 2, b.y + 0.1, b.label.replace(" (", "\n("),
                ha="center", va="center", fontsize=8.5, zorder=3,
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999"})
    for who, name, y in _spread(layout.states):
        x = CLIENT_X - 0.03 if who == "client" else SERVER_X + 0.03
        ax.text(x, y, name, ha="right" if who == "client" else "left", va="center",
                fontsize=8.5, fontweight="bold", zorder=5,
                bbox={"boxstyle": "round,pad=0.25", "fc": STATE_COLOURS.get(name, "white"),
                      "ec": "#666666", "lw": 0.6})
    ax.set_xlim(-0.45, 1.4)
    ax.set_ylim(bottom + 0.2, top - 1.3)
    ax.axis("off")
    ax.set_title(f"connection {rec['id']}: {close_text(rec['close'])}, "
                 f"conn_state {rec['conn_state']}, history {rec['history']}", fontsize=10,
                 y=1.0)  # a fixed place: no search for tick labels to avoid


def _tag_colour(a: Arrow) -> str:
    """The time-sequence graph's colours: retransmissions red, duplicate ACKs purple."""
    if any("Retransmission" in t for t in a.tags) or a.unexpected:
        return "#d62728"
    if any("Dup ACK" in t for t in a.tags):
        return "#9467bd"
    return "#8c564b"


def close_text(close: dict[str, Any]) -> str:
    """How the connection ended, in words."""
    kind, who = close["kind"], close["initiator"]
    if kind in ("four_way", "three_way", "simultaneous"):
        return f"{kind.replace('_', '-')} close" + (f" started by {who}" if who else "")
    if kind == "reset":
        return f"reset by {close['reset_by'] or who}"
    if kind == "refused":
        return "refused: SYN answered by RST"
    other: dict[str, str] = {"unanswered": "SYN unanswered",
                             "incomplete": "handshake incomplete",
                             "open": "still open at the end of the capture"}
    return other.get(str(kind), str(kind))
