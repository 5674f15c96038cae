"""Known product bugs found by the tests, kept visible: each is a strict xfail, so the
test fails loudly once the bug is fixed and the entry must be removed. See the open
issue "Read captures and rebuild every TCP connection" for the plan."""

from __future__ import annotations

import pytest

KNOWN_BUGS = {
    "test_simultaneous_close": "simultaneous close: crossing FINs are not yet driven through "
                               "CLOSING by the tracker (csrc/track.c rfc_segment/note_facts)",
    "test_simultaneous_open": "simultaneous open: a bare SYN answered by a bare SYN is only "
                              "partly modelled (infer_sender)",
    "test_simultaneous_open_records_both_syns": "simultaneous open, see above",
    "test_client_rtt_is_measured_from_the_synack_that_was_answered":
        "client_rtt uses the first SYN-ACK, not the one whose ACK completed the handshake",
    "test_fin_ack_acknowledging_a_fin_never_sent_is_unexpected":
        "an ACK covering a FIN never sent is not yet reported as unexpected",
    "test_half_open_discovery_figure_9": "RFC 9293 figure 9 (half-open discovery) not modelled",
    "test_old_duplicate_synack_figure_8": "RFC 9293 figure 8 (old duplicate SYN) not modelled",
    "test_handshake_at_time_zero": "timestamp 0 is used as the 'unset' sentinel in the engine",
    "test_zeroed_timestamps_four_way_close": "timestamp 0 is the engine's 'unset' sentinel",
    "test_zeroed_timestamps_reset": "timestamp 0 is the engine's 'unset' sentinel",
    "test_timestamps_at_the_epoch": "timestamp 0 is the engine's 'unset' sentinel",
    "test_pcapng_simple_packet_blocks": "simple packet blocks carry no time: ts 0 is the "
                                        "engine's 'unset' sentinel, so the close looks open",
    "test_step_matches_rfc[SYN_SENT-SEND_RST]": "the test and fsm.py disagree on SEND_RST in "
                                                "SYN_SENT; to settle against RFC 9293 3.10.5",
    "test_corpus_trace_loads[gtp2_different_udp_port.pcap]":
        "TCP inside GTP-U tunnels is not decoded (issue 3)",
}


# Found by hypothesis; not strict because a run may not draw a failing example.
FLAKY_BUGS = {
    "test_extreme_timestamps_json_lines": "timestamps near the int64 limits overflow the "
                                          "engine's nanosecond arithmetic (csrc/jsonl.c)",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.name
        reason = KNOWN_BUGS.get(name) or KNOWN_BUGS.get(name.split("[", 1)[0])
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        flaky = FLAKY_BUGS.get(name.split("[", 1)[0])
        if flaky:
            item.add_marker(pytest.mark.xfail(reason=flaky, strict=False))
