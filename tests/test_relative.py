"""One connection, four views, one truth: ``handshake show``, the ladder, the
time-sequence graph and ``Capture.packets`` give every packet the same relative seq/ack
(analyzer.relative's rule) and the same endpoint states, and those states are the ones
the jsonl ``states`` / transitions say. On real captures, with and without the SYN."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.relative import seq_bases
from analyzer.show import show

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

from analyzer.report._data import new_figure, packets_of  # noqa: E402
from analyzer.report.ladder import build_ladder  # noqa: E402
from analyzer.report.sequence import draw_direction  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZEEK = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"
MOD = 2**32

LOCAL = [ROOT / "captures" / name for name in ("echo-lo.pcap", "echo-any.pcap", "echo.pcapng")]
# Zeek's traces where a SYN (or the whole start) was not captured, and a reordered one
CORPUS = [ZEEK / name for name in ("ssh.pcap", "missing-syn.pcap",
                                   "http-on-irc-port-missing-syn.pcapng",
                                   "one-sided-2745.pcap", "handshake-reorder.pcap",
                                   "syn-then-stuff-then-rst.pcap")]
FILES = LOCAL + [p for p in CORPUS if p.exists()]


def show_rows(path: Path, conn_id: int) -> dict[int, tuple[int, int | None, str, str]]:
    """packet -> (seq, ack or None, client state, server state) as ``show`` prints them."""
    out = io.StringIO()
    show(str(path), conn_id, out)
    rows = {}
    for line in out.getvalue().splitlines():
        tok = line.split()
        if not tok or not tok[0].isdigit() or tok[2] not in ("->", "<-"):
            continue
        has_ack = "." in tok[3]
        seq, ack = int(tok[4]), (int(tok[5]) if has_ack else None)
        states = tok[7 + has_ack:9 + has_ack]  # after seq, ack, len, win
        rows[int(tok[0])] = (seq, ack, *(s.rstrip("*") for s in states))
    return rows


def replayed_states(cap: analyzer.Capture, conn_id: int, packets: list[int]
                    ) -> dict[int, tuple[str, str]]:
    """Each endpoint's state after each packet, from the transitions alone (the jsonl
    ``states``): the last change at or before that packet."""
    from analyzer.records import STATE_NAMES

    changes = [(pkt, role, STATE_NAMES[state])
               for role, state, _t, pkt, how, _i in cap.state_changes(conn_id) if how != 2]
    out = {}
    for pkt in packets:
        now = ["-", "-"]
        for at, role, name in changes:
            if at <= pkt:
                now[role] = name
        out[pkt] = (now[0], now[1])
    return out


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.name)
def capture(request: pytest.FixtureRequest) -> tuple[Path, analyzer.Capture]:
    return request.param, analyzer.read(str(request.param), record=-2)


def test_every_view_agrees_on_every_packet(capture: tuple[Path, analyzer.Capture]) -> None:
    path, cap = capture
    frame = cap.packets
    checked = 0
    for conn_id in range(len(cap)):
        rec = cap.record(conn_id)
        printed = show_rows(path, conn_id)
        rows = frame[frame["conn_id"] == conn_id]
        assert sorted(printed) == rows["packet"].tolist()
        pk = packets_of(cap, conn_id)
        ladder = build_ladder(rec, pk, cap.state_changes(conn_id), max_packets=10**9)
        labels = {a.pkt_no: a.label for a in ladder.arrows}
        plotted: dict[str, dict[int, int]] = {"seq": {}, "ack": {}}
        fig = new_figure(4, 3)
        for sender in ("client", "server"):
            drawn = draw_direction(fig.add_subplot(), rec, pk, sender)
            plotted["seq"].update(drawn["seq_of"])
            plotted["ack"].update(drawn["ack_of"])
        truth = replayed_states(cap, conn_id, sorted(printed))
        for row in rows.itertuples():
            pkt = row.packet
            seq, ack, c_state, s_state = printed[pkt]
            frame_ack = None if row.rel_ack is pd_na() else int(row.rel_ack)
            assert (seq, ack) == (row.rel_seq, frame_ack), (path.name, conn_id, pkt)
            assert f"seq={seq}" in labels[pkt]
            assert (f"ack={ack}" in labels[pkt]) if ack is not None else "ack=" not in labels[pkt]
            assert plotted["seq"][pkt] % MOD == seq
            if ack is not None and not row.flags & 0x04:  # a RST's ACK draws no ACK line
                assert plotted["ack"][pkt] % MOD == ack
            states = tuple("-" if s is None or s != s else str(s)
                           for s in (row.client_state, row.server_state))
            assert (c_state, s_state) == states == truth[pkt], (path.name, conn_id, pkt)
            checked += 1
    assert checked == cap.stats["tcp"] > 0


def pd_na() -> Any:
    import pandas as pd

    return pd.NA


def test_server_is_syn_received_at_the_syn_everywhere() -> None:
    """Issue 13: show printed '-' for the server after the SYN and SYN_RECEIVED* at the
    SYN-ACK, while the records put SYN_RECEIVED at packet 1."""
    path = ROOT / "captures" / "echo-lo.pcap"
    printed = show_rows(path, 0)
    assert printed[1][2:] == ("SYN_SENT", "SYN_RECEIVED")
    cap = analyzer.read(str(path))
    assert cap.record(0)["states"]["server"][1][1] == "SYN_RECEIVED"
    first = cap.packets.iloc[0]
    assert (first.packet, first.server_state) == (1, "SYN_RECEIVED")
    out = io.StringIO()
    show(str(path), 0, out)
    assert re.search(r"^\s+1 .* SYN_SENT\*\s+SYN_RECEIVED\*", out.getvalue(), re.M)
    assert re.search(r"^\s+2 .* ESTABLISHED\*\s+SYN_RECEIVED\s*$", out.getvalue(), re.M)


def test_the_rule_when_no_syn_was_seen() -> None:
    # SYN seen: its ISN. Not seen: first seq - 1, or the peer's first ACK - 1, whichever
    # comes first (the client's packet below numbers both sides).
    assert seq_bases(100, 200, []) == (100, 200)
    assert seq_bases(None, None, [(True, 0x18, 5000, 9000), (False, 0x10, 9000, 5010)]) \
        == (4999, 8999)
    assert seq_bases(None, None, [(True, 0x02, 0, 0)]) == (0, None)  # a lone SYN
    assert seq_bases(None, None, [(False, 0x10, 0, 7)]) == (6, MOD - 1)  # wraps


@pytest.mark.skipif(not (ZEEK / "ssh.pcap").exists(), reason="needs ../shared/corpus/zeek")
@pytest.mark.skipif(not shutil.which("tshark"), reason="needs tshark")
@pytest.mark.parametrize("name", ["ssh.pcap", "missing-syn.pcap",
                                  "http-on-irc-port-missing-syn.pcapng"])
def test_relative_numbers_are_wiresharks(name: str) -> None:
    """Where the SYN was not captured, the numbers are tshark's tcp.seq / tcp.ack."""
    path = ZEEK / name
    cap = analyzer.read(str(path), record=-2)
    guessed = [i for i in range(len(cap)) if -1 in (cap.row(i).client_isn,
                                                     cap.row(i).server_isn)]
    assert guessed
    res = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e",
                          "frame.number", "-e", "tcp.seq", "-e", "tcp.ack", "-e",
                          "tcp.flags.ack"], capture_output=True, text=True, check=True)
    theirs = {}
    for line in res.stdout.splitlines():
        num, seq, ack, has_ack = line.split("\t")
        theirs[int(num)] = (int(seq), int(ack) if has_ack in ("1", "True") else None)
    frame = cap.packets
    for row in frame[frame["conn_id"].isin(guessed)].itertuples():
        ours = (row.rel_seq, None if row.rel_ack is pd_na() else int(row.rel_ack))
        assert ours == theirs[row.packet], (name, row.conn_id, row.packet)
