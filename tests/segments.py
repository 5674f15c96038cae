"""Hand-built TCP segments for the compiled tracker (no capture files).

``Wire`` feeds segments between a client and a server to one ``_engine.Engine``.
Times are integer milliseconds, so a state change at ``t`` ms shows in a record as
``t / 1000`` seconds exactly (records.secs rounds correctly, and so does ``t / 1000``).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from analyzer import _engine, fsm
from analyzer.results import Transition, engine_batch

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SA = SYN | ACK
FA = FIN | ACK
PA = PSH | ACK
RA = RST | ACK


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


class Wire:
    """A two-host conversation; ``c`` is the client endpoint, ``s`` the server."""

    def __init__(self, client: tuple[str, int] = ("10.0.0.1", 50000),
                 server: tuple[str, int] = ("10.0.0.2", 80), zeek_timers: bool = False) -> None:
        self.engine = _engine.Engine(fsm.table_bytes(), zeek_timers=zeek_timers)
        self.hosts = {"c": client, "s": server}
        self.finished = False

    def send(self, t_ms: int, who: str, flags: int, seq: int, ack: int = 0, length: int = 0,
             **options: Any) -> None:
        """One segment from ``who`` ("c" or "s") to the other host at ``t_ms``."""
        (src, sport), (dst, dport) = self.hosts[who], self.hosts["s" if who == "c" else "c"]
        self.engine.feed_segment(t_ms * 1_000_000, packed(src), packed(dst), sport, dport,
                                 flags, seq % 2**32, ack % 2**32, length, **options)

    def c(self, t_ms: int, flags: int, seq: int, ack: int = 0, length: int = 0,
          **options: Any) -> None:
        self.send(t_ms, "c", flags, seq, ack, length, **options)

    def s(self, t_ms: int, flags: int, seq: int, ack: int = 0, length: int = 0,
          **options: Any) -> None:
        self.send(t_ms, "s", flags, seq, ack, length, **options)

    def records(self) -> list[dict[str, Any]]:
        if not self.finished:
            self.engine.finish()
            self.finished = True
        return list(engine_batch(self.engine).records())

    def record(self, conn_id: int = 0) -> dict[str, Any]:
        recs = self.records()
        return recs[conn_id]

    def raw(self, conn_id: int = 0) -> Any:
        """The connection's columns by name (analyzer.results.ConnRow)."""
        self.records()
        return engine_batch(self.engine, conn_id, 1).row(0)

    def transitions(self, conn_id: int = 0) -> list[Transition]:
        self.records()
        return engine_batch(self.engine, conn_id, 1).transitions(0)


def names(states: list[list[Any]]) -> list[str]:
    return [name for _, name in states]


def sec(t_ms: int) -> float:
    """A Wire time as the record writes it."""
    return t_ms / 1000


def timeline(*changes: tuple[int, str]) -> list[list[Any]]:
    """``states`` entries from ``(t_ms, "STATE")`` pairs."""
    return [[sec(t), name] for t, name in changes]
