"""The RFC 9293 TCP state machine, as seen by a passive observer.

This module is the only place that knows TCP states and how they change. Everything
else (the compiled tracker, the ladder diagram, the docs' state diagram) reads
``TRANSITIONS``. The compiled engine receives the table as a flat byte string built by
:func:`table_bytes`, so the C code holds no state knowledge of its own.

An observer cannot see an endpoint's user calls (OPEN, CLOSE, ABORT); it sees segments
on the wire. So the inputs are what an endpoint is seen to *send* (which implies the
call that made it send) and what it *receives* (assumed delivered at the capture time).
The tracker turns one segment into those inputs, in RFC 9293 section 3.10.7.4 order:
the ACK field is processed before the FIN bit (steps five and eight), so one FIN+ACK
segment may move an endpoint from FIN_WAIT_1 through FIN_WAIT_2 to TIME_WAIT.

A pair missing from the table is *unexpected*: the tracker records it as an anomaly
(lost packets, a capture started mid-connection) and leaves the state unchanged; it is
never an error.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class TcpState(IntEnum):
    """The eleven connection states of RFC 9293 section 3.3.2."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


class Input(IntEnum):
    """What one endpoint is seen to do or to receive, derived from one segment."""

    SEND_SYN = 0  # SYN without ACK: active OPEN (3.10.1) or SEND in LISTEN (3.10.2)
    SEND_SYN_ACK = 1  # the answer to a SYN (3.10.7.2)
    SEND_FIN = 2  # CLOSE call (3.10.4)
    SEND_RST = 3  # ABORT (3.10.5) or the answer to a bad segment (3.10.7.1)
    RECV_SYN = 4
    RECV_SYN_ACK = 5
    RECV_ACK_OF_SYN = 6  # an ACK that covers this endpoint's SYN
    RECV_FIN = 7
    RECV_ACK_OF_FIN = 8  # an ACK that covers this endpoint's FIN
    RECV_RST = 9


S = TcpState
I = Input

#: (state, input) -> next state. Each row cites the RFC 9293 section that defines it.
TRANSITIONS: Final[dict[tuple[TcpState, Input], TcpState]] = {
    # CLOSED: no connection. A SYN is the active OPEN; a segment arriving here is
    # answered by RST, which is how a refused connection looks (3.10.7.1).
    (S.CLOSED, I.SEND_SYN): S.SYN_SENT,  # 3.10.1 OPEN, active
    (S.CLOSED, I.SEND_RST): S.CLOSED,  # 3.10.7.1 reset sent for a segment to CLOSED
    (S.CLOSED, I.RECV_SYN): S.CLOSED,  # 3.10.7.1 (then answered by RST)
    (S.CLOSED, I.RECV_RST): S.CLOSED,  # 3.10.7.1 an incoming RST is discarded
    # LISTEN: a passive OPEN waits for a SYN (3.10.7.2).
    (S.LISTEN, I.RECV_SYN): S.SYN_RECEIVED,  # 3.10.7.2 third: SYN
    (S.LISTEN, I.SEND_SYN): S.SYN_SENT,  # 3.10.2 SEND in LISTEN
    (S.LISTEN, I.SEND_SYN_ACK): S.SYN_RECEIVED,  # inferred: the SYN was not captured
    (S.LISTEN, I.RECV_RST): S.LISTEN,  # 3.10.7.2 first: an RST is ignored
    (S.LISTEN, I.SEND_RST): S.LISTEN,  # 3.10.7.2 second: a bad ACK is answered by RST
    # SYN_SENT: the active opener waits for the answer (3.10.7.3).
    (S.SYN_SENT, I.SEND_SYN): S.SYN_SENT,  # retransmitted SYN (3.8.1)
    (S.SYN_SENT, I.RECV_SYN_ACK): S.ESTABLISHED,  # 3.10.7.3 fourth: SYN with acceptable ACK
    (S.SYN_SENT, I.RECV_SYN): S.SYN_RECEIVED,  # 3.10.7.3 fourth: simultaneous open
    (S.SYN_SENT, I.RECV_RST): S.CLOSED,  # 3.10.7.3 second: "connection reset" (refused)
    # ABORT in SYN-SENT sends nothing (3.10.5); a RST from here is the answer to an
    # unacceptable ACK (old duplicate, half-open peer), and the SYN stands (figures 8, 9).
    (S.SYN_SENT, I.SEND_RST): S.SYN_SENT,  # 3.10.7.3 first
    # SYN_RECEIVED: waiting for the ACK of our SYN (3.10.7.4 fifth).
    (S.SYN_RECEIVED, I.SEND_SYN_ACK): S.SYN_RECEIVED,  # answer or its retransmission
    (S.SYN_RECEIVED, I.SEND_SYN): S.SYN_RECEIVED,  # simultaneous open: our SYN again
    (S.SYN_RECEIVED, I.RECV_SYN): S.SYN_RECEIVED,  # retransmitted SYN, answered again
    (S.SYN_RECEIVED, I.RECV_ACK_OF_SYN): S.ESTABLISHED,  # 3.10.7.4 fifth: ACK
    (S.SYN_RECEIVED, I.RECV_SYN_ACK): S.ESTABLISHED,  # simultaneous open completes
    (S.SYN_RECEIVED, I.SEND_FIN): S.FIN_WAIT_1,  # 3.10.4 CLOSE in SYN-RECEIVED
    (S.SYN_RECEIVED, I.RECV_FIN): S.CLOSE_WAIT,  # 3.10.7.4 eighth
    # The RFC returns a passively opened endpoint to LISTEN; the listening socket
    # lives on, but this connection's endpoint is gone, so the record shows CLOSED.
    (S.SYN_RECEIVED, I.RECV_RST): S.CLOSED,  # 3.10.7.4 second
    (S.SYN_RECEIVED, I.SEND_RST): S.CLOSED,  # 3.10.5 ABORT
    # ESTABLISHED: data transfer (3.10.7.4).
    (S.ESTABLISHED, I.SEND_FIN): S.FIN_WAIT_1,  # 3.10.4 CLOSE
    (S.ESTABLISHED, I.RECV_FIN): S.CLOSE_WAIT,  # 3.10.7.4 eighth
    (S.ESTABLISHED, I.RECV_RST): S.CLOSED,  # 3.10.7.4 second
    (S.ESTABLISHED, I.SEND_RST): S.CLOSED,  # 3.10.5 ABORT
    (S.ESTABLISHED, I.RECV_SYN_ACK): S.ESTABLISHED,  # retransmitted SYN-ACK, re-ACKed
    (S.ESTABLISHED, I.SEND_SYN_ACK): S.ESTABLISHED,  # our SYN-ACK again (its ACK was lost)
    (S.ESTABLISHED, I.RECV_ACK_OF_SYN): S.ESTABLISHED,  # duplicate ACK of the SYN
    (S.ESTABLISHED, I.RECV_SYN): S.ESTABLISHED,  # 3.10.7.4 fourth: challenge ACK
    # FIN_WAIT_1: our FIN is out (3.10.7.4 fifth and eighth).
    (S.FIN_WAIT_1, I.RECV_ACK_OF_FIN): S.FIN_WAIT_2,  # fifth: our FIN is acknowledged
    (S.FIN_WAIT_1, I.RECV_FIN): S.CLOSING,  # eighth: FIN before the ACK of ours
    (S.FIN_WAIT_1, I.SEND_FIN): S.FIN_WAIT_1,  # retransmitted FIN
    (S.FIN_WAIT_1, I.RECV_RST): S.CLOSED,  # second
    (S.FIN_WAIT_1, I.SEND_RST): S.CLOSED,  # 3.10.5 ABORT
    # FIN_WAIT_2: our FIN is acknowledged; the peer may still send data.
    (S.FIN_WAIT_2, I.RECV_FIN): S.TIME_WAIT,  # eighth: start the 2*MSL timer
    (S.FIN_WAIT_2, I.RECV_ACK_OF_FIN): S.FIN_WAIT_2,  # duplicate ACK
    (S.FIN_WAIT_2, I.SEND_FIN): S.FIN_WAIT_2,  # retransmitted FIN
    (S.FIN_WAIT_2, I.RECV_RST): S.CLOSED,
    (S.FIN_WAIT_2, I.SEND_RST): S.CLOSED,
    # CLOSE_WAIT: the peer has closed; we may still send (half-close).
    (S.CLOSE_WAIT, I.SEND_FIN): S.LAST_ACK,  # 3.10.4 CLOSE
    (S.CLOSE_WAIT, I.RECV_FIN): S.CLOSE_WAIT,  # retransmitted FIN (eighth)
    (S.CLOSE_WAIT, I.RECV_RST): S.CLOSED,
    (S.CLOSE_WAIT, I.SEND_RST): S.CLOSED,
    # CLOSING: simultaneous close, waiting for the ACK of our FIN.
    (S.CLOSING, I.RECV_ACK_OF_FIN): S.TIME_WAIT,  # fifth
    (S.CLOSING, I.RECV_FIN): S.CLOSING,
    (S.CLOSING, I.SEND_FIN): S.CLOSING,
    (S.CLOSING, I.RECV_RST): S.CLOSED,
    (S.CLOSING, I.SEND_RST): S.CLOSED,
    # LAST_ACK: waiting for the ACK of our FIN, then the connection is gone.
    (S.LAST_ACK, I.RECV_ACK_OF_FIN): S.CLOSED,  # fifth
    (S.LAST_ACK, I.SEND_FIN): S.LAST_ACK,
    (S.LAST_ACK, I.RECV_FIN): S.LAST_ACK,
    (S.LAST_ACK, I.RECV_RST): S.CLOSED,
    (S.LAST_ACK, I.SEND_RST): S.CLOSED,
    # TIME_WAIT: 2*MSL of quiet; a retransmitted FIN is acknowledged again.
    (S.TIME_WAIT, I.RECV_FIN): S.TIME_WAIT,  # eighth: restart the 2*MSL timeout
    (S.TIME_WAIT, I.RECV_ACK_OF_FIN): S.TIME_WAIT,
    (S.TIME_WAIT, I.RECV_RST): S.CLOSED,  # second (Linux default, no RFC 1337)
    # RFC 9293 sends no RST from TIME_WAIT (3.10.5 ABORT there deletes the TCB quietly);
    # a RST from it shows the TCB is gone (Linux's TIME-WAIT socket answering new data in
    # its FIN-WAIT-2 substate kills itself; Windows aborts), so nobody is left waiting.
    (S.TIME_WAIT, I.SEND_RST): S.CLOSED,
}

#: Byte value in :func:`table_bytes` meaning "unexpected: keep the state, record it".
UNEXPECTED: Final = 0xFF


def step(state: TcpState, seen: Input) -> TcpState | None:
    """The next state, or None when the input is unexpected in ``state``."""
    return TRANSITIONS.get((state, seen))


def table_bytes() -> bytes:
    """The table flattened row-major as ``[state * len(Input) + input]`` for the engine."""
    flat = bytearray([UNEXPECTED]) * (len(TcpState) * len(Input))
    for (state, seen), nxt in TRANSITIONS.items():
        flat[state * len(Input) + seen] = nxt
    return bytes(flat)


#: Endpoint states at which the connection is over for that endpoint.
FINAL_STATES: Final = frozenset({S.CLOSED, S.TIME_WAIT})
