"""One progress line on stderr for a whole ``handshake read`` job, whatever reads it.

Files read one after the other, merged, in parallel processes (``-j``) or on a Dask
cluster all report to one :class:`Bar`: bytes done of the bytes of every input, packets
per second and connections so far. Nothing is drawn when stderr is not a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from .words import plural

REDRAW = 0.25  # seconds between redraws: fast enough to look alive, cheap to draw


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _count(n: float) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e4 else f"{n:.0f}"


class Bar:
    """``3 files  45.2 MB / 120.0 MB  38%  1.21 M packets/s  12,345 connections``.

    ``update(key, bytes_done, packets, connections)`` takes one input's (or one merged
    read's) running totals; the bar shows their sums. Thread-safe: a parallel job
    updates it from the thread that collects its workers' reports.
    """

    def __init__(self, total_bytes: int, inputs: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = total_bytes
        self.inputs = inputs
        self.parts: dict[object, tuple[int, int, int]] = {}
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False
        self.paused = False  # inside hidden(): output is being written, nothing is drawn
        self.lock = threading.Lock()

    def update(self, key: object, bytes_done: int, packets: int, connections: int) -> None:
        with self.lock:
            self.parts[key] = (bytes_done, packets, connections)
            now = time.monotonic()
            if self.enabled and not self.paused and now - self.last >= REDRAW:
                self.last = now
                self._draw(now)

    def progress_fn(self, key: object) -> _Reporter:
        """A ``read(progress=...)`` callback reporting as input ``key``."""
        return _Reporter(self, key)

    def line(self, now: float | None = None) -> str:
        done = sum(p[0] for p in self.parts.values())
        packets = sum(p[1] for p in self.parts.values())
        conns = sum(p[2] for p in self.parts.values())
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        pct = 100 * done // self.total if self.total else 100
        what = f"{self.inputs} files" if self.inputs != 1 else "1 file"
        return (f"{what}  {_size(done)} / {_size(self.total)}  {pct:3d}%  "
                f"{_count(packets / elapsed)} packets/s  {plural(conns, 'connection')}")

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()
        self.shown = True

    @contextmanager
    def hidden(self) -> Iterator[None]:
        """The line off the terminal while output goes to the same terminal; drawn
        again (below that output) at the next update after it."""
        with self.lock:
            self._clear()
            was, self.paused = self.paused, True
        try:
            yield
        finally:
            with self.lock:
                self.paused = was
                self.last = 0.0

    def resume(self) -> None:
        """Inside hidden(): the line may be drawn again until pause() (a streamed read
        reads its next chunk between two writes)."""
        with self.lock:
            self.paused = False

    def pause(self) -> None:
        """The line off the terminal again, before more output goes on."""
        with self.lock:
            self._clear()
            self.paused = True

    def _clear(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.shown = False

    def close(self) -> None:
        """The final figures, then the line is cleared for the output that follows."""
        with self.lock:
            if not self.enabled or not self.parts:
                return
            self._draw(time.monotonic())
            self.stream.write("\r\033[K")
            self.stream.flush()


class _Reporter:
    def __init__(self, bar: Bar, key: object) -> None:
        self.bar, self.key = bar, key

    def __call__(self, done: int, total: int, packets: int, connections: int) -> None:
        self.bar.update(self.key, done, packets, connections)
