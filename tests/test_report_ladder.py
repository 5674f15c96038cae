"""Ladder diagrams drawn from the real loopback captures and from hand-built segments:
the tests read what was drawn (arrows, their labels, the state names and where they sit)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.patches import FancyArrowPatch  # noqa: E402

from analyzer.fsm import TcpState  # noqa: E402
from analyzer.report import ladder_plot  # noqa: E402
from regen_baselines import echo, long_transfer, simultaneous_close, \
    simultaneous_open  # noqa: E402

STATE_NAMES = {s.name for s in TcpState}


def drawn(fig: Any) -> dict[str, Any]:
    """Arrows (start, end), arrow labels, and the state names on each lifeline in order."""
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    ends = [(p._posA_posB[0], p._posA_posB[1]) for p in arrows]
    texts = ax.texts
    states: dict[str, list[tuple[float, str]]] = {"client": [], "server": []}
    labels = []
    for t in texts:
        s = t.get_text()
        x, y = t.get_position()
        if s in STATE_NAMES:
            states["client" if x < 0.5 else "server"].append((y, s))
        elif s.split("  ")[0].replace(",", "").isalpha() and "seq=" in s:
            labels.append((y, s))
    return {"arrows": ends, "labels": [s for _, s in sorted(labels)],
            "client": [s for _, s in sorted(states["client"])],
            "server": [s for _, s in sorted(states["server"])]}


def test_normal_connection_is_the_textbook_figure() -> None:
    d = drawn(ladder_plot(echo(0), 0))
    assert len(d["arrows"]) == 11
    assert [lab.split("  ")[0] for lab in d["labels"][:3]] == ["SYN", "SYN,ACK", "ACK"]
    assert d["labels"][0].startswith("SYN  seq=0\nMSS 65495")
    assert d["labels"][1].startswith("SYN,ACK  seq=0 ack=1")
    assert d["labels"][2] == "ACK  seq=1 ack=1"
    assert d["client"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert d["server"] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                           "CLOSED"]
    # Arrows alternate lifelines and run downwards, client at x=0, server at x=1.
    (x0, y0), (x1, y1) = d["arrows"][0]
    assert (x0, x1) == (0.0, 1.0) and y1 > y0
    (x0, y0), (x1, y1) = d["arrows"][1]
    assert (x0, x1) == (1.0, 0.0) and y1 > y0


def test_state_sits_where_its_packet_arrives_or_leaves() -> None:
    fig = ladder_plot(echo(0), 0)
    ax = fig.axes[0]
    arrows = [p._posA_posB for p in ax.patches if isinstance(p, FancyArrowPatch)]
    pos = {t.get_text() + ("@c" if t.get_position()[0] < 0.5 else "@s"): t.get_position()[1]
           for t in ax.texts if t.get_text() in STATE_NAMES}
    syn, synack, ack = arrows[0], arrows[1], arrows[2]
    assert pos["SYN_SENT@c"] == syn[0][1]  # leaves with the SYN
    assert pos["SYN_RECEIVED@s"] == syn[1][1]  # arrives with the SYN
    assert pos["ESTABLISHED@c"] == synack[1][1]
    assert pos["ESTABLISHED@s"] == ack[1][1]
    fin = arrows[7]
    assert pos["FIN_WAIT_1@c"] == fin[0][1] and pos["CLOSE_WAIT@s"] == fin[1][1]


def test_half_close_shows_data_after_the_fin() -> None:
    d = drawn(ladder_plot(echo(2), 2))
    assert len(d["arrows"]) == 14
    fin = next(i for i, lab in enumerate(d["labels"]) if lab.startswith("FIN,ACK"))
    after = [lab for lab in d["labels"][fin + 1:] if lab.startswith("PSH,ACK")]
    assert len(after) == 3 and all("len=28" in lab for lab in after)
    assert d["client"][2:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert d["server"][3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def test_reset_abort() -> None:
    d = drawn(ladder_plot(echo(3), 3))
    assert len(d["arrows"]) == 8
    assert d["labels"][-1].startswith("RST,ACK") or d["labels"][-1].startswith("RST")
    assert d["client"][-1] == "CLOSED" and d["server"][-1] == "CLOSED"
    assert "FIN_WAIT_1" not in d["client"]


def test_refused_syn() -> None:
    d = drawn(ladder_plot(echo(4), 4))
    assert len(d["arrows"]) == 2
    assert d["labels"][0].startswith("SYN  seq=0")
    assert d["labels"][1].startswith("RST,ACK")
    assert d["client"] == ["SYN_SENT", "CLOSED"]
    assert d["server"] == ["CLOSED"]


def test_simultaneous_open_syns_cross() -> None:
    d = drawn(ladder_plot(simultaneous_open(), 0))
    assert len(d["arrows"]) == 9
    assert [lab.split("  ")[0] for lab in d["labels"][:4]] == ["SYN", "SYN", "SYN,ACK",
                                                                "SYN,ACK"]
    (c0, c1), (s0, s1) = d["arrows"][0], d["arrows"][1]
    # The client's SYN reaches the server after the server sent its own: they cross.
    assert c1[1] > s0[1] and s1[1] > c0[1]
    # RFC 9293 figure 7 on both lifelines, then the client's close (three-way)
    for who in ("client", "server"):
        assert d[who][:3] == ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"], who
    assert d["client"][3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]  # ACK, then FIN
    assert d["server"][3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]


def test_simultaneous_close_fins_cross() -> None:
    d = drawn(ladder_plot(simultaneous_close(), 0))
    assert len(d["arrows"]) == 7
    fins = [i for i, lab in enumerate(d["labels"]) if lab.startswith("FIN")]
    assert len(fins) == 2
    (a0, a1), (b0, b1) = d["arrows"][3], d["arrows"][4]
    assert a0[0] == 0.0 and b0[0] == 1.0
    assert a1[1] > b0[1]  # the client's FIN arrives after the server sent its FIN
    # RFC 9293 figure 13 on both lifelines
    for who in ("client", "server"):
        assert d[who][-3:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT"], who


def test_long_data_phase_collapses_into_a_band() -> None:
    cap = long_transfer()
    fig = ladder_plot(cap, 0, max_packets=40)
    d = drawn(fig)
    bands = [t.get_text() for t in fig.axes[0].texts if "segments," in t.get_text()]
    # The one retransmission is drawn, not folded: it splits the data phase in two bands.
    assert len(bands) == 2
    n_packets = len(cap.packet_rows())
    hidden = sum(int(b.split(" segments")[0].replace(",", "")) for b in bands)
    assert len(d["arrows"]) + hidden == n_packets
    assert len(d["arrows"]) <= 40
    assert d["labels"][0].startswith("SYN") and d["labels"][-1].startswith("ACK")
    assert sum(lab.startswith("FIN") for lab in d["labels"]) == 2
    tagged = [t.get_text() for t in fig.axes[0].texts if t.get_gid() and
              t.get_gid().startswith("tags-")]
    assert tagged == ["[TCP Spurious Retransmission]"]  # its data was ACKed already
    full = drawn(ladder_plot(cap, 0, max_packets=10_000))
    assert len(full["arrows"]) == n_packets


def show_tags(path: str, conn: int) -> dict[int, list[str]]:
    """Packet number -> the [...] tags ``handshake show`` prints for it."""
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "analyzer", "show", path, str(conn)],
                         capture_output=True, text=True, check=True).stdout
    tags = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+\d+\.\d+\s", line)
        if m:
            tags[int(m.group(1))] = re.findall(r"\[TCP [^]]+\]", line)
    return tags


def ladder_tags(fig: Any) -> dict[int, list[str]]:
    from analyzer.report.ladder import build_ladder  # noqa: F401 - the gid names the packet

    return {int(t.get_gid().split("-")[1]): t.get_text().split("] ")
            for t in fig.axes[0].texts if (t.get_gid() or "").startswith("tags-")}


def _normalise(tags: dict[int, list[str]]) -> dict[int, list[str]]:
    return {k: [t if t.endswith("]") else t + "]" for t in v if t.startswith("[TCP")]
            for k, v in tags.items() if any(t.startswith("[TCP") for t in v)}


def test_retransmitted_syns_are_tagged_as_show_tags_them() -> None:
    """The listen-backlog overflow of the real loopback capture: the client's SYN went
    out three times; the ladder tags the same packets with the same words as show."""
    from regen_baselines import CAPTURES

    for conn in (7, 8):
        fig = ladder_plot(echo(conn), conn)
        shown = {k: v for k, v in show_tags(str(CAPTURES / "echo-lo.pcap"), conn).items() if v}
        assert shown and any("Retransmission" in t for v in shown.values() for t in v)
        assert _normalise(ladder_tags(fig)) == shown


def test_fast_retransmission_and_dup_acks_on_the_ladder() -> None:
    """Zeek's retransmit-fast009.pcap: five duplicate ACKs, a fast retransmission and two
    retransmissions, tagged on their arrows as handshake show tags them."""
    import analyzer
    from regen_baselines import ROOT

    trace = ROOT.parent / "shared" / "corpus" / "zeek" / "traces" / "retransmit-fast009.pcap"
    if not trace.exists():
        pytest.skip("needs ../shared/corpus/zeek")
    fig = ladder_plot(analyzer.read(str(trace), record=0), 0)
    got = _normalise(ladder_tags(fig))
    assert got == {k: v for k, v in show_tags(str(trace), 0).items() if v}
    assert got[29] == ["[TCP Dup ACK #1]"] and got[35] == ["[TCP Dup ACK #5]"]
    assert got[32] == ["[TCP Fast Retransmission]"]


def test_unknown_connection_is_a_usage_error() -> None:
    from analyzer.errors import UsageError

    with pytest.raises(UsageError, match="no connection 99"):
        ladder_plot(echo(None), 99)


def test_rows_are_read_again_when_the_capture_has_none() -> None:
    d = drawn(ladder_plot(echo(None), 1))
    assert len(d["arrows"]) == 10
