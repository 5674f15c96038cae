"""Live capture: ``handshake sniff`` and ``handshake demo``, and the library class
:class:`LiveSession` they (and the notebooks) use.

Packets come from a source (tcpdump by default, or dumpcap, scapy, pyshark) as a pcap
byte stream and go to the same compiled engine as ``handshake read``; the events
(state changes, handshakes, closes) are derived from its transitions.

Nothing is imported here until it is used, so ``handshake --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["LiveSession"]

if TYPE_CHECKING:
    from .session import LiveSession


def __getattr__(name: str) -> Any:
    if name == "LiveSession":
        from .session import LiveSession

        return LiveSession
    raise AttributeError(f"module 'analyzer.live' has no attribute {name!r}")
