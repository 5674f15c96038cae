"""The RFC 9293 state diagram, drawn from ``analyzer.fsm.TRANSITIONS``.

Only the node positions are chosen here (the classic RFC 793 figure 6 layout); every
arrow and every label comes from the table, so the picture cannot drift from the code.
Resets (RST sent or received) lead to CLOSED from almost every state: they are drawn
as thin dashed arrows to a second CLOSED box at the bottom, as the RFC's figure does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..fsm import TRANSITIONS, Input, TcpState
from ._data import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

S = TcpState
POSITIONS: dict[TcpState, tuple[float, float]] = {
    S.CLOSED: (3.0, 9.0), S.LISTEN: (3.0, 7.6), S.SYN_RECEIVED: (0.9, 6.0),
    S.SYN_SENT: (5.1, 6.0), S.ESTABLISHED: (3.0, 4.6), S.FIN_WAIT_1: (0.9, 3.1),
    S.CLOSE_WAIT: (5.1, 3.1), S.FIN_WAIT_2: (0.9, 1.3), S.CLOSING: (3.0, 1.9),
    S.LAST_ACK: (5.1, 1.3), S.TIME_WAIT: (3.0, 0.2)}
FINAL_CLOSED = (5.1, -0.5)  # the second CLOSED box, target of resets and LAST_ACK
RESET_INPUTS = (Input.SEND_RST, Input.RECV_RST)

INPUT_TEXT = {Input.SEND_SYN: "snd SYN", Input.SEND_SYN_ACK: "snd SYN,ACK",
              Input.SEND_FIN: "snd FIN", Input.SEND_RST: "snd RST", Input.RECV_SYN: "rcv SYN",
              Input.RECV_SYN_ACK: "rcv SYN,ACK", Input.RECV_ACK_OF_SYN: "rcv ACK of SYN",
              Input.RECV_FIN: "rcv FIN", Input.RECV_ACK_OF_FIN: "rcv ACK of FIN",
              Input.RECV_RST: "rcv RST"}


def edges() -> dict[tuple[TcpState, TcpState], list[Input]]:
    """State changes of the table grouped by (from, to); self-loops left out."""
    grouped: dict[tuple[TcpState, TcpState], list[Input]] = defaultdict(list)
    for (state, seen), nxt in TRANSITIONS.items():
        if state != nxt:
            grouped[(state, nxt)].append(seen)
    return dict(grouped)


def fsm_plot(*, ax: Axes | None = None) -> Figure:
    """The TCP state machine: one arrow per state change in the transition table."""
    from matplotlib.patches import FancyArrowPatch

    if ax is None:
        fig = new_figure(10, 10)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    box = {"boxstyle": "round,pad=0.45", "ec": "#333333", "lw": 1.2}
    for state, (x, y) in POSITIONS.items():
        ax.text(x, y, state.name, ha="center", va="center", fontsize=10, fontweight="bold",
                bbox={**box, "fc": "#c7e9c0" if state == S.ESTABLISHED else "#e8eef7"},
                zorder=3, gid=f"state-{state.name}")
        loops = [INPUT_TEXT[i] for (s, i), n in TRANSITIONS.items() if s == state == n
                 and i not in RESET_INPUTS]
        if loops:
            ax.text(x, y - 0.42, "stays on: " + ", ".join(loops), ha="center", va="top",
                    fontsize=6.5, color="#777777", wrap=True, zorder=3)
    ax.text(*FINAL_CLOSED, "CLOSED", ha="center", va="center", fontsize=10,
            fontweight="bold", bbox={**box, "fc": "#e8eef7"}, zorder=3)
    for (src, dst), inputs in sorted(edges().items()):
        resets = [i for i in inputs if i in RESET_INPUTS]
        others = [i for i in inputs if i not in RESET_INPUTS]
        end = FINAL_CLOSED if dst == S.CLOSED and src not in (S.SYN_SENT, S.LISTEN) \
            else POSITIONS[dst]
        if dst == S.CLOSED and src == S.SYN_SENT:
            end = POSITIONS[S.CLOSED]
        if others:
            _arrow(ax, FancyArrowPatch, POSITIONS[src], end, " / ".join(
                INPUT_TEXT[i] for i in others), dashed=False, gid=f"edge-{src.name}-{dst.name}")
        if resets:
            _arrow(ax, FancyArrowPatch, POSITIONS[src], end,
                   "/".join(INPUT_TEXT[i].split()[0] for i in resets) + " RST",
                   dashed=True, gid=f"edge-{src.name}-{dst.name}-rst")
    ax.text(0.0, -1.15, "solid: state changes of analyzer.fsm.TRANSITIONS (snd = the endpoint "
            "sends, rcv = it receives)\ndashed grey: RST sent or received",
            fontsize=8, color="#555555", va="top")
    ax.set_xlim(-0.6, 6.6)
    ax.set_ylim(-1.6, 9.6)
    ax.axis("off")
    ax.set_title("TCP connection states (RFC 9293 section 3.3.2), drawn from the tracker's "
                 "transition table", fontsize=11)
    return fig  # type: ignore[no-any-return]


def _arrow(ax: Axes, cls: Any, a: tuple[float, float], b: tuple[float, float], label: str,
           dashed: bool, gid: str) -> None:
    rad = 0.18 if not dashed else -0.12
    colour = "#999999" if dashed else "#1f4e99"
    patch = cls(a, b, arrowstyle="-|>", mutation_scale=13, shrinkA=22, shrinkB=22,
                connectionstyle=f"arc3,rad={rad}", color=colour, lw=0.8 if dashed else 1.3,
                ls="--" if dashed else "-", zorder=1, gid=gid)
    ax.add_patch(patch)
    if dashed:
        return  # the legend explains every dashed arrow; labels would hide the figure
    # Label at the curve's midpoint (arc3 bends by rad times the chord, to its left).
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    dx, dy = b[0] - a[0], b[1] - a[1]
    lx, ly = mx - rad * dy / 2, my + rad * dx / 2
    ax.text(lx, ly, label, ha="center", va="center", fontsize=7 if dashed else 8,
            color="#777777" if dashed else "#1f4e99", zorder=2, gid=f"label-{gid}",
            bbox={"boxstyle": "round,pad=0.12", "fc": "white", "ec": "none", "alpha": 0.9})
