"""The committed sample captures (captures/) against what the script that made them
recorded: each scenario's close kind, initiator, who ended in TIME_WAIT (read from the
kernel's /proc/net/tcp during the run), SYN retransmissions and Zeek's conn_state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import analyzer

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
SCENARIOS = json.loads((CAPTURES / "scenarios.json").read_text())["connections"]
SINGLE_INTERFACE = ("echo-lo.pcap", "echo-any.pcap")


def records(name: str) -> dict[tuple[str, int], dict[str, Any]]:
    cap = analyzer.read(str(CAPTURES / name))
    assert cap.error is None and cap.warnings == []
    out = {}
    for rec in cap.records():
        host, port = rec["client"].rsplit(":", 1)
        out[(host.strip("[]"), int(port))] = rec
    return out


def scenario_ids() -> list[str]:
    return [s["id"] + "-" + s["name"] for s in SCENARIOS]


@pytest.mark.parametrize("name", SINGLE_INTERFACE)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=scenario_ids())
def test_scenario(name: str, scenario: dict[str, Any]) -> None:
    rec = records(name)[(scenario["client_addr"], scenario["client_port"])]
    assert rec["server"].endswith(f":{scenario['server_port']}")
    assert rec["close"]["kind"] == scenario["close_kind"]
    assert rec["close"]["initiator"] == scenario["close_initiator"]
    expected_tw = None if scenario["time_wait"] == "none" else scenario["time_wait"]
    assert rec["close"]["time_wait"] == expected_tw
    if scenario["zeek_conn_state"] is not None:  # None: Zeek's answer is not known
        assert rec["conn_state"] == scenario["zeek_conn_state"]
    assert rec["handshake"]["syn_retransmits"] == scenario["syn_retransmissions"]
    assert rec["packets"]["client"] + rec["packets"]["server"] == scenario["packets"]
    assert rec["roles_guessed"] is False
    assert rec["handshake"]["simultaneous_open"] is (scenario["handshake"] == "simultaneous")


def test_half_close_scenario_has_data_after_fin() -> None:
    (half,) = [s for s in SCENARIOS if s["name"] == "half_close"]
    rec = records("echo-lo.pcap")[(half["client_addr"], half["client_port"])]
    assert rec["close"]["half_close"] is True
    server_states = [s for _, s in rec["states"]["server"]]
    assert server_states == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                             "CLOSED"]


def test_backlog_overflow_shows_syn_retransmits_and_late_handshakes() -> None:
    overflow = [s for s in SCENARIOS if s["name"] == "listen_backlog_overflow"]
    recs = records("echo-lo.pcap")
    retried = [recs[(s["client_addr"], s["client_port"])] for s in overflow
               if s["syn_retransmissions"]]
    assert retried, "the capture must hold SYNs dropped by a full backlog"
    for rec in retried:
        hs = rec["handshake"]
        # the answered SYN is the last one: its RTT is short, the attempt took seconds
        assert hs["complete"] and hs["server_rtt"] < 0.5
        assert rec["states"]["client"][1][0] - rec["states"]["client"][0][0] > 1.0


def test_loopback_and_any_agree() -> None:
    """The same run seen as Ethernet (lo) and as Linux cooked v2 (any)."""
    lo, anyif = records("echo-lo.pcap"), records("echo-any.pcap")
    assert lo.keys() == anyif.keys()
    for key, rec in lo.items():
        other = anyif[key]
        for field in ("conn_state", "history", "close", "packets", "payload_bytes"):
            assert rec[field] == other[field], (key, field)


def test_pcapng_two_interfaces() -> None:
    """dumpcap wrote lo (Ethernet) and any (SLL2) into one pcapng: both decode."""
    cap = analyzer.read(str(CAPTURES / "echo.pcapng"))
    assert cap.error is None
    lo = analyzer.read(str(CAPTURES / "echo-lo.pcap"))
    assert cap.stats["tcp"] == 2 * lo.stats["tcp"]
    assert cap.stats["not_ip"] == 0 and cap.stats["short"] == 0


def test_readme_first_command_output() -> None:
    out = subprocess.run([sys.executable, "-m", "analyzer", "read",
                          str(CAPTURES / "echo-lo.pcap")], capture_output=True, text=True,
                         check=True).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["id", "client", "server", "c/s", "close", "iRTT", "pkts"]
    assert max(len(line) for line in lines[:-1]) <= 80
    assert "refused" in out and "four_way:c" in out and "reset:c" in out


def test_show_lists_every_packet_with_states() -> None:
    (first,) = [s for s in SCENARIOS if s["scenario"] == 1]
    cap = analyzer.read(str(CAPTURES / "echo-lo.pcap"))
    conn_id = next(r["id"] for r in cap.records()
                   if r["client"].endswith(f":{first['client_port']}"))
    out = subprocess.run([sys.executable, "-m", "analyzer", "show",
                          str(CAPTURES / "echo-lo.pcap"), str(conn_id)],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == first["packets"]
    assert "[S]" in rows[0] and "SYN_SENT*" in rows[0]
    assert "TIME_WAIT" in rows[-1] and "CLOSED*" in rows[-1]
