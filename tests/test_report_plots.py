"""Time-sequence graphs, the capture overview and the state diagram: what was drawn."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from analyzer.fsm import TRANSITIONS, TcpState  # noqa: E402
from analyzer.report import fsm_plot, overview_plot, sequence_plot  # noqa: E402
from analyzer.report.fsm_diagram import (  # noqa: E402
    INPUT_TEXT,
    RESET_INPUTS,
    ROUTES,
    drawn_edges,
)
from analyzer.report.sequence import COLUMNS  # noqa: E402
from regen_baselines import echo, long_transfer  # noqa: E402


def collection(ax: Any, label: str) -> Any:
    found = [c for c in ax.collections if c.get_label() == label]
    assert found, f"nothing drawn as {label!r}"
    return found[0]


def test_half_close_sequence_bars_and_acks() -> None:
    fig = sequence_plot(echo(2), 2)
    top, bottom = fig.axes
    assert top.get_title(loc="left") == "client → server: 16 payload bytes in 1 segment"
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
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    drawn = drawn_edges()
    # One arrow per state change of the table (resets aside), plus the 2 MSL timer.
    assert set(arrows) == {f"edge-{a.name}-{b.name}" for a, b in drawn} | {
        "timer-TIME_WAIT-CLOSED"}
    labels = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    for (a, b), inputs in drawn.items():
        assert labels[f"label-edge-{a.name}-{b.name}"] == " / ".join(
            INPUT_TEXT[i] for i in inputs)
    # Every state change has a hand-made route (a new one in the table fails here).
    assert set(ROUTES) == set(drawn)
    # What is not drawn is listed: resets and the inputs that keep a state.
    notes = labels["notes"]
    for (state, seen), nxt in TRANSITIONS.items():
        if seen in RESET_INPUTS and nxt == TcpState.CLOSED and state != TcpState.CLOSED:
            assert state.name in notes.split("CLOSED from:")[1].split(".")[0]
        if state == nxt and seen not in RESET_INPUTS:
            assert INPUT_TEXT[seen] in notes
    assert not [p for p in ax.collections if isinstance(p, PathCollection)]


def test_state_diagram_labels_sit_on_their_own_arrow_and_never_collide() -> None:
    """The old figure had colliding labels and one on the wrong arrow: each label's centre
    is on its own route, and no two labels or a label and a state box overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = fsm_plot()
    ax = fig.axes[0]
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = {t.get_gid(): t.get_window_extent(renderer) for t in ax.texts
             if (t.get_gid() or "").startswith(("label-", "state-"))}
    for (a, b) in drawn_edges():
        route, _segment, _at = ROUTES[(a, b)]
        x, y = [t for t in ax.texts if t.get_gid() == f"label-edge-{a.name}-{b.name}"][
            0].get_position()
        assert any(_on_segment((x, y), p, q) for p, q in zip(route, route[1:])), (a, b)
    names = sorted(boxes)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not boxes[first].overlaps(boxes[second]), (first, second)


def _on_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
                ) -> bool:
    (x, y), (x0, y0), (x1, y1) = p, a, b
    cross = (x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)
    inside = min(x0, x1) - 1e-9 <= x <= max(x0, x1) + 1e-9 and \
        min(y0, y1) - 1e-9 <= y <= max(y0, y1) + 1e-9
    return abs(cross) < 1e-9 and inside


def test_late_reset_does_not_squash_the_time_axis() -> None:
    """Real loopback abort (echo-lo connection 3): the data is over in 0.5 ms, the RST
    comes 50 ms later. The axis ends with the data and the RST is marked off scale."""
    cap = echo(3)
    fig = sequence_plot(cap, 3)
    client, server = fig.axes
    low, high = client.get_xlim()
    assert server.get_xlabel().startswith("time since first SYN (µs)")
    assert 500 < high < 600  # µs: the last data packet (#42) is 522 µs after the SYN
    notes = [t.get_text() for t in client.texts if t.get_gid() == "off-scale"]
    assert len(notes) == 1 and notes[0].startswith("RST,ACK at 50.")
    assert notes[0].endswith(" ms")
    assert not [t for t in server.texts if t.get_gid() == "off-scale"]  # the client sent it
    # A connection without a long tail keeps its whole time axis.
    half = sequence_plot(echo(2), 2)
    assert not [t for ax in half.axes for t in ax.texts if t.get_gid() == "off-scale"]
    assert half.axes[1].get_xlim()[1] > 150  # ms: its last packet


def test_zeek_fast_retransmit_trace_is_zoomed_to_its_data() -> None:
    """Zeek's retransmit-fast009.pcap: 0.83 s of transfer, then a RST at 61 s."""
    import analyzer
    from regen_baselines import ROOT

    trace = ROOT.parent / "shared" / "corpus" / "zeek" / "traces" / "retransmit-fast009.pcap"
    if not trace.exists():
        pytest.skip("needs ../shared/corpus/zeek")
    fig = sequence_plot(analyzer.read(str(trace), record=0), 0)
    client, server = fig.axes
    assert server.get_xlabel().startswith("time since first SYN (ms)")
    assert 827 < client.get_xlim()[1] < 900
    assert [t.get_text() for t in client.texts if t.get_gid() == "off-scale"] == [
        "RST,ACK at 61.0 s"]
    # The RST's zero window is no advertisement: the window line keeps its last value.
    window = [ln for ln in server.get_lines() if ln.get_label().startswith("receive window")]
    assert min(window[0].get_ydata()[-3:]) > 60_000
    assert "3 retransmitted" in server.get_title(loc="left")


def test_short_connection_has_whole_byte_ticks() -> None:
    """A refused SYN spans 1 sequence number: ticks 0 and 1, never "250 mB"."""
    fig = sequence_plot(echo(4), 4)
    for ax in fig.axes:
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
