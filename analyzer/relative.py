"""Relative sequence numbers: the one rule ``handshake show``, the ladder, the
time-sequence graph and ``Capture.packets`` (``rel_seq``/``rel_ack``) all use.

Each side's sequence numbers count from a base: its ISN when the handshake gave it (so
the SYN is 0 and the first data byte 1, RFC 9293 section 3.4). A side whose SYN was not
captured gets the base Wireshark gives it, from whichever packet tells first: its own
first segment (seq - 1, as if a SYN had come just before) or the peer's first ACK
(ack - 1). Its first byte is then 1 as well, whichever way the capture started.
"""

from __future__ import annotations

from collections.abc import Iterable

SYN, ACK = 0x02, 0x10
MOD = 1 << 32


def seq_bases(client_isn: int | None, server_isn: int | None,
              packets: Iterable[tuple[bool, int, int, int]]) -> tuple[int | None, int | None]:
    """(client base, server base) of one connection, from its ISNs (None when the
    handshake did not give one) and its packets in capture order as ``(from_client,
    flags, seq, ack)``. Only packets up to the one that settles both bases are read. A
    base stays None only for a side nothing in the capture numbers."""
    base = [client_isn, server_isn]
    for from_client, flags, seq, ack in packets:
        if base[0] is not None and base[1] is not None:
            break
        me = 0 if from_client else 1
        if base[me] is None:
            base[me] = seq if flags & SYN else (seq - 1) % MOD
        if base[1 - me] is None and flags & ACK:
            base[1 - me] = (ack - 1) % MOD
    return base[0], base[1]


def relative(value: int, base: int | None) -> int | None:
    """``value`` counted from ``base``, modulo 2**32 (None without a base)."""
    return None if base is None else (value - base) % MOD
