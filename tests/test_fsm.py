"""analyzer.fsm against RFC 9293, pair by pair.

``EXPECTED`` below is written from the RFC (section 3.3.2 figure 5 and the event
processing of sections 3.10.1 to 3.10.7), not copied from ``analyzer.fsm``. It reads
the RFC literally:

* a *received* segment is always processed by RFC 9293 (3.10.7 is total): the expected
  value is the state the RFC leaves the endpoint in, even when the RFC's answer is only
  "drop it", "answer with RST" or "answer with an (challenge) ACK";
* a *sent* segment is expected (not None) only where the RFC has the endpoint send it in
  that state, as a new segment or a retransmission (3.8.1); None means "RFC 9293 never
  sends this here".

Where the module deliberately differs, the difference is listed in ``FLAGGED`` (the RFC
keeps the state; the table calls the input unexpected, which per its contract also keeps
the state, so only the ``unexpected`` list of a record differs) or in ``ACCEPTED`` (a
modelling choice of a passive observer, with the reason). Every other pair must agree.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import fsm
from analyzer.fsm import Input, TcpState

S = TcpState
I = Input  # noqa: E741

CLOSED, LISTEN, SYN_SENT, SYN_RCVD, ESTAB = (S.CLOSED, S.LISTEN, S.SYN_SENT, S.SYN_RECEIVED,
                                              S.ESTABLISHED)
FW1, FW2, CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT = (S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
                                                      S.CLOSING, S.LAST_ACK, S.TIME_WAIT)
NEVER = None  # RFC 9293 never produces this send in this state

# fmt: off
EXPECTED: dict[tuple[TcpState, Input], TcpState | None] = {
    # ---- CLOSED: no TCB (3.10.7.1). OPEN is the only way out.
    (CLOSED, I.SEND_SYN): SYN_SENT,          # 3.10.1 active OPEN; fig. 5 "active OPEN / snd SYN"
    (CLOSED, I.SEND_SYN_ACK): NEVER,         # 3.10.7.1: a SYN to CLOSED is answered by RST only
    (CLOSED, I.SEND_FIN): NEVER,             # 3.10.4 CLOSE: "error: connection does not exist"
    (CLOSED, I.SEND_RST): CLOSED,            # 3.10.7.1 the RST answering a segment to CLOSED
    (CLOSED, I.RECV_SYN): CLOSED,            # 3.10.7.1 answered by <SEQ=0><ACK=..><CTL=RST,ACK>
    (CLOSED, I.RECV_SYN_ACK): CLOSED,        # 3.10.7.1 answered by <SEQ=SEG.ACK><CTL=RST>
    (CLOSED, I.RECV_ACK_OF_SYN): CLOSED,     # 3.10.7.1 (same)
    (CLOSED, I.RECV_FIN): CLOSED,            # 3.10.7.1 (same)
    (CLOSED, I.RECV_ACK_OF_FIN): CLOSED,     # 3.10.7.1 (same)
    (CLOSED, I.RECV_RST): CLOSED,            # 3.10.7.1 "a RST is discarded"
    # ---- LISTEN (3.10.7.2)
    (LISTEN, I.SEND_SYN): SYN_SENT,          # 3.10.2 SEND in LISTEN: passive -> active, SYN
    (LISTEN, I.SEND_SYN_ACK): SYN_RCVD,      # fig. 5 "rcv SYN / snd SYN,ACK" (3.10.7.2 third)
    (LISTEN, I.SEND_FIN): NEVER,             # 3.10.4 CLOSE in LISTEN: delete TCB, nothing sent
    (LISTEN, I.SEND_RST): LISTEN,            # 3.10.7.2 second: an ACK is answered by RST
    (LISTEN, I.RECV_SYN): SYN_RCVD,          # 3.10.7.2 third
    (LISTEN, I.RECV_SYN_ACK): LISTEN,        # 3.10.7.2 second: any ACK -> RST, stay
    (LISTEN, I.RECV_ACK_OF_SYN): LISTEN,     # 3.10.7.2 second
    (LISTEN, I.RECV_FIN): LISTEN,            # 3.10.7.2 second/fourth; 3.10.7.4 eighth skips LISTEN
    (LISTEN, I.RECV_ACK_OF_FIN): LISTEN,     # 3.10.7.2 second
    (LISTEN, I.RECV_RST): LISTEN,            # 3.10.7.2 first: "An incoming RST should be ignored"
    # ---- SYN-SENT (3.10.7.3)
    (SYN_SENT, I.SEND_SYN): SYN_SENT,        # 3.8.1 retransmitted SYN
    (SYN_SENT, I.SEND_SYN_ACK): SYN_RCVD,    # 3.10.7.3 fourth "enter SYN-RECEIVED, form a SYN,ACK"
    (SYN_SENT, I.SEND_FIN): NEVER,           # 3.10.4 CLOSE in SYN-SENT: delete TCB, no FIN
    (SYN_SENT, I.SEND_RST): SYN_SENT,        # 3.10.7.3 first: RST for an unacceptable ACK, then
                                             #   "discard the segment. Return." (state kept; fig. 8
                                             #   line 5, fig. 9 line 5); 3.10.5 ABORT in SYN-SENT
                                             #   sends no RST
    (SYN_SENT, I.RECV_SYN): SYN_RCVD,        # 3.10.7.3 fourth; fig. 7 (simultaneous open)
    (SYN_SENT, I.RECV_SYN_ACK): ESTAB,       # 3.10.7.3 fourth: our SYN is ACKed
    (SYN_SENT, I.RECV_ACK_OF_SYN): SYN_SENT,  # 3.10.7.3 fifth: no SYN, no RST -> drop
    (SYN_SENT, I.RECV_FIN): SYN_SENT,        # 3.10.7.3 fifth; 3.10.7.4 eighth skips SYN-SENT
    (SYN_SENT, I.RECV_ACK_OF_FIN): SYN_SENT,  # 3.10.7.3 first: unacceptable ACK -> RST, drop
    (SYN_SENT, I.RECV_RST): CLOSED,          # 3.10.7.3 second: "connection reset", CLOSED
    # ---- SYN-RECEIVED (3.10.7.4)
    (SYN_RCVD, I.SEND_SYN): SYN_RCVD,        # simultaneous open: our SYN retransmitted (3.8.1)
    (SYN_RCVD, I.SEND_SYN_ACK): SYN_RCVD,    # the SYN,ACK or its retransmission (3.8.1)
    (SYN_RCVD, I.SEND_FIN): FW1,             # 3.10.4 CLOSE in SYN-RECEIVED: send FIN, FIN-WAIT-1
    (SYN_RCVD, I.SEND_RST): CLOSED,          # 3.10.5 ABORT: send RST, CLOSED
    (SYN_RCVD, I.RECV_SYN): SYN_RCVD,        # 3.10.7.4 first: a retransmitted SYN is below
                                             #   RCV.NXT: not acceptable, ACKed and dropped
    (SYN_RCVD, I.RECV_SYN_ACK): ESTAB,       # fig. 7 line 6 (simultaneous open completes)
    (SYN_RCVD, I.RECV_ACK_OF_SYN): ESTAB,    # 3.10.7.4 fifth: SND.UNA < SEG.ACK =< SND.NXT
    (SYN_RCVD, I.RECV_FIN): CLOSE_WAIT,      # 3.10.7.4 eighth
    (SYN_RCVD, I.RECV_ACK_OF_FIN): SYN_RCVD,  # 3.10.7.4 fifth: unacceptable ACK -> RST, kept
    (SYN_RCVD, I.RECV_RST): LISTEN,          # 3.10.7.4 second: passive OPEN returns to LISTEN
    # ---- ESTABLISHED
    (ESTAB, I.SEND_SYN): NEVER,              # synchronized: no SYN is sent again
    (ESTAB, I.SEND_SYN_ACK): NEVER,          # our SYN is ACKed: nothing left to retransmit
    (ESTAB, I.SEND_FIN): FW1,                # 3.10.4 CLOSE
    (ESTAB, I.SEND_RST): CLOSED,             # 3.10.5 ABORT
    (ESTAB, I.RECV_SYN): ESTAB,              # 3.10.7.4 fourth: challenge ACK, drop
    (ESTAB, I.RECV_SYN_ACK): ESTAB,          # 3.10.7.4 first: old duplicate, ACKed, dropped
    (ESTAB, I.RECV_ACK_OF_SYN): ESTAB,       # 3.10.7.4 fifth: duplicate ACK ignored
    (ESTAB, I.RECV_FIN): CLOSE_WAIT,         # 3.10.7.4 eighth
    (ESTAB, I.RECV_ACK_OF_FIN): ESTAB,       # 3.10.7.4 fifth: ACKs "something not yet sent":
                                             #   send an ACK, drop the segment
    (ESTAB, I.RECV_RST): CLOSED,             # 3.10.7.4 second
    # ---- FIN-WAIT-1
    (FW1, I.SEND_SYN): NEVER,
    (FW1, I.SEND_SYN_ACK): NEVER,
    (FW1, I.SEND_FIN): FW1,                  # 3.8.1 retransmitted FIN
    (FW1, I.SEND_RST): CLOSED,               # 3.10.5 ABORT
    (FW1, I.RECV_SYN): FW1,                  # 3.10.7.4 fourth: challenge ACK
    (FW1, I.RECV_SYN_ACK): FW1,              # 3.10.7.4 first/fourth
    (FW1, I.RECV_ACK_OF_SYN): FW1,           # 3.10.7.4 fifth: ESTABLISHED processing only
    (FW1, I.RECV_FIN): CLOSING,              # 3.10.7.4 eighth: our FIN not yet ACKed
    (FW1, I.RECV_ACK_OF_FIN): FW2,           # 3.10.7.4 fifth
    (FW1, I.RECV_RST): CLOSED,               # 3.10.7.4 second
    # ---- FIN-WAIT-2
    (FW2, I.SEND_SYN): NEVER,
    (FW2, I.SEND_SYN_ACK): NEVER,
    (FW2, I.SEND_FIN): NEVER,                # our FIN is ACKed: it is never sent again
    (FW2, I.SEND_RST): CLOSED,               # 3.10.5 ABORT
    (FW2, I.RECV_SYN): FW2,                  # 3.10.7.4 fourth
    (FW2, I.RECV_SYN_ACK): FW2,              # 3.10.7.4 first/fourth
    (FW2, I.RECV_ACK_OF_SYN): FW2,           # 3.10.7.4 fifth: duplicate
    (FW2, I.RECV_FIN): TIME_WAIT,            # 3.10.7.4 eighth
    (FW2, I.RECV_ACK_OF_FIN): FW2,           # 3.10.7.4 fifth: duplicate
    (FW2, I.RECV_RST): CLOSED,               # 3.10.7.4 second
    # ---- CLOSE-WAIT
    (CLOSE_WAIT, I.SEND_SYN): NEVER,
    (CLOSE_WAIT, I.SEND_SYN_ACK): NEVER,
    (CLOSE_WAIT, I.SEND_FIN): LAST_ACK,      # 3.10.4 (RFC 793's "CLOSING" corrected); fig. 5
    (CLOSE_WAIT, I.SEND_RST): CLOSED,        # 3.10.5 ABORT
    (CLOSE_WAIT, I.RECV_SYN): CLOSE_WAIT,    # 3.10.7.4 fourth
    (CLOSE_WAIT, I.RECV_SYN_ACK): CLOSE_WAIT,  # 3.10.7.4 first/fourth
    (CLOSE_WAIT, I.RECV_ACK_OF_SYN): CLOSE_WAIT,  # 3.10.7.4 fifth
    (CLOSE_WAIT, I.RECV_FIN): CLOSE_WAIT,    # 3.10.7.4 eighth "Remain in the CLOSE-WAIT state"
    (CLOSE_WAIT, I.RECV_ACK_OF_FIN): CLOSE_WAIT,  # 3.10.7.4 fifth: ACK of unsent data, dropped
    (CLOSE_WAIT, I.RECV_RST): CLOSED,        # 3.10.7.4 second
    # ---- CLOSING
    (CLOSING, I.SEND_SYN): NEVER,
    (CLOSING, I.SEND_SYN_ACK): NEVER,
    (CLOSING, I.SEND_FIN): CLOSING,          # 3.8.1 retransmitted FIN (not yet ACKed)
    (CLOSING, I.SEND_RST): NEVER,            # 3.10.5 ABORT in CLOSING sends nothing; 3.10.7.4
                                             #   answers bad segments with an ACK, not RST
    (CLOSING, I.RECV_SYN): CLOSING,          # 3.10.7.4 fourth
    (CLOSING, I.RECV_SYN_ACK): CLOSING,      # 3.10.7.4 first/fourth
    (CLOSING, I.RECV_ACK_OF_SYN): CLOSING,   # 3.10.7.4 fifth "otherwise ignore the segment"
    (CLOSING, I.RECV_FIN): CLOSING,          # 3.10.7.4 eighth "Remain in the CLOSING state"
    (CLOSING, I.RECV_ACK_OF_FIN): TIME_WAIT,  # 3.10.7.4 fifth; fig. 13
    (CLOSING, I.RECV_RST): CLOSED,           # 3.10.7.4 second
    # ---- LAST-ACK
    (LAST_ACK, I.SEND_SYN): NEVER,
    (LAST_ACK, I.SEND_SYN_ACK): NEVER,
    (LAST_ACK, I.SEND_FIN): LAST_ACK,        # 3.8.1 retransmitted FIN
    (LAST_ACK, I.SEND_RST): NEVER,           # 3.10.5 ABORT in LAST-ACK sends nothing
    (LAST_ACK, I.RECV_SYN): LAST_ACK,        # 3.10.7.4 fourth
    (LAST_ACK, I.RECV_SYN_ACK): LAST_ACK,    # 3.10.7.4 first/fourth
    (LAST_ACK, I.RECV_ACK_OF_SYN): LAST_ACK,  # 3.10.7.4 fifth: only the ACK of our FIN counts
    (LAST_ACK, I.RECV_FIN): LAST_ACK,        # 3.10.7.4 eighth "Remain in the LAST-ACK state"
    (LAST_ACK, I.RECV_ACK_OF_FIN): CLOSED,   # 3.10.7.4 fifth: delete the TCB, CLOSED
    (LAST_ACK, I.RECV_RST): CLOSED,          # 3.10.7.4 second
    # ---- TIME-WAIT
    (TIME_WAIT, I.SEND_SYN): NEVER,          # a new SYN belongs to a new connection
    (TIME_WAIT, I.SEND_SYN_ACK): NEVER,
    (TIME_WAIT, I.SEND_FIN): NEVER,          # our FIN is ACKed
    (TIME_WAIT, I.SEND_RST): NEVER,          # 3.10.5 ABORT in TIME-WAIT sends nothing
    (TIME_WAIT, I.RECV_SYN): TIME_WAIT,      # 3.10.7.4 fourth (an accepted new SYN, RFC 6191,
                                             #   is a new connection)
    (TIME_WAIT, I.RECV_SYN_ACK): TIME_WAIT,  # 3.10.7.4 first/fourth
    (TIME_WAIT, I.RECV_ACK_OF_SYN): TIME_WAIT,  # 3.10.7.4 fifth
    (TIME_WAIT, I.RECV_FIN): TIME_WAIT,      # 3.10.7.4 eighth: ACK it, restart 2 MSL
    (TIME_WAIT, I.RECV_ACK_OF_FIN): TIME_WAIT,  # 3.10.7.4 fifth: duplicate
    (TIME_WAIT, I.RECV_RST): CLOSED,         # 3.10.7.4 second (RFC 1337 not assumed)
}

# The RFC keeps the state (drop, RST reply, or (challenge) ACK reply); the module's table
# calls the input unexpected instead. By the table's contract an unexpected input also
# keeps the state, so the endpoint's state sequence is the same; the record additionally
# lists the input in ``unexpected``, which is what an observer wants for segments that
# only arrive after a loss, a reordering, a stale connection or an attack.
FLAGGED: frozenset[tuple[TcpState, Input]] = frozenset({
    (CLOSED, I.RECV_SYN_ACK), (CLOSED, I.RECV_ACK_OF_SYN), (CLOSED, I.RECV_FIN),
    (CLOSED, I.RECV_ACK_OF_FIN),
    (LISTEN, I.RECV_SYN_ACK), (LISTEN, I.RECV_ACK_OF_SYN), (LISTEN, I.RECV_FIN),
    (LISTEN, I.RECV_ACK_OF_FIN),
    (SYN_SENT, I.RECV_ACK_OF_SYN), (SYN_SENT, I.RECV_FIN), (SYN_SENT, I.RECV_ACK_OF_FIN),
    (SYN_RCVD, I.RECV_ACK_OF_FIN),
    (ESTAB, I.RECV_ACK_OF_FIN),
    (FW1, I.RECV_SYN), (FW1, I.RECV_SYN_ACK), (FW1, I.RECV_ACK_OF_SYN),
    (FW2, I.RECV_SYN), (FW2, I.RECV_SYN_ACK), (FW2, I.RECV_ACK_OF_SYN),
    (CLOSE_WAIT, I.RECV_SYN), (CLOSE_WAIT, I.RECV_SYN_ACK), (CLOSE_WAIT, I.RECV_ACK_OF_SYN),
    (CLOSE_WAIT, I.RECV_ACK_OF_FIN),
    (CLOSING, I.RECV_SYN), (CLOSING, I.RECV_SYN_ACK), (CLOSING, I.RECV_ACK_OF_SYN),
    (LAST_ACK, I.RECV_SYN), (LAST_ACK, I.RECV_SYN_ACK), (LAST_ACK, I.RECV_ACK_OF_SYN),
    (TIME_WAIT, I.RECV_SYN), (TIME_WAIT, I.RECV_SYN_ACK), (TIME_WAIT, I.RECV_ACK_OF_SYN),
})

# Deliberate modelling choices of a passive observer, accepted with the reason.
ACCEPTED: dict[tuple[TcpState, Input], tuple[TcpState | None, str]] = {
    (SYN_RCVD, I.RECV_RST): (
        CLOSED,
        "3.10.7.4 second returns a passively opened endpoint to LISTEN (and an actively "
        "opened one to CLOSED); the table cannot tell which, and the record describes this "
        "connection, whose endpoint is gone either way (the listening socket lives on)."),
    (SYN_SENT, I.SEND_SYN_ACK): (
        None,
        "Figure 5 has SYN-SENT --rcv SYN / snd SYN,ACK--> SYN-RECEIVED; seeing only the "
        "SYN,ACK means the peer's SYN was not captured, and the table flags that instead of "
        "inferring it (unlike LISTEN + SEND_SYN_ACK). The state converges at the peer's "
        "SYN,ACK (SYN_SENT + RECV_SYN_ACK -> ESTABLISHED)."),
    (ESTAB, I.SEND_SYN_ACK): (
        ESTAB,
        "Capture-point timing: the ACK of the SYN,ACK can be seen at the tap and lost "
        "after it, so the server (already ESTABLISHED to the observer) retransmits."),
    (FW2, I.SEND_FIN): (
        FW2,
        "Capture-point timing: the ACK of the FIN is seen at the tap before the FIN sender "
        "gets it, so a FIN retransmission can follow it on the wire."),
    (CLOSING, I.SEND_RST): (
        CLOSED,
        "RFC 9293 sends no RST from CLOSING, but real stacks do (an orphaned socket "
        "answering a segment); the RST shows the TCB is gone."),
    (LAST_ACK, I.SEND_RST): (
        CLOSED,
        "As for CLOSING: real stacks send RST from LAST-ACK; the TCB is gone."),
    (TIME_WAIT, I.SEND_RST): (
        CLOSED,
        "As for CLOSING: RFC 9293 sends no RST from TIME-WAIT (it ACKs), but real stacks "
        "do (Linux's TIME-WAIT socket in its FIN-WAIT-2 substate answering new data, a "
        "Windows abort); the RST shows the TCB is gone, so nobody stays in TIME-WAIT."),
}
# fmt: on

ALL_PAIRS = [(s, i) for s in TcpState for i in Input]


def _name(state: TcpState | None) -> str:
    return "unexpected" if state is None else state.name


def module_choice(pair: tuple[TcpState, Input]) -> TcpState | None:
    """What the module must return for ``pair`` given the RFC and the accepted choices."""
    if pair in ACCEPTED:
        return ACCEPTED[pair][0]
    if pair in FLAGGED:
        return None
    return EXPECTED[pair]


# ---- the expectation table itself ------------------------------------------------------


def test_expected_table_is_complete() -> None:
    assert len(TcpState) == 11 and len(Input) == 10
    assert set(EXPECTED) == set(ALL_PAIRS) and len(EXPECTED) == 110


def test_every_received_segment_has_an_rfc_outcome() -> None:
    """3.10.7 processes every arriving segment: no RECV_* pair is None in EXPECTED."""
    assert all(EXPECTED[(s, i)] is not None for s, i in ALL_PAIRS if i.name.startswith("RECV"))


def test_flagged_pairs_are_rfc_keeps_state() -> None:
    for state, seen in FLAGGED:
        assert EXPECTED[(state, seen)] == state, (state.name, seen.name)
        assert (state, seen) not in ACCEPTED


def test_accepted_pairs_really_differ_from_the_rfc_reading() -> None:
    for pair, (choice, reason) in ACCEPTED.items():
        assert choice != EXPECTED[pair], pair
        assert reason


# ---- the module against the RFC, all 110 pairs -----------------------------------------


@pytest.mark.parametrize("state,seen", ALL_PAIRS, ids=[f"{s.name}-{i.name}" for s, i in ALL_PAIRS])
def test_step_matches_rfc(state: TcpState, seen: Input) -> None:
    want = module_choice((state, seen))
    got = fsm.step(state, seen)
    rfc = EXPECTED[(state, seen)]
    assert got == want, (
        f"step({state.name}, {seen.name}) = {_name(got)}, expected {_name(want)} "
        f"(RFC 9293 reading: {_name(rfc)})")


def test_step_is_the_table() -> None:
    for state, seen in ALL_PAIRS:
        assert fsm.step(state, seen) == fsm.TRANSITIONS.get((state, seen))


def test_transitions_keys_and_values_are_enum_members() -> None:
    for (state, seen), nxt in fsm.TRANSITIONS.items():
        assert type(state) is TcpState and type(seen) is Input and type(nxt) is TcpState


# ---- table_bytes ------------------------------------------------------------------------


def test_table_bytes_round_trips() -> None:
    flat = fsm.table_bytes()
    assert isinstance(flat, bytes) and len(flat) == len(TcpState) * len(Input) == 110
    decoded = {}
    for k, value in enumerate(flat):
        state, seen = TcpState(k // len(Input)), Input(k % len(Input))
        if value == fsm.UNEXPECTED:
            assert (state, seen) not in fsm.TRANSITIONS
        else:
            assert value < len(TcpState)
            decoded[(state, seen)] = TcpState(value)
    assert decoded == fsm.TRANSITIONS
    assert fsm.UNEXPECTED == 0xFF
    assert fsm.table_bytes() == flat  # deterministic


def test_table_bytes_layout_matches_the_engine() -> None:
    """Row-major [state * 10 + input]; the enum values are the C enum values."""
    assert [s.value for s in TcpState] == list(range(11))
    assert [i.value for i in Input] == list(range(10))
    flat = fsm.table_bytes()
    assert flat[S.SYN_SENT * 10 + I.RECV_SYN_ACK] == S.ESTABLISHED
    assert flat[S.LAST_ACK * 10 + I.RECV_ACK_OF_FIN] == S.CLOSED
    assert flat[S.CLOSED * 10 + I.SEND_FIN] == 0xFF


# ---- graph properties -------------------------------------------------------------------


def reachable(start: TcpState) -> set[TcpState]:
    seen_states, todo = {start}, deque([start])
    while todo:
        state = todo.popleft()
        for seen in Input:
            nxt = fsm.step(state, seen)
            if nxt is not None and nxt not in seen_states:
                seen_states.add(nxt)
                todo.append(nxt)
    return seen_states


def test_every_state_but_listen_is_reachable_from_closed() -> None:
    assert reachable(S.CLOSED) >= set(TcpState) - {S.CLOSED, S.LISTEN}
    # an observer cannot see a passive OPEN: LISTEN is only ever an inferred first state
    assert S.LISTEN not in reachable(S.CLOSED)
    assert reachable(S.LISTEN) >= set(TcpState) - {S.CLOSED, S.LISTEN}


def test_final_states() -> None:
    assert fsm.FINAL_STATES == frozenset({S.CLOSED, S.TIME_WAIT})


def test_time_wait_and_closed_are_the_only_sinks() -> None:
    """Leaving aside SEND_SYN from CLOSED (a new connection), no input leads out of
    {CLOSED, TIME_WAIT}; every other state has a way out and a way to CLOSED."""
    final = {S.CLOSED, S.TIME_WAIT}
    escapes = {(s, i) for s in final for i in Input
               if fsm.step(s, i) is not None and fsm.step(s, i) not in final}
    assert escapes == {(S.CLOSED, I.SEND_SYN)}
    for state in set(TcpState) - final:
        moves = {fsm.step(state, i) for i in Input} - {None, state}
        assert moves, f"{state.name} is a sink"
        assert S.CLOSED in reachable(state), f"{state.name} cannot reach CLOSED"
    # no state ignores every input
    for state in TcpState:
        if all(fsm.step(state, i) in (None, state) for i in Input):
            pytest.fail(f"{state.name} never changes state")


def test_rst_always_ends_a_synchronized_endpoint() -> None:
    """3.10.7.4 second: an acceptable RST takes every synchronized state to CLOSED."""
    for state in (S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING,
                  S.LAST_ACK, S.TIME_WAIT):
        assert fsm.step(state, I.RECV_RST) == S.CLOSED


def test_textbook_paths_through_the_table() -> None:
    def walk(state: TcpState, *inputs: Input) -> list[TcpState]:
        out = [state]
        for seen in inputs:
            nxt = fsm.step(state, seen)
            assert nxt is not None, (state.name, seen.name)
            state = nxt
            out.append(state)
        return out

    # figure 6: three-way handshake, then figure 12: normal close (active closer)
    assert walk(S.CLOSED, I.SEND_SYN, I.RECV_SYN_ACK, I.SEND_FIN, I.RECV_ACK_OF_FIN,
                I.RECV_FIN) == [S.CLOSED, S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT_1,
                                S.FIN_WAIT_2, S.TIME_WAIT]
    # passive side
    assert walk(S.LISTEN, I.RECV_SYN, I.SEND_SYN_ACK, I.RECV_ACK_OF_SYN, I.RECV_FIN,
                I.SEND_FIN, I.RECV_ACK_OF_FIN) == [
        S.LISTEN, S.SYN_RECEIVED, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK,
        S.CLOSED]
    # figure 7: simultaneous open
    assert walk(S.CLOSED, I.SEND_SYN, I.RECV_SYN, I.SEND_SYN_ACK, I.RECV_SYN_ACK)[-1] == \
        S.ESTABLISHED
    # figure 13: simultaneous close
    assert walk(S.ESTABLISHED, I.SEND_FIN, I.RECV_FIN, I.RECV_ACK_OF_FIN) == [
        S.ESTABLISHED, S.FIN_WAIT_1, S.CLOSING, S.TIME_WAIT]
    # three-way close: the FIN that carries the ACK (ACK before FIN, 3.10.7.4 order)
    assert walk(S.FIN_WAIT_1, I.RECV_ACK_OF_FIN, I.RECV_FIN) == [
        S.FIN_WAIT_1, S.FIN_WAIT_2, S.TIME_WAIT]


# ---- random walks -----------------------------------------------------------------------

FLAT = fsm.table_bytes()


@settings(max_examples=300, deadline=None)
@given(start=st.sampled_from(list(TcpState)),
       inputs=st.lists(st.sampled_from(list(Input)), max_size=60))
def test_random_walks_stay_inside_tcpstate(start: TcpState, inputs: list[Input]) -> None:
    state = start
    for seen in inputs:
        nxt = fsm.step(state, seen)
        assert nxt is None or (isinstance(nxt, TcpState) and nxt in TcpState)
        # the engine's view of the same pair
        code = FLAT[state * len(Input) + seen]
        assert code == (fsm.UNEXPECTED if nxt is None else int(nxt))
        if nxt is not None:
            state = nxt  # an unexpected input keeps the state (the tracker's rule)
    assert state in TcpState


@settings(max_examples=200, deadline=None)
@given(inputs=st.lists(st.sampled_from(list(Input)), max_size=60))
def test_random_walks_from_closed_never_revisit_listen(inputs: list[Input]) -> None:
    state = S.CLOSED
    for seen in inputs:
        state = fsm.step(state, seen) or state
        assert state != S.LISTEN
