"""How a capture is read: one frozen value, and the tracker it configures.

Every reader (the native decoder, tshark through pyshark, a live capture) builds its
tracker here, so an option means the same everywhere and a capture can be read again
exactly as it was (analyzer.results.Results.reread).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from . import _engine
from . import records as _names  # noqa: F401  (hands the engine its name tables first)
from .errors import UsageError
from .fsm import table_bytes

ENGINES = ("native", "pyshark")

#: progress(bytes done, bytes in all, packets so far, connections so far)
ProgressFn = Callable[[int, int, int, int], None]
#: Idle timeouts from this many seconds on are refused (the engine counts nanoseconds in
#: 64 bits; 2^62 ns is 146 years).
MAX_IDLE = 2 ** 62 / 1e9


@dataclass(frozen=True)
class ReadOptions:
    """``port`` keeps only segments to or from that TCP port. ``verify_checksums`` drops
    segments with a bad TCP checksum from the state machines, as Zeek does without -C.
    ``zeek_timers`` also splits connections where Zeek's timers would have removed them.
    ``record`` keeps per-packet rows for one connection id (or every one with -2).
    ``engine``: ``native`` (the compiled decoder) or ``pyshark`` (tshark decodes).
    ``likely_server_ports``: Zeek's role rule for connections whose SYN was not seen.
    ``bpf``: a tcpdump filter on every frame (analyzer.bpf); ``count``: stop after that many
    frames passed it (tcpdump's -c). ``idle_timeout`` (seconds): an open connection quiet
    longer than this is over, and a later packet of its 4-tuple starts a new one (also
    shortens the 60 s linger after a close and the 180 s given to a handshake attempt);
    None: never, TCP has no idle timeout (RFC 9293 3.8.4)."""

    port: int | None = None
    verify_checksums: bool = False
    zeek_timers: bool = False
    record: int | None = None
    engine: str = "native"
    likely_server_ports: tuple[int, ...] | None = None
    bpf: str | None = None
    count: int | None = None
    idle_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r} (known: {', '.join(ENGINES)})")
        if self.idle_timeout is not None:
            t = self.idle_timeout
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                    or not 0 < t < MAX_IDLE:
                raise UsageError(f"idle timeout {t!r}: give a number of seconds > 0 and below "
                                 f"{MAX_IDLE:.0f} (or none: never)")
            if self.zeek_timers:
                raise UsageError("an idle timeout and Zeek's timers: Zeek's timers have "
                                 "their own (tcp_inactivity_timeout, 5 minutes); give one")

    @classmethod
    def make(cls, *, port: int | None = None, verify_checksums: bool = False,
             zeek_timers: bool = False, record: int | None = None, engine: str = "native",
             likely_server_ports: Collection[int] | None = None, bpf: str | None = None,
             count: int | None = None, idle_timeout: float | None = None) -> ReadOptions:
        """From read()'s keywords (any collection of ports)."""
        return cls(port, verify_checksums, zeek_timers, record, engine,
                   None if likely_server_ports is None else tuple(sorted(likely_server_ports)),
                   bpf, count, idle_timeout)

    def recording(self, record: int | None) -> ReadOptions:
        """The same options, keeping packet rows of ``record`` (-2: every connection)."""
        return replace(self, record=record)

    @property
    def idle_ns(self) -> int:
        """The idle timeout as the engine takes it: nanoseconds, 0 for never."""
        if self.idle_timeout is None:
            return 0
        return max(1, math.ceil(self.idle_timeout * 1e9))

    def new_engine(self, stream: bool = False, order_end: bool = False) -> _engine.Engine:
        """A tracker with these options, fed by whichever decoder. ``stream``: it writes
        each connection out once it is over (Engine.take) and reuses its memory, in id
        order or, with ``order_end``, in the order they end."""
        programs = None
        if self.bpf is not None:
            from .bpf import compile_filter

            programs = compile_filter(self.bpf)
        return _engine.Engine(table_bytes(), verify_checksums=self.verify_checksums,
                              port=-1 if self.port is None else self.port,
                              record=-1 if self.record is None else self.record,
                              zeek_timers=self.zeek_timers,
                              likely_server_ports=None if self.likely_server_ports is None
                              else list(self.likely_server_ports), bpf=programs,
                              count=self.count or 0, stream=stream, order_end=order_end,
                              idle_ns=self.idle_ns)


#: Engine counters about how the connections were held (a streamed read writes them out,
#: an in-memory one keeps them), not about the capture: left out of the stats, so that
#: every read of a file reports the same. ``time_back_late`` is a streamed read's first
#: packet that went back in time further than any before once connections were written
#: out (results.Stream turns it into a warning).
HOLDING_COUNTERS = ("open", "written", "time_back_late")


def capture_stats(tracker: _engine.Engine) -> dict[str, int]:
    """The tracker's counters about the capture (all but HOLDING_COUNTERS)."""
    return {k: v for k, v in tracker.stats().items() if k not in HOLDING_COUNTERS}


def time_warnings(path: str, stats: dict[str, int]) -> list[str]:
    """The warning for packet times outside the engine's range (0 .. 2^62 ns after the
    epoch), which it clamps to the nearer end, as both engines do (engine.h, ts_clamp)."""
    n = stats.get("ts_clamped", 0)
    if not n:
        return []
    plural = "s" if n > 1 else ""
    message = (f"{path}: {n} packet time{plural} outside 1970-01-01..2116-02-20 (first: "
               f"packet {stats['ts_clamped_first']}), clamped to that range")
    return [message]
