"""Connection records: the engine's raw tuples turned into the documented fields.

One record is a plain dict, exactly what ``handshake read --format jsonl`` writes:
``id, client, server, first_packet, last_packet, start, end, duration, packets,
payload_bytes, conn_state, history, handshake, close, states`` and a few extras
(``roles_guessed``, ``unexpected``, ``anomalies``: Wireshark's per-packet analysis
flags counted per connection, only the non-zero ones).
"""

from __future__ import annotations

import socket
from typing import Any, Final, NamedTuple

from .anomalies import NAMES as ANOMALY_NAMES
from .anomalies import counts as anomaly_counts
from .fsm import Input, TcpState

CONN_STATES: Final = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                      "SH", "SHR", "OTH")
CLOSE_KINDS: Final = ("open", "four_way", "three_way", "simultaneous", "reset", "refused",
                      "unanswered", "incomplete")
WHO: Final = (None, "client", "server", "both")
STATE_NAMES: Final = tuple(s.name for s in TcpState)
INPUT_NAMES: Final = tuple(i.name for i in Input)


def _share_names() -> None:
    """The engine's JSON writer takes its names from here (one list, not two)."""
    from . import _engine

    _engine.set_names(STATE_NAMES, INPUT_NAMES, CONN_STATES, CLOSE_KINDS, ANOMALY_NAMES)


_share_names()


class RawConn(NamedTuple):
    """The engine's per-connection tuple (csrc/module.c, Engine_conn), field by field."""

    id: int
    family: int
    client_addr: bytes
    client_port: int
    server_addr: bytes
    server_port: int
    first_packet: int
    last_packet: int
    first_ns: int
    last_ns: int
    packets_client: int
    packets_server: int
    payload_client: int
    payload_server: int
    ip_bytes_client: int
    ip_bytes_server: int
    conn_state: int
    history: str
    handshake_complete: bool
    simultaneous_open: bool
    syn_retransmits: int
    synack_retransmits: int
    client_isn: int | None
    server_isn: int | None
    first_syn_ns: int | None
    syn_ns: int | None
    synack_ns: int | None
    ack_ns: int | None
    synack_answered_ns: int | None  # the SYN-ACK that the completing ACK answered
    client_options: tuple[int, int, bool, bool] | None
    server_options: tuple[int, int, bool, bool] | None
    close_kind: int
    close_initiator: int
    reset_by: int
    half_close: bool
    time_wait: int
    roles_guessed: bool
    flipped: bool
    unexpected: int
    zeek_orig_bytes: int
    zeek_resp_bytes: int
    client_final: int
    server_final: int
    zeek_orig_pkts: int
    zeek_resp_pkts: int
    zeek_orig_ip_bytes: int
    zeek_resp_ip_bytes: int
    zeek_last_ns: int
    anomalies: tuple[int, ...]  # totals per analyzer.anomalies.Anomaly bit, in bit order
    fast_open: bool  # the SYN-ACK acknowledged data sent in the SYN (RFC 7413)


def endpoint(family: int, addr: bytes, port: int) -> str:
    """``ip:port``, or ``[v6]:port`` for IPv6."""
    if family == 4:
        return f"{socket.inet_ntop(socket.AF_INET, addr)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, addr)}]:{port}"


def secs(ns: int) -> float:
    """Nanoseconds as seconds, correctly rounded: int / int true division rounds once
    (``ns / 1e9`` would round twice for epoch-sized values, moving timestamps by a few
    hundred nanoseconds)."""
    return ns / 1_000_000_000


def seconds(ns: int | None) -> float | None:
    return None if ns is None else secs(ns)


def _delta(later: int | None, earlier: int | None) -> float | None:
    if later is None or earlier is None:
        return None
    return secs(later - earlier)


def irtt_seconds(raw: RawConn) -> float | None:
    """SYN -> SYN-ACK plus SYN-ACK -> ACK, each on the segment it answers: a lost
    SYN-ACK's retransmission timeout is not round-trip time. When the SYN-ACK was not
    captured (a one-direction tap), SYN -> the ACK that answered it."""
    if raw.synack_ns is None and raw.syn_ns is not None and raw.ack_ns is not None:
        return secs(raw.ack_ns - raw.syn_ns)
    if None in (raw.syn_ns, raw.synack_ns, raw.synack_answered_ns, raw.ack_ns):
        return None
    return secs((raw.ack_ns - raw.synack_answered_ns)  # type: ignore[operator]
                + (raw.synack_ns - raw.syn_ns))  # type: ignore[operator]


def _options(opts: tuple[int, int, bool, bool] | None) -> dict[str, Any] | None:
    if opts is None:
        return None
    mss, wscale, sack, ts = opts
    return {"mss": None if mss < 0 else mss, "wscale": None if wscale < 0 else wscale,
            "sack_permitted": sack, "timestamps": ts}


def state_name(code: int) -> str | None:
    return None if code < 0 or code == 0xFF else STATE_NAMES[code]


def build_record(raw: RawConn, transitions: list[tuple[int, int, int, int, int, int]]
                 ) -> dict[str, Any]:
    """The documented record of one connection."""
    states: dict[str, list[list[Any]]] = {"client": [], "server": []}
    unexpected: list[dict[str, Any]] = []
    for role, state, ts_ns, pkt, how, seen in transitions:
        who = "client" if role == 0 else "server"
        if how == 2:  # an input the table does not allow here: kept, not raised
            unexpected.append({"packet": pkt, "endpoint": who, "state": STATE_NAMES[state],
                               "input": INPUT_NAMES[seen]})
        else:
            states[who].append([secs(ts_ns), STATE_NAMES[state]])
    return {
        "id": raw.id,
        "client": endpoint(raw.family, raw.client_addr, raw.client_port),
        "server": endpoint(raw.family, raw.server_addr, raw.server_port),
        "first_packet": raw.first_packet,
        "last_packet": raw.last_packet,
        "start": secs(raw.first_ns),
        "end": secs(raw.last_ns),
        "duration": secs(raw.last_ns - raw.first_ns),
        "packets": {"client": raw.packets_client, "server": raw.packets_server},
        "payload_bytes": {"client": raw.payload_client, "server": raw.payload_server},
        "conn_state": CONN_STATES[raw.conn_state],
        "history": raw.history,
        "handshake": {
            "complete": raw.handshake_complete,
            "simultaneous_open": raw.simultaneous_open,
            "fast_open": raw.fast_open,
            "syn_retransmits": raw.syn_retransmits,
            "synack_retransmits": raw.synack_retransmits,
            "client_isn": raw.client_isn,
            "server_isn": raw.server_isn,
            "irtt": irtt_seconds(raw),
            "client_rtt": _delta(raw.ack_ns, raw.synack_answered_ns),
            "server_rtt": _delta(raw.synack_ns, raw.syn_ns),
            "client_options": _options(raw.client_options),
            "server_options": _options(raw.server_options),
        },
        "close": {
            "kind": CLOSE_KINDS[raw.close_kind],
            "initiator": WHO[raw.close_initiator],
            "reset_by": WHO[raw.reset_by],
            "half_close": raw.half_close,
            "time_wait": WHO[raw.time_wait],
        },
        "states": states,
        "roles_guessed": raw.roles_guessed,
        "unexpected": unexpected,
        "anomalies": anomaly_counts(raw.anomalies),
    }
