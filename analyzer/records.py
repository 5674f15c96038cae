"""The names of a connection record's coded values, shared with the engine.

The engine fills codes (csrc/columns.c); these tuples name them, in code order, for
every output. They are handed to the engine once (``_engine.set_names``), so its text
writers and Python read one list, not two. A record itself is built by
analyzer.results (``ConnBatch.records``) from the engine's columns.
"""

from __future__ import annotations

from typing import Final

from .anomalies import NAMES as ANOMALY_NAMES
from .fsm import Input, TcpState

CONN_STATES: Final = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH",
                      "SH", "SHR", "OTH")
CLOSE_KINDS: Final = ("open", "four_way", "three_way", "simultaneous", "reset", "refused",
                      "unanswered", "incomplete")
WHO: Final = (None, "client", "server", "both")
STATE_NAMES: Final = tuple(s.name for s in TcpState)
INPUT_NAMES: Final = tuple(i.name for i in Input)
HOW: Final = ("normal", "inferred", "unexpected")  # a transition's "how" codes 0, 1, 2


def _share_names() -> None:
    from . import _engine

    _engine.set_names(STATE_NAMES, INPUT_NAMES, CONN_STATES, CLOSE_KINDS, ANOMALY_NAMES)


_share_names()


def secs(ns: int) -> float:
    """Nanoseconds as seconds, correctly rounded: int / int true division rounds once
    (``ns / 1e9`` would round twice for epoch-sized values, moving timestamps by a few
    hundred nanoseconds)."""
    return ns / 1_000_000_000


def state_name(code: int) -> str | None:
    """A TcpState code's name; None for -1 (an endpoint not seen)."""
    return STATE_NAMES[code] if 0 <= code < len(STATE_NAMES) else None
