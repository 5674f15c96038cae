"""Time-sequence graphs, the capture overview and the state diagram: what was drawn."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from analyzer.fsm import TRANSITIONS  # noqa: E402
from analyzer.report import fsm_plot, overview_plot, sequence_plot  # noqa: E402
from analyzer.report.fsm_diagram import INPUT_TEXT, RESET_INPUTS, edges  # noqa: E402
from analyzer.report.sequence import COLUMNS  # noqa: E402
from regen_baselines import echo, long_transfer  # noqa: E402


def collection(ax: Any, label: str) -> Any:
    found = [c for c in ax.collections if c.get_label() == label]
    assert found, f"nothing drawn as {label!r}"
    return found[0]


def test_half_close_sequence_bars_and_acks() -> None:
    fig = sequence_plot(echo(2), 2)
    top, bottom = fig.axes
    assert top.get_title(loc="left").startswith("client → server: 16 payload bytes in 1 ")
    bars = collection(bottom, "data server→client").get_segments()
    # Three 28-byte echoes after the handshake: bars from seq to seq+len, relative.
    assert [(b[0][1], b[1][1]) for b in bars] == [(1, 29), (29, 57), (57, 85)]
    client_bar = collection(top, "data client→server").get_segments()
    assert [(b[0][1], b[1][1]) for b in client_bar] == [(1, 17)]
    ack_line = [ln for ln in top.get_lines() if ln.get_label() == "ACK from server"][0]
    assert max(ack_line.get_ydata()) == 18  # 16 bytes + SYN + FIN
    fin = collection(bottom, "FIN").get_offsets()
    assert fin[0][1] == 85  # the server's FIN takes sequence number 85
    assert "time since first SYN (ms)" == bottom.get_xlabel()


def test_absolute_sequence_numbers() -> None:
    cap = echo(2)
    isn = cap.record(2)["handshake"]["server_isn"]
    fig = sequence_plot(cap, 2, absolute=True)
    bars = collection(fig.axes[1], "data server→client").get_segments()
    assert bars[0][0][1] == isn + 1


def test_retransmission_has_its_own_colour() -> None:
    fig = sequence_plot(long_transfer(segments=60, retransmit=20), 0)
    server = fig.axes[1]
    again = collection(server, "retransmission").get_segments()
    assert len(again) == 1
    assert (again[0][0][1], again[0][1][1]) == (1 + 19 * 1448, 1 + 20 * 1448)
    assert "1 retransmitted" in server.get_title(loc="left")
    assert len(collection(server, "data server→client").get_segments()) == 60


def test_one_direction_on_a_given_axes() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    assert sequence_plot(echo(2), 2, ax=ax) is fig
    assert len(fig.axes) == 1
    assert ax.get_title(loc="left").startswith("server → client")  # it sent more


def test_many_segments_are_decimated_to_columns() -> None:
    fig = sequence_plot(long_transfer(segments=6000, retransmit=None), 0)
    server = fig.axes[1]
    bars = collection(server, "data server→client").get_segments()
    assert len(bars) <= COLUMNS
    # The envelope still reaches the end of the transfer.
    assert max(b[1][1] for b in bars) == 1 + 6000 * 1448
    assert "decimated" in server.get_title(loc="left")


def test_overview_panels() -> None:
    cap = echo(-2)
    fig = overview_plot(cap)
    axes = {ax.get_title(loc="left").split(" ")[0]: ax for ax in fig.axes}
    timeline = [c for c in axes["every"].collections if isinstance(c, LineCollection)][0]
    assert len(timeline.get_segments()) == len(cap) == 13
    legend = [t.get_text() for t in axes["every"].get_legend().get_texts()]
    assert "three way (7)" in legend and "refused (1)" in legend
    states = [t.get_text() for t in axes["Zeek"].get_yticklabels()]
    assert states[0].startswith("SF")
    assert [p.get_width() for p in axes["Zeek"].patches][0] == 10
    syn_lines = {ln.get_label(): ln for ln in axes["per"].get_lines()}
    # The listen(1) backlog overflow: 14 SYNs reached port 9503 for 6 handshakes.
    assert "port 9503: SYNs received (14)" in syn_lines
    assert "port 9503: handshakes completed (6)" in syn_lines
    assert max(syn_lines["port 9503: SYNs received (14)"].get_ydata()) == 14
    hist = axes["handshake"]
    assert sum(p.get_height() for p in hist.patches) == 12


def test_overview_without_rows_counts_first_syns_and_retransmissions() -> None:
    fig = overview_plot(echo(None))
    per = [ax for ax in fig.axes if ax.get_title(loc="left").startswith("per")][0]
    assert "port 9503: SYNs received (14)" in [ln.get_label() for ln in per.get_lines()]


def test_state_diagram_is_drawn_from_the_table() -> None:
    fig = fsm_plot()
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    groups = edges()
    solid = sum(1 for ins in groups.values() if any(i not in RESET_INPUTS for i in ins))
    dashed = sum(1 for ins in groups.values() if any(i in RESET_INPUTS for i in ins))
    assert len(arrows) == solid + dashed
    assert sum(1 for a in arrows if a.get_linestyle() == "--") == dashed
    labels = " ".join(t.get_text() for t in ax.texts)
    for (state, seen), nxt in TRANSITIONS.items():
        assert state.name in labels
        if state != nxt and seen not in RESET_INPUTS:
            assert INPUT_TEXT[seen] in labels
    gids = {a.get_gid() for a in arrows}
    assert "edge-ESTABLISHED-FIN_WAIT_1" in gids and "edge-FIN_WAIT_2-TIME_WAIT" in gids
    assert not [p for p in ax.collections if isinstance(p, PathCollection)]
