"""handshake-analyzer: every TCP connection in a capture, its handshake, its close, and
both endpoints' RFC 9293 states.

    >>> import analyzer
    >>> cap = analyzer.read("captures/echo-lo.pcap")
    >>> next(cap.records())["close"]["kind"]

Nothing heavy is imported here: ``handshake --help`` must stay instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Capture", "CaptureError", "Connection", "HandshakeError", "TcpState", "read",
           "sniff", "stream"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .capture import Capture, read, sniff, stream
    from .connection import Connection
    from .errors import CaptureError, HandshakeError
    from .fsm import TcpState


def __getattr__(name: str) -> Any:
    if name in ("Capture", "read", "stream"):
        from . import capture

        return getattr(capture, name)
    if name in ("CaptureError", "HandshakeError"):
        from . import errors

        return getattr(errors, name)
    if name == "Connection":
        from .connection import Connection

        return Connection
    if name == "sniff":  # live capture from a notebook (analyzer.notebook)
        from .capture import sniff

        return sniff
    if name == "TcpState":
        from .fsm import TcpState

        return TcpState
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
