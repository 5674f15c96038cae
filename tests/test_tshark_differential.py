"""Per TCP stream, our records against tshark 4.0 on every capture we have (issue 10).

captures/*, every trace of ../shared/corpus/zeek/traces and every capture from other
stacks in ../shared/corpus/examples (those two only where ../shared is present) go
through tshark once each and through ``analyzer.read`` (the records of ``handshake read
--format jsonl``); tests/tshark_compare.py maps connections to tcp.streams and compares
the metrics of the issue's table. Each metric must agree on >= 99% of the streams it
applies to, every remaining difference is listed in KNOWN_DIFFERENCES with its reason,
and each listed difference must still be one (so a fix shows up and the list cannot go
stale). ``python tests/tshark_compare.py`` prints the table (README, "Agreement with
Zeek and Wireshark").
"""

from __future__ import annotations

import shutil

import pytest
import tshark_compare as tc

pytestmark = pytest.mark.skipif(not shutil.which("tshark"), reason="needs tshark")

REJECTED_ACK_RST = (
    "The SYN sender's RST answers the responder's unacceptable ACK (RFC 9293 3.10.7.3: "
    "<SEQ=SEG.ACK><CTL=RST>, the endpoint stays in SYN-SENT): it resets nothing, so "
    "reset_by does not name it; tshark's metric is 'who sent a RST'.")
STALE_ACK_IRTT = (
    "tshark's iRTT ends at the first ACK after the SYN from either side, here the "
    "responder's unacceptable ACK; there was no handshake to time (irtt null).")

# (file, tcp.stream, metric) -> why it differs.
KNOWN_DIFFERENCES: dict[tuple[str, int, str], str] = {
    **{("pppoe-over-qinq.pcap", 0, f"anomalies.{name}"): (
        "PPPoE length field 6 bytes shorter than the IP total length: Wireshark cuts "
        "the IP packet to it, we (like Zeek) trust the IP header, so 6 padding bytes are "
        "payload here and the sequence analysis differs (see tests/test_anomalies.py).")
       for name in ("retransmission", "ack_lost_segment", "out_of_order", "duplicate_ack",
                    "window_update")},
    ("handshake-reorder.pcap", 0, "iRTT"): (
        "The capture has the SYN-ACK before the SYN (history ^h): tshark times the SYN "
        "to the next ACK; we time no handshake whose packets are out of order."),
    ("syn-then-ack-then-rst.pcap", 0, "iRTT"): STALE_ACK_IRTT,
    ("syn-then-ack-then-rst.pcap", 0, "reset_by"): REJECTED_ACK_RST,
    ("syn-then-stuff-then-rst.pcap", 0, "iRTT"): STALE_ACK_IRTT,
    ("syn-then-stuff-then-rst.pcap", 0, "reset_by"): (
        "SYN, the responder's unacceptable ACK, then a FIN and a RST from the SYN sender "
        "still in SYN-SENT (history SaFR): no connection existed to reset, so reset_by "
        "is null; tshark names the RST's sender."),
    ("sv__base64-decode-5885~input.pcap", 11, "iRTT"): (
        "Issue 10 cause 2: the first SYN met a stale ACK (packet 192) that the client "
        "answered with RST; tshark's iRTT ends at that ACK (29.1 ms), ours is the "
        "handshake that followed the SYN retransmission (27.95 ms)."),
    ("sv__base64-decode-5885~input.pcap", 11, "reset_by"): REJECTED_ACK_RST,
}

# Our connections on no tshark stream: file -> (client, server, why).
KNOWN_EXTRA: dict[str, tuple[str, str, str]] = {
    "Teredo.pcap": (
        "[2001:0:4137:9e50:8000:f12a:b9c8:2815]:1286", "[2001:4860:0:2001::68]:80",
        ("Teredo recognised as Zeek does, any UDP datagram that is exactly one IPv6 "
         "packet (README), here on ports 3797/32900; tshark decodes Teredo on port 3544 "
         "only (its heuristic is off by default), so it sees UDP data and no TCP.")),
}


@pytest.fixture(scope="module")
def results() -> list[tc.FileResult]:
    """One tshark run and one read per capture, for every test of this module."""
    return tc.compare_files(tc.all_captures())


def test_every_capture_is_compared(results: list[tc.FileResult]) -> None:
    assert len(results) >= 4 and sum(r.streams for r in results) >= 180   # captures/
    if tc.SHARED.is_dir():
        assert len(results) > 50 and sum(r.streams for r in results) > 600


def is_known(name: str, stream: int, metric: str) -> bool:
    return (name, stream, metric) in KNOWN_DIFFERENCES


@pytest.mark.parametrize("metric", tc.NAMES)
def test_metric_agrees_with_tshark(results: list[tc.FileResult], metric: str) -> None:
    table = tc.Table()
    for res in results:
        table.add(res)
    unexplained = [f"{res.path.name} stream {n}" for res in results
                   for n in tc.differences(res, metric)
                   if not is_known(res.path.name, n, metric)]
    assert not unexplained, f"{metric} differs, unexplained: {unexplained}"
    assert table.total[metric] > 0
    assert table.ratio(metric) >= 0.99, table.markdown()


def test_known_differences_still_differ(results: list[tc.FileResult]) -> None:
    by_name = {res.path.name: res for res in results}
    gone = [key for key in KNOWN_DIFFERENCES if key[0] in by_name
            and by_name[key[0]].outcome.get(key[1], {}).get(key[2]) is not False]
    assert not gone, f"these agree now, take them out of KNOWN_DIFFERENCES: {gone}"


def test_no_connection_without_a_tshark_stream(results: list[tc.FileResult]) -> None:
    extra = {res.path.name: [(r["client"], r["server"]) for r in res.unmatched]
             for res in results if res.unmatched}
    expected = {name: [known[:2]] for name, known in KNOWN_EXTRA.items()
                if any(res.path.name == name for res in results)}
    assert extra == expected
