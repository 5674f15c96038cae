"""The RFC 9293 state diagram, drawn from ``analyzer.fsm.TRANSITIONS``.

Laid out as RFC 9293's figure 5: CLOSED and LISTEN on top, SYN-RECEIVED left and
SYN-SENT right, ESTABLISHED in the middle, the active close down the left column, the
passive close down the right, TIME-WAIT at the bottom. Only the geometry is chosen here
(box positions, and for each state change an orthogonal route and the place of its
label on that route); which arrows exist and what their labels say come from the table,
so the picture cannot drift from the code: a table change without a route here is drawn
as a straight arrow and fails tests/test_report_plots.py.

Resets (RST sent or received) lead to CLOSED from almost every state and RST-free
self-loops keep a state: both are listed under the figure, not drawn as arrows (figure 5
leaves them out as well). The 2 MSL timer of TIME-WAIT is no segment, so it is not in
the table; it is drawn dotted, as the one arrow that does not come from it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from ..fsm import TRANSITIONS, Input, TcpState
from ._data import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

S = TcpState
Point = tuple[float, float]

L, C, R = 1.2, 4.4, 7.6  # the three columns of figure 5
POSITIONS: dict[TcpState, Point] = {
    S.CLOSED: (C, 10.3), S.LISTEN: (C, 8.7), S.SYN_RECEIVED: (L, 7.0),
    S.SYN_SENT: (R, 7.0), S.ESTABLISHED: (C, 5.4), S.FIN_WAIT_1: (L, 3.6),
    S.CLOSE_WAIT: (R, 3.6), S.FIN_WAIT_2: (L, 1.9), S.CLOSING: (C, 1.9),
    S.LAST_ACK: (R, 1.9), S.TIME_WAIT: (C, 0.3)}
FINAL_CLOSED: Point = (R, 0.3)  # figure 5's second CLOSED box, after LAST-ACK and TIME-WAIT
HALF_W, HALF_H = 0.8, 0.25  # a state box, in data units
RESET_INPUTS = (Input.SEND_RST, Input.RECV_RST)

INPUT_TEXT = {Input.SEND_SYN: "snd SYN", Input.SEND_SYN_ACK: "snd SYN,ACK",
              Input.SEND_FIN: "snd FIN", Input.SEND_RST: "snd RST", Input.RECV_SYN: "rcv SYN",
              Input.RECV_SYN_ACK: "rcv SYN,ACK", Input.RECV_ACK_OF_SYN: "rcv ACK of SYN",
              Input.RECV_FIN: "rcv FIN", Input.RECV_ACK_OF_FIN: "rcv ACK of FIN",
              Input.RECV_RST: "rcv RST"}

#: (from, to) -> (route from box edge to box edge, index of the route's segment that
#: carries the label, where along it (0..1)). Arrows into one box arrive at different
#: points so their heads never meet.
ROUTES: dict[tuple[TcpState, TcpState], tuple[list[Point], int, float]] = {
    (S.CLOSED, S.SYN_SENT): ([(C + HALF_W, 10.3), (R + 0.4, 10.3), (R + 0.4, 7.0 + HALF_H)],
                             1, 0.45),
    (S.LISTEN, S.SYN_SENT): ([(C + HALF_W, 8.7), (R - 0.4, 8.7), (R - 0.4, 7.0 + HALF_H)],
                             0, 0.5),
    (S.LISTEN, S.SYN_RECEIVED): ([(C - HALF_W, 8.7), (L, 8.7), (L, 7.0 + HALF_H)], 0, 0.5),
    (S.SYN_SENT, S.SYN_RECEIVED): ([(R - HALF_W, 7.0), (L + HALF_W, 7.0)], 0, 0.5),
    (S.SYN_SENT, S.ESTABLISHED): ([(R - 0.4, 7.0 - HALF_H), (R - 0.4, 5.4),
                                   (C + HALF_W, 5.4)], 1, 0.45),
    (S.SYN_RECEIVED, S.ESTABLISHED): ([(L + 0.4, 7.0 - HALF_H), (L + 0.4, 5.4),
                                       (C - HALF_W, 5.4)], 1, 0.5),
    (S.SYN_RECEIVED, S.FIN_WAIT_1): ([(L - 0.5, 7.0 - HALF_H), (L - 0.5, 3.6 + HALF_H)],
                                     0, 0.3),
    (S.SYN_RECEIVED, S.CLOSE_WAIT): ([(L, 7.0 - HALF_H), (L, 4.45), (R, 4.45),
                                      (R, 3.6 + HALF_H)], 1, 0.84),
    (S.ESTABLISHED, S.FIN_WAIT_1): ([(C - 0.45, 5.4 - HALF_H), (C - 0.45, 3.6),
                                     (L + HALF_W, 3.6)], 1, 0.45),
    (S.ESTABLISHED, S.CLOSE_WAIT): ([(C + 0.45, 5.4 - HALF_H), (C + 0.45, 3.6),
                                     (R - HALF_W, 3.6)], 1, 0.55),
    (S.FIN_WAIT_1, S.FIN_WAIT_2): ([(L, 3.6 - HALF_H), (L, 1.9 + HALF_H)], 0, 0.5),
    (S.FIN_WAIT_1, S.CLOSING): ([(L + 0.5, 3.6 - HALF_H), (L + 0.5, 2.75), (C, 2.75),
                                 (C, 1.9 + HALF_H)], 1, 0.6),
    (S.FIN_WAIT_2, S.TIME_WAIT): ([(L, 1.9 - HALF_H), (L, 0.3), (C - HALF_W, 0.3)], 1, 0.5),
    (S.CLOSE_WAIT, S.LAST_ACK): ([(R, 3.6 - HALF_H), (R, 1.9 + HALF_H)], 0, 0.5),
    (S.CLOSING, S.TIME_WAIT): ([(C, 1.9 - HALF_H), (C, 0.3 + HALF_H)], 0, 0.5),
    (S.LAST_ACK, S.CLOSED): ([(R, 1.9 - HALF_H), (R, 0.3 + HALF_H)], 0, 0.5),
}
TIMER_ROUTE: list[Point] = [(C + HALF_W, 0.3), (R - HALF_W, 0.3)]


def edges() -> dict[tuple[TcpState, TcpState], list[Input]]:
    """State changes of the table grouped by (from, to); self-loops left out."""
    grouped: dict[tuple[TcpState, TcpState], list[Input]] = defaultdict(list)
    for (state, seen), nxt in TRANSITIONS.items():
        if state != nxt:
            grouped[(state, nxt)].append(seen)
    return dict(grouped)


def drawn_edges() -> dict[tuple[TcpState, TcpState], list[Input]]:
    """The arrows: every state change but the resets (listed under the figure)."""
    out = {}
    for pair, inputs in edges().items():
        kept = [i for i in inputs if i not in RESET_INPUTS]
        if kept:
            out[pair] = kept
    return out


def label_point(route: list[Point], segment: int, at: float) -> Point:
    (x0, y0), (x1, y1) = route[segment], route[segment + 1]
    return x0 + (x1 - x0) * at, y0 + (y1 - y0) * at


def fsm_plot(*, ax: Axes | None = None) -> Figure:
    """The TCP state machine: one arrow per state change in the transition table."""
    from matplotlib.patches import Rectangle

    if ax is None:
        fig = new_figure(10, 11, margins=(0.1, 0.1, 0.5, 0.1))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for (src, dst), inputs in sorted(drawn_edges().items()):
        route, segment, at = ROUTES.get((src, dst), _straight(src, dst))
        _arrow(ax, route, segment, at, " / ".join(INPUT_TEXT[i] for i in inputs),
               f"edge-{src.name}-{dst.name}")
    _arrow(ax, TIMER_ROUTE, 0, 0.5, "2 MSL timeout", "timer-TIME_WAIT-CLOSED", dotted=True)
    for state, (x, y) in [*POSITIONS.items(), (S.CLOSED, FINAL_CLOSED)]:
        # Boxes of one size, so every route starts and ends exactly on an edge.
        ax.add_patch(Rectangle((x - HALF_W, y - HALF_H), 2 * HALF_W, 2 * HALF_H, zorder=4,
                               fc="#c7e9c0" if state == S.ESTABLISHED else "#e8eef7",
                               ec="#333333", lw=1.2))
        ax.text(x, y, state.name, ha="center", va="center", fontsize=10, fontweight="bold",
                zorder=5, gid=f"state-{state.name}")
    ax.text(0.02, 0.0, _notes(), transform=ax.transAxes, fontsize=8, color="#444444",
            va="bottom", ha="left", linespacing=1.5, gid="notes")
    ax.set_xlim(-0.2, 9.0)
    ax.set_ylim(-2.3, 10.9)
    ax.axis("off")
    ax.set_title("TCP connection states (RFC 9293 section 3.3.2, laid out as its figure 5), "
                 "drawn from the tracker's transition table", fontsize=11, y=1.0)
    return fig  # type: ignore[no-any-return]


def _straight(src: TcpState, dst: TcpState) -> tuple[list[Point], int, float]:
    end = FINAL_CLOSED if dst == S.CLOSED else POSITIONS[dst]
    return [POSITIONS[src], end], 0, 0.5


def _notes() -> str:
    """What is not drawn, from the same table: resets and self-loops."""
    reset = [s.name for s in TcpState if any(
        TRANSITIONS.get((s, i)) == S.CLOSED and s != S.CLOSED for i in RESET_INPUTS)]
    loops = []
    for state in TcpState:
        kept = [INPUT_TEXT[i] for (s, i), n in TRANSITIONS.items()
                if s == state == n and i not in RESET_INPUTS]
        if kept:
            loops.append(f"{state.name} ({', '.join(kept)})")
    return ("snd = the endpoint is seen to send, rcv = to receive (the capture cannot see "
            "OPEN and CLOSE calls, only the segments they cause).\n"
            f"RST sent or received -> CLOSED from: {', '.join(reset)}.\n"
            + _wrap("Stay in their state on: ", loops, 125) + ".")


def _wrap(head: str, items: list[str], width: int) -> str:
    """``head`` and the items, comma separated, lines broken between items only."""
    lines = [head]
    for n, item in enumerate(items):
        text = item + (", " if n < len(items) - 1 else "")
        if len(lines[-1]) + len(text) > width:
            lines.append("    ")
        lines[-1] += text
    return "\n".join(line.rstrip() for line in lines)


def _arrow(ax: Axes, route: list[Point], segment: int, at: float, label: str, gid: str,
           dotted: bool = False) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    colour = "#777777" if dotted else "#1f4e99"
    ax.add_patch(FancyArrowPatch(path=Path(route), arrowstyle="-|>", mutation_scale=14,
                                 color=colour, lw=1.3, ls=":" if dotted else "-", zorder=2,
                                 gid=gid))
    x, y = label_point(route, segment, at)
    ax.text(x, y, label, ha="center", va="center", fontsize=8.5, color=colour, zorder=3,
            gid=f"label-{gid}",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.95})
