"""Per-packet TCP anomalies with Wireshark's definitions (computed in csrc/anomaly.c).

Each bit is one ``tcp.analysis.*`` field of tshark 4.0, with that field's meaning: so
RETRANSMISSION is also set on fast and spurious retransmissions, as tshark sets
``tcp.analysis.retransmission`` on them, and a record's ``retransmission`` count is the
number of packets where tshark shows that field. The bit order here is the engine's
(csrc/anomaly_state.h, ``AN_*``); tests/test_anomalies.py checks that they match. Each
flag names the ``tcp.analysis.*`` field tshark sets for it and the tag Wireshark puts in
its Info column.
"""

from __future__ import annotations

import enum
from typing import Final


class Anomaly(enum.IntFlag):
    RETRANSMISSION = 1 << 0        # set on fast and spurious ones too, as tshark's field
    FAST_RETRANSMISSION = 1 << 1
    SPURIOUS_RETRANSMISSION = 1 << 2
    OUT_OF_ORDER = 1 << 3
    LOST_SEGMENT = 1 << 4          # "previous segment not captured"
    ACK_LOST_SEGMENT = 1 << 5      # "ACKed unseen segment"
    DUPLICATE_ACK = 1 << 6
    ZERO_WINDOW = 1 << 7
    ZERO_WINDOW_PROBE = 1 << 8
    ZERO_WINDOW_PROBE_ACK = 1 << 9
    KEEP_ALIVE = 1 << 10
    KEEP_ALIVE_ACK = 1 << 11
    WINDOW_FULL = 1 << 12
    WINDOW_UPDATE = 1 << 13
    REUSED_PORTS = 1 << 14


#: Names in engine bit order: the keys of a record's ``anomalies`` object.
NAMES: Final = tuple(str(a.name).lower() for a in Anomaly)

#: tshark's field for each flag (``tshark -T fields -e tcp.analysis.<field>``).
TSHARK_FIELDS: Final = {a: f"tcp.analysis.{name}" for a, name in zip(Anomaly, NAMES)}

#: Wireshark's Info column tags, used by ``handshake show``.
TAGS: Final = {
    Anomaly.RETRANSMISSION: "TCP Retransmission",
    Anomaly.FAST_RETRANSMISSION: "TCP Fast Retransmission",
    Anomaly.SPURIOUS_RETRANSMISSION: "TCP Spurious Retransmission",
    Anomaly.OUT_OF_ORDER: "TCP Out-Of-Order",
    Anomaly.LOST_SEGMENT: "TCP Previous segment not captured",
    Anomaly.ACK_LOST_SEGMENT: "TCP ACKed unseen segment",
    Anomaly.DUPLICATE_ACK: "TCP Dup ACK",
    Anomaly.ZERO_WINDOW: "TCP ZeroWindow",
    Anomaly.ZERO_WINDOW_PROBE: "TCP ZeroWindowProbe",
    Anomaly.ZERO_WINDOW_PROBE_ACK: "TCP ZeroWindowProbeAck",
    Anomaly.KEEP_ALIVE: "TCP Keep-Alive",
    Anomaly.KEEP_ALIVE_ACK: "TCP Keep-Alive ACK",
    Anomaly.WINDOW_FULL: "TCP Window Full",
    Anomaly.WINDOW_UPDATE: "TCP Window Update",
    Anomaly.REUSED_PORTS: "TCP Port numbers reused",
}


#: A fast or spurious retransmission also carries RETRANSMISSION (tshark's field), but
#: Wireshark's Info column names only the specific kind.
SPECIFIC_RETRANSMISSIONS: Final = Anomaly.FAST_RETRANSMISSION | Anomaly.SPURIOUS_RETRANSMISSION


def tags(bits: int, dup_ack_num: int = 0) -> list[str]:
    """Wireshark's Info-column tags for one packet, most telling first."""
    if bits & SPECIFIC_RETRANSMISSIONS:
        bits &= ~Anomaly.RETRANSMISSION
    out = []
    for flag in reversed(list(Anomaly)):
        if bits & flag:
            text = TAGS[flag]
            if flag is Anomaly.DUPLICATE_ACK and dup_ack_num:
                text += f" #{dup_ack_num}"
            out.append(f"[{text}]")
    return out


def counts(totals: tuple[int, ...]) -> dict[str, int]:
    """A connection's ``anomalies`` object: the non-zero totals by name, in bit order."""
    return {name: n for name, n in zip(NAMES, totals) if n}
