"""Reading a capture: feed a source's bytes to the engine, keep the results.

``read(path)`` is the library entry point; the CLI and notebooks use the same call.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import _engine
from .errors import CaptureError, UsageError
from .fsm import table_bytes
from .records import RawConn, build_record
from .source import open_source

ProgressFn = Callable[[int, int], None]


@dataclass
class Capture:
    """Every TCP connection found in one capture file."""

    path: str
    engine: Any = field(repr=False)
    stats: dict[str, int]
    warnings: list[str]
    error: CaptureError | None = None  # reading stopped here; what came before is kept

    def __len__(self) -> int:
        return int(self.engine.conn_count())

    def raw(self, conn_id: int) -> RawConn:
        return RawConn._make(self.engine.conn(conn_id))

    def record(self, conn_id: int) -> dict[str, Any]:
        if not 0 <= conn_id < len(self):
            raise UsageError(f"{self.path}: no connection {conn_id} "
                             f"(the file has {len(self)}: ids 0 to {len(self) - 1})")
        return build_record(self.raw(conn_id), self.engine.transitions(conn_id))

    def records(self) -> Iterator[dict[str, Any]]:
        conn, transitions = self.engine.conn, self.engine.transitions
        for i in range(len(self)):
            yield build_record(RawConn._make(conn(i)), transitions(i))

    def packet_rows(self) -> list[tuple[Any, ...]]:
        """Rows recorded with ``record=``: one per TCP packet (see Engine.rows)."""
        return list(self.engine.rows())


def read(path: str, *, port: int | None = None, verify_checksums: bool = False,
         zeek_timers: bool = False, record: int | None = None,
         progress: ProgressFn | None = None) -> Capture:
    """Analyse one capture file.

    ``port`` keeps only segments to or from that TCP port. ``verify_checksums`` drops
    segments with a bad TCP checksum from the state machines, as Zeek does without -C.
    ``zeek_timers`` also splits connections where Zeek's timers would have removed them.
    ``record`` keeps per-packet rows for one connection id (or every one with -2).
    A corrupt record stops the reading: the Capture keeps everything before it and says
    where it stopped in ``error``. A file cut short only adds a warning.
    """
    source = open_source(path)
    engine = _engine.Engine(table_bytes(), verify_checksums=verify_checksums,
                            port=-1 if port is None else port,
                            record=-1 if record is None else record, zeek_timers=zeek_timers)
    warnings: list[str] = []
    error: CaptureError | None = None
    pending = b""
    for chunk in source.chunks():
        data = pending + chunk.data if pending else chunk.data
        try:
            used = engine.feed(data)
        except _engine.FormatError as exc:
            error = _format_error(path, exc)
            break
        pending = data[used:]
        if progress:
            progress(chunk.position, source.size)
    else:
        # End of input: feed the rest until nothing more is framed.
        while pending:
            try:
                used = engine.feed(pending)
            except _engine.FormatError as exc:
                error = _format_error(path, exc)
                break
            if used == 0:
                break
            pending = pending[used:]
    if error is None and source.read_error is not None:
        error = source.read_error
    stats = engine.stats()
    if error is None and (pending or source.truncated_stream):
        warnings.append(f"{path}: truncated at byte {stats['bytes_framed']} after packet "
                        f"{stats['packets_framed']}")
    engine.finish()
    return Capture(path=path, engine=engine, stats=engine.stats(), warnings=warnings,
                   error=error)


def _format_error(path: str, exc: Exception) -> CaptureError:
    message, offset, packets = exc.args
    return CaptureError(path, message, offset=offset, packet=packets)


class TerminalProgress:
    """``reading FILE: 42% 180 MB/s`` on stderr, redrawn at most every half second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9) / 1e6
        pct = 100 * done // total if total else 0
        sys.stderr.write(f"\rreading {self.path}: {pct:3d}% {rate:6.0f} MB/s")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
