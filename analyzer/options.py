"""How a capture is read: one frozen value, and the tracker it configures.

Every reader (the native decoder, tshark through pyshark, a live capture) builds its
tracker here, so an option means the same everywhere and a capture can be read again
exactly as it was (analyzer.results.Results.reread).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from . import _engine
from . import records as _names  # noqa: F401  (hands the engine its name tables first)
from .errors import UsageError
from .fsm import table_bytes

ENGINES = ("native", "pyshark")

#: progress(bytes done, bytes in all, packets so far, connections so far)
ProgressFn = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class ReadOptions:
    """``port`` keeps only segments to or from that TCP port. ``verify_checksums`` drops
    segments with a bad TCP checksum from the state machines, as Zeek does without -C.
    ``zeek_timers`` also splits connections where Zeek's timers would have removed them.
    ``record`` keeps per-packet rows for one connection id (or every one with -2).
    ``engine``: ``native`` (the compiled decoder) or ``pyshark`` (tshark decodes).
    ``likely_server_ports``: Zeek's role rule for connections whose SYN was not seen.
    ``bpf``: a tcpdump filter on every frame (analyzer.bpf); ``count``: stop after that many
    frames passed it (tcpdump's -c)."""

    port: int | None = None
    verify_checksums: bool = False
    zeek_timers: bool = False
    record: int | None = None
    engine: str = "native"
    likely_server_ports: tuple[int, ...] | None = None
    bpf: str | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r} (known: {', '.join(ENGINES)})")

    @classmethod
    def make(cls, *, port: int | None = None, verify_checksums: bool = False,
             zeek_timers: bool = False, record: int | None = None, engine: str = "native",
             likely_server_ports: Collection[int] | None = None, bpf: str | None = None,
             count: int | None = None) -> ReadOptions:
        """From read()'s keywords (any collection of ports)."""
        return cls(port, verify_checksums, zeek_timers, record, engine,
                   None if likely_server_ports is None else tuple(sorted(likely_server_ports)),
                   bpf, count)

    def recording(self, record: int | None) -> ReadOptions:
        """The same options, keeping packet rows of ``record`` (-2: every connection)."""
        return replace(self, record=record)

    def new_engine(self) -> _engine.Engine:
        """A tracker with these options, fed by whichever decoder."""
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
                              count=self.count or 0)


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
