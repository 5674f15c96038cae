"""The compiled tracker driven by hand-built segments (Engine.feed_segment).

Each test is one conversation; it checks both endpoints' full RFC 9293 state sequences
(names in order and the packet time of each change), the close and handshake fields,
and Zeek's conn_state and history.

Zeek history letters are derived from Zeek's update_history rules: upper case for the
originator, lower case for the responder; A (pure ACK) and D (data) once per direction;
S/H/F/R again only when they come with a new relative sequence number.

Sequence numbers: the client's ISN is ``C``, the server's ``S``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from segments import ACK, FA, FIN, PA, RA, RST, SA, SYN, Wire, names, sec, timeline

from analyzer.fsm import Input, TcpState
from analyzer.results import engine_batch

C, S = 1000, 5000

# client key side 0 (lower address) and client key side 1 (higher address)
HOSTS = {
    "client-low": (("10.0.0.1", 50000), ("10.0.0.2", 80)),
    "client-high": (("10.0.0.9", 50000), ("10.0.0.2", 80)),
}


@pytest.fixture(params=list(HOSTS))
def wire(request: pytest.FixtureRequest) -> Wire:
    client, server = HOSTS[request.param]
    return Wire(client, server)


def handshake(w: Wire, t: int = 1000, gap: int = 10) -> None:
    """SYN at t, SYN-ACK at t+gap, ACK at t+2*gap."""
    w.c(t, SYN, C)
    w.s(t + gap, SA, S, C + 1)
    w.c(t + 2 * gap, ACK, C + 1, S + 1)


def only(w: Wire) -> dict[str, Any]:
    recs = w.records()
    assert len(recs) == 1, [(r["client"], r["server"], r["close"]["kind"]) for r in recs]
    return recs[0]


NO_OPTIONS = {"mss": None, "wscale": None, "sack_permitted": False, "timestamps": False}


def assert_plain_handshake(r: dict[str, Any]) -> None:
    """The handshake of ``handshake()``: 10 ms each way."""
    assert r["handshake"] == {
        "complete": True,
        "simultaneous_open": False,
        "fast_open": False,
        "syn_retransmits": 0,
        "synack_retransmits": 0,
        "client_isn": C,
        "server_isn": S,
        "irtt": 0.02,
        "client_rtt": 0.01,
        "server_rtt": 0.01,
        "client_options": NO_OPTIONS,
        "server_options": NO_OPTIONS,
    }


# ---- handshake + close -------------------------------------------------------------------


def test_textbook_handshake_and_four_way_close_by_client(wire: Wire) -> None:
    handshake(wire)
    wire.c(1050, FA, C + 1, S + 1)      # client CLOSE
    wire.s(1060, ACK, S + 1, C + 2)     # server ACKs the FIN alone
    wire.s(1070, FA, S + 1, C + 2)      # server CLOSE
    wire.c(1080, ACK, C + 2, S + 2)
    r = only(wire)
    client, server = wire.hosts["c"], wire.hosts["s"]
    assert r["client"] == f"{client[0]}:{client[1]}" and r["server"] == f"{server[0]}:{server[1]}"
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "FIN_WAIT_1"), (1060, "FIN_WAIT_2"),
        (1070, "TIME_WAIT"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1050, "CLOSE_WAIT"),
        (1070, "LAST_ACK"), (1080, "CLOSED"))
    assert r["close"] == {"kind": "four_way", "initiator": "client", "reset_by": None,
                          "half_close": False, "time_wait": "client"}
    assert_plain_handshake(r)
    assert r["conn_state"] == "SF"
    # S h A (client's first pure ACK) F a (server's first pure ACK) f; the last ACK is
    # the client's second pure ACK: not repeated
    assert r["history"] == "ShAFaf"
    assert r["roles_guessed"] is False and r["unexpected"] == []
    assert (r["first_packet"], r["last_packet"]) == (1, 7)
    assert r["packets"] == {"client": 4, "server": 3}
    assert (r["start"], r["end"]) == (1.0, 1.08)


def test_four_way_close_initiated_by_server(wire: Wire) -> None:
    handshake(wire)
    wire.s(1050, FA, S + 1, C + 1)
    wire.c(1060, ACK, C + 1, S + 2)
    wire.c(1070, FA, C + 1, S + 2)
    wire.s(1080, ACK, S + 2, C + 2)
    r = only(wire)
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "CLOSE_WAIT"), (1070, "LAST_ACK"),
        (1080, "CLOSED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1050, "FIN_WAIT_1"),
        (1060, "FIN_WAIT_2"), (1070, "TIME_WAIT"))
    assert r["close"] == {"kind": "four_way", "initiator": "server", "reset_by": None,
                          "half_close": False, "time_wait": "server"}
    assert_plain_handshake(r)
    assert r["conn_state"] == "SF"
    assert r["history"] == "ShAfFa"  # the client's ACK of the FIN is its second pure ACK
    assert r["unexpected"] == []


def test_three_way_close() -> None:
    """The server's FIN carries the ACK of the client's FIN (ACK before FIN, 3.10.7.4)."""
    w = Wire()
    handshake(w)
    w.c(1050, FA, C + 1, S + 1)
    w.s(1060, FA, S + 1, C + 2)
    w.c(1070, ACK, C + 2, S + 2)
    r = only(w)
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "FIN_WAIT_1"), (1060, "FIN_WAIT_2"),
        (1060, "TIME_WAIT"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1050, "CLOSE_WAIT"),
        (1060, "LAST_ACK"), (1070, "CLOSED"))
    assert r["close"] == {"kind": "three_way", "initiator": "client", "reset_by": None,
                          "half_close": False, "time_wait": "client"}
    assert r["conn_state"] == "SF"
    assert r["history"] == "ShAFf"
    assert r["unexpected"] == []


def test_three_way_close_initiated_by_server() -> None:
    w = Wire()
    handshake(w)
    w.s(1050, FA, S + 1, C + 1)
    w.c(1060, FA, C + 1, S + 2)
    w.s(1070, ACK, S + 2, C + 2)
    r = only(w)
    assert names(r["states"]["server"])[-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert r["states"]["client"][-3:] == timeline(
        (1050, "CLOSE_WAIT"), (1060, "LAST_ACK"), (1070, "CLOSED"))
    assert r["close"]["kind"] == "three_way" and r["close"]["initiator"] == "server"
    assert r["close"]["time_wait"] == "server"
    assert r["conn_state"] == "SF" and r["history"] == "ShAfFa"


def test_simultaneous_close(wire: Wire) -> None:
    """RFC 9293 figure 13: the FINs cross, neither acknowledges the other, so both
    endpoints go FIN_WAIT_1 -> CLOSING -> TIME_WAIT."""
    handshake(wire)
    wire.c(1050, FA, C + 1, S + 1)   # ack S+1: has not seen the server's FIN
    wire.s(1051, FA, S + 1, C + 1)   # ack C+1: has not seen the client's FIN
    wire.c(1060, ACK, C + 2, S + 2)  # client ACKs the server's FIN
    wire.s(1061, ACK, S + 2, C + 2)  # server ACKs the client's FIN
    r = only(wire)
    assert r["close"]["kind"] == "simultaneous"
    assert r["close"]["initiator"] == "both"
    assert r["conn_state"] == "SF" and r["history"] == "ShAFfa"
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "FIN_WAIT_1"), (1051, "CLOSING"),
        (1061, "TIME_WAIT"))
    server = r["states"]["server"]
    assert names(server) == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "CLOSING",
                             "TIME_WAIT"]
    # FIN_WAIT_1 when it sends its FIN; CLOSING when the client's FIN reaches it, which is
    # after its own FIN (that FIN did not ACK it) and no later than its TIME_WAIT;
    # TIME_WAIT at the client's ACK of its FIN
    assert server[3] == [sec(1051), "FIN_WAIT_1"]
    assert sec(1051) <= server[4][0] <= sec(1060)
    assert server[5] == [sec(1060), "TIME_WAIT"]
    assert r["close"]["time_wait"] == "both"
    assert r["close"]["half_close"] is False and r["close"]["reset_by"] is None


def test_simultaneous_open() -> None:
    """RFC 9293 figure 7: both send a bare SYN before seeing the other's, then SYN-ACKs."""
    w = Wire()
    w.c(1000, SYN, C)
    w.s(1001, SYN, S)               # crosses the client's SYN
    w.c(1010, SA, C, S + 1)
    w.s(1011, SA, S, C + 1)
    r = only(w)
    assert r["handshake"]["simultaneous_open"] is True
    assert r["handshake"]["complete"] is True
    assert r["handshake"]["client_isn"] == C and r["handshake"]["server_isn"] == S
    for who in ("client", "server"):
        assert names(r["states"][who]) == ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"], who
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1001, "SYN_RECEIVED"), (1011, "ESTABLISHED"))
    assert r["states"]["server"] == timeline(
        (1001, "SYN_SENT"), (1001, "SYN_RECEIVED"), (1010, "ESTABLISHED"))
    assert r["unexpected"] == []


def test_simultaneous_open_records_both_syns() -> None:
    """The same crossing SYNs with equal ISNs (so that Zeek's reuse rule keeps them in one
    connection): the second SYN's sender must get its ISN and options recorded."""
    w = Wire()
    w.c(1000, SYN, C, mss=1460)
    w.s(1001, SYN, C, mss=1400, wscale=3)
    w.c(1010, SA, C, C + 1)
    w.s(1011, SA, C, C + 1)
    r = only(w)
    assert r["handshake"]["simultaneous_open"] is True
    assert r["states"]["server"] == timeline(
        (1001, "SYN_SENT"), (1001, "SYN_RECEIVED"), (1010, "ESTABLISHED"))
    assert r["handshake"]["client_isn"] == C
    assert r["handshake"]["client_options"]["mss"] == 1460
    assert r["handshake"]["server_isn"] == C
    assert r["handshake"]["server_options"] == {"mss": 1400, "wscale": 3,
                                                "sack_permitted": False, "timestamps": False}


def test_half_close() -> None:
    """The client shuts down its side; the server keeps sending, then closes."""
    w = Wire()
    handshake(w)
    w.c(1030, FA, C + 1, S + 1)
    w.s(1040, ACK, S + 1, C + 2)
    w.s(1050, PA, S + 1, C + 2, 500)   # data after the client's FIN
    w.c(1060, ACK, C + 2, S + 501)
    w.s(1070, FA, S + 501, C + 2)
    w.c(1080, ACK, C + 2, S + 502)
    r = only(w)
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1030, "FIN_WAIT_1"), (1040, "FIN_WAIT_2"),
        (1070, "TIME_WAIT"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1030, "CLOSE_WAIT"),
        (1070, "LAST_ACK"), (1080, "CLOSED"))
    assert r["close"] == {"kind": "four_way", "initiator": "client", "reset_by": None,
                          "half_close": True, "time_wait": "client"}
    assert r["conn_state"] == "SF"
    assert r["history"] == "ShAFadf"
    assert r["payload_bytes"] == {"client": 0, "server": 500}


def test_no_half_close_when_data_precedes_the_fin() -> None:
    w = Wire()
    handshake(w)
    w.s(1030, PA, S + 1, C + 1, 100)
    w.c(1040, FA, C + 1, S + 101)
    w.s(1050, FA, S + 101, C + 2)
    w.c(1060, ACK, C + 2, S + 102)
    r = only(w)
    assert r["close"]["half_close"] is False
    assert r["close"]["kind"] == "three_way"


def test_rst_abort_by_client() -> None:
    w = Wire()
    handshake(w)
    w.c(1030, PA, C + 1, S + 1, 10)
    w.s(1040, ACK, S + 1, C + 11)
    w.c(1050, RA, C + 11, S + 1)
    r = only(w)
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "CLOSED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1050, "CLOSED"))
    assert r["close"] == {"kind": "reset", "initiator": "client", "reset_by": "client",
                          "half_close": False, "time_wait": None}
    assert r["conn_state"] == "RSTO"
    assert r["history"] == "ShADaR"
    assert_plain_handshake(r)


def test_rst_abort_by_server() -> None:
    w = Wire()
    handshake(w)
    w.s(1050, RA, S + 1, C + 1)
    r = only(w)
    assert r["states"]["server"][-1] == [sec(1050), "CLOSED"]
    assert r["states"]["client"][-1] == [sec(1050), "CLOSED"]
    assert r["close"]["kind"] == "reset" and r["close"]["reset_by"] == "server"
    assert r["close"]["initiator"] == "server"
    assert r["conn_state"] == "RSTR" and r["history"] == "ShAr"


def test_refused() -> None:
    w = Wire()
    w.c(1000, SYN, C)
    w.s(1001, RA, 0, C + 1)
    r = only(w)
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1001, "CLOSED"))
    assert r["states"]["server"] == timeline((1000, "CLOSED"))
    assert r["close"] == {"kind": "refused", "initiator": "server", "reset_by": "server",
                          "half_close": False, "time_wait": None}
    assert r["conn_state"] == "REJ"
    assert r["history"] == "Sr"
    hs = r["handshake"]
    assert hs["complete"] is False and hs["client_isn"] == C and hs["server_isn"] is None
    assert hs["irtt"] is None and hs["server_rtt"] is None and hs["client_rtt"] is None
    assert r["unexpected"] == []


def test_unanswered_syn_with_two_retransmissions() -> None:
    w = Wire()
    w.c(1000, SYN, C)
    w.c(2000, SYN, C)
    w.c(4000, SYN, C)
    r = only(w)
    assert r["handshake"]["syn_retransmits"] == 2
    assert r["handshake"]["complete"] is False and r["handshake"]["client_isn"] == C
    assert r["close"] == {"kind": "unanswered", "initiator": None, "reset_by": None,
                          "half_close": False, "time_wait": None}
    assert r["conn_state"] == "S0"
    assert r["history"] == "S"  # same relative seq: no repeated S
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"))
    assert r["states"]["server"] == []
    assert r["packets"] == {"client": 3, "server": 0}


# ---- handshake details -------------------------------------------------------------------


def test_synack_retransmission_first_synack_lost_after_the_tap() -> None:
    w = Wire()
    w.c(1000, SYN, C)
    w.s(1010, SA, S, C + 1)          # lost between the tap and the client
    w.s(2010, SA, S, C + 1)          # retransmitted
    w.c(2020, ACK, C + 1, S + 1)
    r = only(w)
    hs = r["handshake"]
    assert hs["synack_retransmits"] == 1 and hs["syn_retransmits"] == 0
    assert hs["complete"] is True and hs["server_isn"] == S
    assert hs["server_rtt"] == 0.01
    assert hs["irtt"] == pytest.approx(hs["server_rtt"] + hs["client_rtt"])
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1010, "ESTABLISHED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (2020, "ESTABLISHED"))
    assert r["conn_state"] == "S1"
    assert r["history"] == "ShA"  # the SYN-ACK again with the same seq: no second h
    assert r["unexpected"] == []


def test_synack_retransmission_after_the_ack_was_seen() -> None:
    """The ACK passes the tap and is lost after it: the server, ESTABLISHED to the
    observer, retransmits its SYN-ACK and the client ACKs again."""
    w = Wire()
    handshake(w)
    w.s(2010, SA, S, C + 1)
    w.c(2020, ACK, C + 1, S + 1)
    r = only(w)
    assert r["handshake"]["synack_retransmits"] == 1
    assert_plain_handshake({**r, "handshake": {**r["handshake"], "synack_retransmits": 0}})
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1010, "ESTABLISHED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"))
    assert r["history"] == "ShA" and r["conn_state"] == "S1"
    assert r["unexpected"] == []


def test_client_rtt_is_measured_from_the_synack_that_was_answered() -> None:
    """The SYN side measures from the last SYN before the SYN-ACK (the one answered);
    the ACK likewise answers the last SYN-ACK before it, not the one lost 1 s earlier."""
    w = Wire()
    w.c(1000, SYN, C)
    w.s(1010, SA, S, C + 1)
    w.s(2010, SA, S, C + 1)
    w.c(2020, ACK, C + 1, S + 1)
    hs = only(w)["handshake"]
    assert hs["client_rtt"] == 0.01
    assert hs["irtt"] == pytest.approx(0.02)


def test_rtt_measured_from_the_last_syn_before_the_synack() -> None:
    w = Wire()
    w.c(1000, SYN, C)
    w.c(2000, SYN, C)                # retransmitted SYN, answered 30 ms later
    w.s(2030, SA, S, C + 1)
    w.c(2050, ACK, C + 1, S + 1)
    r = only(w)
    hs = r["handshake"]
    assert hs["syn_retransmits"] == 1
    assert hs["server_rtt"] == 0.03
    assert hs["client_rtt"] == 0.02
    assert hs["irtt"] == 0.05
    assert hs["irtt"] == pytest.approx(hs["server_rtt"] + hs["client_rtt"])
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (2030, "ESTABLISHED"))
    # LISTEN from the first SYN, SYN_RECEIVED at the SYN it answers
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (2000, "SYN_RECEIVED"), (2050, "ESTABLISHED"))
    assert r["history"] == "ShA"


def test_options_parsed_from_syn_and_synack() -> None:
    w = Wire()
    w.c(1000, SYN, C, mss=1460, wscale=7, sack_ok=True, ts_ok=True)
    w.c(2000, SYN, C, mss=536)       # a retransmission does not replace the options
    w.s(2010, SA, S, C + 1, mss=1400, wscale=0, sack_ok=True)
    w.c(2020, ACK, C + 1, S + 1, mss=9000)  # options of non-SYN segments are ignored
    hs = only(w)["handshake"]
    assert hs["client_options"] == {"mss": 1460, "wscale": 7, "sack_permitted": True,
                                    "timestamps": True}
    assert hs["server_options"] == {"mss": 1400, "wscale": 0, "sack_permitted": True,
                                    "timestamps": False}


def test_options_absent() -> None:
    w = Wire()
    handshake(w)
    hs = only(w)["handshake"]
    assert hs["client_options"] == NO_OPTIONS and hs["server_options"] == NO_OPTIONS


# ---- roles without a SYN -----------------------------------------------------------------


def test_mid_stream_start_well_known_port_is_the_server() -> None:
    w = Wire(client=("10.0.0.2", 50000), server=("10.0.0.1", 80))
    w.s(1000, PA, S, C, 100)         # data from 10.0.0.1:80 to 10.0.0.2:50000 comes first
    w.c(1010, ACK, C, S + 100)
    r = only(w)
    assert r["roles_guessed"] is True
    assert r["client"] == "10.0.0.2:50000" and r["server"] == "10.0.0.1:80"
    assert r["states"]["client"] == timeline((1000, "ESTABLISHED"))
    assert r["states"]["server"] == timeline((1000, "ESTABLISHED"))
    assert r["conn_state"] == "OTH"
    assert r["history"] == "^dA"     # roles flipped before the first packet is processed
    assert r["close"]["kind"] == "open"
    hs = r["handshake"]
    assert hs["complete"] is False and hs["client_isn"] is None and hs["server_isn"] is None
    assert hs["irtt"] is None
    assert r["unexpected"] == []


@pytest.mark.parametrize("sender,receiver,server_port", [
    (80, 50000, 80),
    (50000, 80, 80),
    (8080, 50000, 8080),     # a likely server port above 1024
    (443, 80, 80),           # both likely server ports: the lower one
    (80, 443, 80),
    (999, 40000, 999),       # a well-known port talking to an ephemeral one
    (40000, 50000, 50000),   # no hint: the first sender is taken as the client
])
def test_mid_stream_roles(sender: int, receiver: int, server_port: int) -> None:
    w = Wire(client=("10.0.0.1", sender), server=("10.0.0.2", receiver))
    w.c(1000, PA, C, S, 10)
    w.s(1010, ACK, S, C + 10)
    r = only(w)
    assert r["roles_guessed"] is True
    assert r["server"].endswith(f":{server_port}")
    assert r["states"]["client"] == timeline((1000, "ESTABLISHED"))
    assert r["states"]["server"] == timeline((1000, "ESTABLISHED"))


def test_missing_syn_synack_sender_is_the_server() -> None:
    # neither port is a likely server port: the SYN-ACK alone decides
    w = Wire(client=("10.0.0.2", 5555), server=("10.0.0.1", 40000))
    w.s(1000, SA, S, C + 1)
    w.c(1010, ACK, C + 1, S + 1)
    w.c(1020, PA, C + 1, S + 1, 5)
    r = only(w)
    assert r["roles_guessed"] is True
    assert r["client"] == "10.0.0.2:5555" and r["server"] == "10.0.0.1:40000"
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1010, "ESTABLISHED"))
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1000, "ESTABLISHED"))
    assert r["handshake"]["server_isn"] == S and r["handshake"]["client_isn"] is None
    assert r["handshake"]["complete"] is False
    assert r["conn_state"] == "S1"
    assert r["history"] == "^hAD"
    assert r["unexpected"] == []


# ---- 4-tuple reuse -----------------------------------------------------------------------


def test_reuse_after_close_with_a_new_isn() -> None:
    w = Wire()
    handshake(w)
    w.c(1050, FA, C + 1, S + 1)
    w.s(1060, FA, S + 1, C + 2)
    w.c(1070, ACK, C + 2, S + 2)
    w.c(3000, SYN, 9000)             # same 4-tuple, new ISN
    w.s(3010, SA, 7000, 9001)
    w.c(3020, ACK, 9001, 7001)
    first, second = w.records()
    assert first["close"]["kind"] == "three_way" and first["conn_state"] == "SF"
    assert first["last_packet"] == 6
    assert first["states"]["client"][-1] == [sec(1060), "TIME_WAIT"]
    assert (second["id"], second["first_packet"], second["last_packet"]) == (1, 7, 9)
    assert second["client"] == first["client"] and second["server"] == first["server"]
    assert second["handshake"]["client_isn"] == 9000
    assert second["handshake"]["server_isn"] == 7000
    assert second["states"]["client"] == timeline((3000, "SYN_SENT"), (3010, "ESTABLISHED"))
    assert second["states"]["server"] == timeline(
        (3000, "LISTEN"), (3000, "SYN_RECEIVED"), (3020, "ESTABLISHED"))
    assert second["conn_state"] == "S1" and second["history"] == "ShA"
    assert second["unexpected"] == [] and first["unexpected"] == []


def test_reuse_after_reset() -> None:
    w = Wire()
    handshake(w)
    w.c(1050, RA, C + 1, S + 1)
    w.c(1100, SYN, 9000)
    first, second = w.records()
    assert first["close"]["kind"] == "reset"
    assert second["states"]["client"] == timeline((1100, "SYN_SENT"))
    assert second["close"]["kind"] == "unanswered"


def test_same_isn_during_open_handshake_is_not_reuse() -> None:
    w = Wire()
    w.c(1000, SYN, C)
    w.c(2000, SYN, C)                # same ISN: a retransmission
    w.s(2010, SA, S, C + 1)
    w.c(2020, ACK, C + 1, S + 1)
    r = only(w)
    assert r["handshake"]["syn_retransmits"] == 1
    assert r["handshake"]["complete"] is True
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (2010, "ESTABLISHED"))


# ---- anomalies are recorded, never raised -----------------------------------------------


def test_fin_ack_acknowledging_a_fin_never_sent_is_unexpected() -> None:
    """The server's FIN-ACK acknowledges one octet past everything the client sent, as
    the ACK of a client FIN would; the client sent no FIN (RFC 9293 3.10.7.4 fifth: an
    ACK of something not yet sent is answered by an ACK and the segment dropped)."""
    w = Wire()
    handshake(w)
    w.c(1030, PA, C + 1, S + 1, 10)  # client's next seq is C + 11
    w.s(1040, FA, S + 1, C + 12)     # acks C + 12: a FIN the client never sent
    r = only(w)
    assert {"packet": 5, "endpoint": "client", "state": "ESTABLISHED",
            "input": "RECV_ACK_OF_FIN"} in r["unexpected"]


def test_fin_and_its_ack_in_syn_sent_are_unexpected() -> None:
    """A FIN from an endpoint still in SYN_SENT, then the ACK of that FIN."""
    w = Wire()
    w.c(1000, SYN, C)
    w.c(1010, FIN, C + 1)
    w.s(1020, ACK, S, C + 2)
    r = only(w)
    assert r["unexpected"] == [
        {"packet": 2, "endpoint": "client", "state": "SYN_SENT", "input": "SEND_FIN"},
        {"packet": 3, "endpoint": "client", "state": "SYN_SENT", "input": "RECV_ACK_OF_FIN"},
    ]
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"))


def test_fin_after_reset_is_unexpected() -> None:
    """The server's FIN is retransmitted after the client reset the connection."""
    w = Wire()
    handshake(w)
    w.s(1050, FA, S + 1, C + 1)
    w.c(1051, RA, C + 1, S + 2)
    w.s(1300, FA, S + 1, C + 1)      # the retransmitted FIN
    r = only(w)
    assert r["states"]["client"] == timeline(
        (1000, "SYN_SENT"), (1010, "ESTABLISHED"), (1050, "CLOSE_WAIT"), (1051, "CLOSED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"), (1050, "FIN_WAIT_1"),
        (1051, "CLOSED"))
    assert r["unexpected"] == [
        {"packet": 6, "endpoint": "server", "state": "CLOSED", "input": "SEND_FIN"},
        {"packet": 6, "endpoint": "client", "state": "CLOSED", "input": "RECV_FIN"},
    ]
    assert r["close"]["kind"] == "reset" and r["close"]["reset_by"] == "client"


def test_syn_retransmission_seen_after_the_synack_is_unexpected() -> None:
    """The client's SYN retransmission crosses the SYN-ACK; the observer already has the
    client ESTABLISHED, where a SYN is not expected. Same ISN: still one connection."""
    w = Wire()
    w.c(1000, SYN, C)
    w.s(1010, SA, S, C + 1)
    w.c(1500, SYN, C)
    w.c(1510, ACK, C + 1, S + 1)
    r = only(w)
    assert r["unexpected"] == [
        {"packet": 3, "endpoint": "client", "state": "ESTABLISHED", "input": "SEND_SYN"}]
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1010, "ESTABLISHED"))


# ---- RFC 9293 figures 8 and 9 ------------------------------------------------------------


def test_half_open_discovery_figure_9() -> None:
    """RFC 9293 figure 9 (3.5.1): A sends a SYN to B, which still has an old ESTABLISHED
    connection and answers with an ACK of old data; A resets it and stays in SYN-SENT
    (3.10.7.3 first: RST <SEQ=SEG.ACK>, drop, return), then retries its SYN: one attempt.
    The ACK and the RST belong to B's old incarnation: B's state for this connection is
    still unknown, and the RST is no reset of this connection."""
    w = Wire()
    w.c(1000, SYN, 400)
    w.s(1010, ACK, 300, 100)
    w.c(1020, RST, 100)
    w.c(2000, SYN, 400)
    [r] = w.records()
    assert r["states"]["server"] == []
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"))
    assert r["handshake"]["syn_retransmits"] == 1
    assert r["close"]["kind"] == "unanswered" and r["close"]["reset_by"] is None


def test_unprovoked_rst_from_syn_sent_is_a_reset() -> None:
    """Only a RST carrying the unacceptable ACK it answers (<SEQ=SEG.ACK>, 3.10.7.3) is
    left out of reset_by; a RST from SYN-SENT that answers nothing abandons the attempt."""
    w = Wire()
    w.c(1000, SYN, 400)
    w.c(1010, RST, 401)
    assert only(w)["close"]["reset_by"] == "client"


def test_syn_sent_again_after_a_synack_is_timed_from_the_last_pair() -> None:
    """Three SYNs, each answered by a SYN-ACK (Zeek's ssh.pcap, stream 18): the ACK answers
    the last SYN-ACK, which answers the last SYN, so server_rtt is that pair's."""
    w = Wire()
    for t, rtt in ((1000, 7), (2000, 6), (3000, 5)):
        w.c(t, SYN, C)
        w.s(t + rtt, SA, S, C + 1)
    w.c(3105, ACK, C + 1, S + 1)
    hs = only(w)["handshake"]
    assert hs["server_rtt"] == 0.005 and hs["client_rtt"] == 0.1
    assert hs["irtt"] == 0.105 and hs["syn_retransmits"] == 2


def test_same_isn_after_a_refusal_is_one_attempt_zeek_splits_it() -> None:
    w = Wire()
    for t in (1000, 1500, 2000):
        w.c(t, SYN, C)
        w.s(t + 1, RA, 0, C + 1)
    [r] = w.records()
    assert r["close"]["kind"] == "refused" and r["handshake"]["syn_retransmits"] == 2
    z = Wire(zeek_timers=True)
    for t in (1000, 1500, 2000):
        z.c(t, SYN, C)
        z.s(t + 1, RA, 0, C + 1)
    assert len(z.records()) == 3


def test_old_duplicate_synack_figure_8() -> None:
    """RFC 9293 figure 8, seen at A: a SYN-ACK whose ACK (91) does not cover A's SYN
    (ISS 100) is answered by RST and A stays in SYN-SENT (3.10.7.3 first); the real
    SYN-ACK then completes the handshake."""
    w = Wire()
    w.c(1000, SYN, 100)
    w.s(1010, SA, 300, 91)           # acknowledges an old duplicate SYN, not A's
    w.c(1020, RST, 91)
    w.s(1030, SA, 400, 101)
    w.c(1040, ACK, 101, 401)
    r = w.records()[0]
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1030, "ESTABLISHED"))
    assert r["handshake"]["server_isn"] == 400


# ---- addresses and times -----------------------------------------------------------------


def test_ipv6_endpoints() -> None:
    w = Wire(client=("2001:db8::1", 40000), server=("2001:db8::2", 443))
    handshake(w)
    r = only(w)
    assert r["client"] == "[2001:db8::1]:40000"
    assert r["server"] == "[2001:db8::2]:443"
    assert r["states"]["client"] == timeline((1000, "SYN_SENT"), (1010, "ESTABLISHED"))
    assert r["states"]["server"] == timeline(
        (1000, "LISTEN"), (1000, "SYN_RECEIVED"), (1020, "ESTABLISHED"))
    assert_plain_handshake(r)
    assert r["conn_state"] == "S1" and r["history"] == "ShA"


def test_ipv4_and_ipv6_with_same_ports_are_different_connections() -> None:
    w4 = Wire()
    w6 = Wire(client=("::ffff:10.0.0.1", 50000), server=("::ffff:10.0.0.2", 80))
    for w in (w4, w6):
        handshake(w)
    assert only(w4)["client"] == "10.0.0.1:50000"
    assert only(w6)["client"] == "[::ffff:10.0.0.1]:50000"


def test_handshake_at_time_zero() -> None:
    """A capture may start at the epoch (ts 0 is a valid pcap time)."""
    w = Wire()
    handshake(w, t=0)
    r = only(w)
    assert r["states"]["client"] == timeline((0, "SYN_SENT"), (10, "ESTABLISHED"))
    assert r["handshake"]["complete"] is True
    assert r["handshake"]["server_rtt"] == 0.01
    assert r["handshake"]["client_rtt"] == 0.01
    assert r["handshake"]["irtt"] == 0.02


def test_zeroed_timestamps_four_way_close() -> None:
    """Captures with every timestamp zeroed (anonymised or generated) are still valid:
    the facts must not depend on a packet time being non-zero."""
    w = Wire()
    handshake(w, t=0, gap=0)
    w.c(0, FA, C + 1, S + 1)
    w.s(0, ACK, S + 1, C + 2)
    w.s(0, FA, S + 1, C + 2)
    w.c(0, ACK, C + 2, S + 2)
    r = only(w)
    assert names(r["states"]["client"]) == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1",
                                            "FIN_WAIT_2", "TIME_WAIT"]
    assert r["handshake"]["complete"] is True
    assert r["handshake"]["irtt"] == 0.0
    assert r["close"]["kind"] == "four_way" and r["close"]["initiator"] == "client"


def test_zeroed_timestamps_reset() -> None:
    w = Wire()
    handshake(w, t=0, gap=0)
    w.c(0, RA, C + 1, S + 1)
    r = only(w)
    assert r["states"]["client"][-1] == [0.0, "CLOSED"]
    assert r["close"]["kind"] == "reset" and r["close"]["initiator"] == "client"


# ---- never raises ------------------------------------------------------------------------

FLAGS = st.sampled_from([SYN, SA, ACK, PA, FA, FIN, RST, RA, FIN | RST, SYN | FIN, 0])
SEGMENT = st.tuples(st.booleans(), FLAGS, st.integers(0, 6), st.integers(0, 6),
                    st.sampled_from([0, 0, 1, 10]), st.integers(1, 400))


@settings(max_examples=200, deadline=None)
@given(segments=st.lists(SEGMENT, min_size=1, max_size=25))
def test_random_conversations_never_raise(segments: list[tuple[bool, int, int, int, int,
                                                                int]]) -> None:
    w = Wire()
    t = 1000
    for from_client, flags, dseq, dack, length, gap in segments:
        t += gap
        base, peer = (C, S) if from_client else (S, C)
        w.send(t, "c" if from_client else "s", flags, base + dseq, peer + dack, length)
    recs = w.records()
    assert recs
    state_names = {s.name for s in TcpState}
    for r in recs:
        for who in ("client", "server"):
            times = [t for t, _ in r["states"][who]]
            assert all(n in state_names for n in names(r["states"][who]))
            assert times == sorted(times)
        for u in r["unexpected"]:
            assert u["state"] in state_names and u["input"] in {i.name for i in Input}
            assert u["endpoint"] in ("client", "server")
            assert 1 <= u["packet"] <= len(segments)
        assert r["close"]["kind"] in ("four_way", "three_way", "simultaneous", "reset",
                                      "refused", "unanswered", "incomplete", "open")


def test_inferred_server_states_name_the_packets_that_caused_them() -> None:
    """The server is first seen in its SYN-ACK; its LISTEN and SYN_RECEIVED are dated
    by the first SYN and by the (retransmitted) SYN it answered, packet and time alike."""
    w = Wire()
    w.c(1000, SYN, C)                # packet 1
    w.c(2000, SYN, C)                # packet 2, the one answered
    w.s(2010, SA, S, C + 1)          # packet 3
    w.c(2020, ACK, C + 1, S + 1)     # packet 4
    w.records()
    server = [(state, ts, pkt) for role, state, ts, pkt, _how, _input
              in w.transitions(0) if role == 1]
    assert server == [(1, 1000 * 1_000_000, 1), (3, 2000 * 1_000_000, 2),
                      (4, 2020 * 1_000_000, 4)]


def test_close_kind_and_conn_state_are_known_before_the_end_of_input() -> None:
    """A live capture never calls finish(): the record says what is known so far."""
    w = Wire()
    handshake(w)

    def now() -> tuple[str, str]:
        r = next(engine_batch(w.engine, 0, 1).records())
        return r["close"]["kind"], r["conn_state"]

    assert now() == ("open", "S1")
    w.c(1030, FA, C + 1, S + 1)
    assert now() == ("incomplete", "S2")  # Zeek: the originator closed, not the responder
    w.s(1040, FA, S + 1, C + 2)
    w.c(1050, ACK, C + 2, S + 2)
    assert now() == ("three_way", "SF")
    assert only(w)["close"]["kind"] == "three_way"
