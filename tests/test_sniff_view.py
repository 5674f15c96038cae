"""The live view and the event stream on the bundled real capture, replayed through
LiveSession (no privileges needed): the same path as ``handshake demo --replay``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.live import LiveSession
from analyzer.live.view import LiveModel, log_line, render

CAPTURES = Path(__file__).parents[1] / "captures"
SCENARIOS = json.loads((CAPTURES / "scenarios.json").read_text())["connections"]


@pytest.fixture(scope="module")
def replayed() -> tuple[LiveSession, list[dict[str, Any]]]:
    session = LiveSession("lo", replay=str(CAPTURES / "echo-lo.pcap"), replay_speed=1000)
    session.start()
    assert session.wait(60)
    return session, session.events()


def test_replay_gives_the_records_of_handshake_read(replayed: Any) -> None:
    session, events = replayed
    final = [e["record"] for e in events if e["event"] == "final"]
    assert final == list(analyzer.read(str(CAPTURES / "echo-lo.pcap")).records())
    assert final == list(session.capture.records())


def test_closed_events_name_how_each_scenario_ended(replayed: Any) -> None:
    _, events = replayed
    ended = {int(e["client"].rsplit(":", 1)[1]): e["ended"] for e in events
             if e["event"] == "closed"}
    expected = {"four_way": "closed by client", "three_way": None, "reset": "reset by client",
                "refused": "refused", "simultaneous": "closed by both"}
    for conn in SCENARIOS:
        want = expected[conn["close_kind"]] or f"closed by {conn['close_initiator']}"
        assert ended[conn["client_port"]] == want, conn["name"]
    # the close is classified as soon as it happens, as the final record has it
    final = {e["id"]: e["record"] for e in events if e["event"] == "final"}
    closed = [e for e in events if e["event"] == "closed"]
    assert len(closed) == len(SCENARIOS)
    for e in closed:
        assert e["kind"] == final[e["id"]]["close"]["kind"]
        assert e["record"]["close"] == final[e["id"]]["close"]
        assert e["record"]["conn_state"] == final[e["id"]]["conn_state"]


def test_log_lines_read_like_the_issue(replayed: Any) -> None:
    _, events = replayed
    lines = [log_line(e) for e in events if e["event"] == "state"]
    first = SCENARIOS[0]
    assert any(line.endswith(f"127.0.0.1:{first['client_port']} -> 127.0.0.1:9502  "
                             "client SYN_SENT -> ESTABLISHED") for line in lines)
    assert lines[0][2] == ":" and lines[0][15] == " "  # 12:00:01.123456 then a space


def test_model_folds_closed_connections_after_linger(replayed: Any) -> None:
    _, events = replayed
    model = LiveModel(linger=5.0)
    model.apply(events, now=100.0)
    assert len(model.rows) == len(SCENARIOS) and not model.folded
    assert all(r.closed_at == 100.0 for r in model.rows.values())
    model.fold(now=106.0)
    assert not model.rows
    assert model.folded["refused"] == 1 and model.folded["reset by client"] == 1
    assert sum(model.folded.values()) == len(SCENARIOS)


def test_table_shows_states_rtt_and_counts(replayed: Any) -> None:
    from rich.console import Console

    session, events = replayed
    model = LiveModel()
    model.apply(events)
    buf = io.StringIO()
    Console(file=buf, width=160, height=60).print(render(model, session, 60, 160))
    text = buf.getvalue()
    first = SCENARIOS[0]
    row = next(line for line in text.splitlines() if f":{first['client_port']}" in line)
    assert "TIME WAIT" in row and "CLOSED" in row and "ms" in row and "6/5" in row
    assert "kernel drops 0" in text and "131 packets" in text
