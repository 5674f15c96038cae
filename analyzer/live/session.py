"""``LiveSession``: capture packets in a background thread and track them with the same
engine as ``handshake read``. The CLI's ``sniff`` and ``demo`` and the notebooks use it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from .. import _engine
from ..errors import UsageError
from ..options import ReadOptions, capture_stats
from ..results import Results
from .events import EventDeriver, final_events
from .sources import ReplaySource, Source, make_source

POLL = 0.05  # seconds a read waits, so stop() and --duration are noticed quickly


class LiveSession:
    """A live capture on one interface, tracked as it arrives.

    >>> s = LiveSession("lo", port=9502, write="out.pcap", duration=10)
    >>> s.start()            # returns at once; packets are captured in a thread
    >>> for ev in s.events(): ...   # new events since the last call
    >>> s.stop(); s.wait()   # out.pcap holds exactly the packets seen
    >>> records = list(s.capture.records())

    ``iface`` is an interface name or ``"any"``. ``port`` captures ``tcp port N``;
    ``bpf`` is any capture filter (default ``tcp``). ``write`` saves exactly the packets
    seen as a pcap (pcapng with dumpcap) file, valid at every moment and after any stop.
    ``count`` and ``duration`` (seconds) end the capture by themselves. ``engine`` is
    ``default`` (tcpdump, or dumpcap without it), ``tcpdump``, ``dumpcap``, ``scapy``
    or ``pyshark``. ``replay`` plays a capture file at its own pace instead of capturing
    (for the demo without privileges), ``replay_speed`` times faster than recorded.

    ``capture`` is an :class:`analyzer.capture.Capture` whose engine fills as packets
    arrive. Hold ``lock`` while reading it during the capture: the capture thread feeds
    the engine under the same lock. After ``wait()`` returns, every connection is
    finished (close kind and Zeek conn_state classified) and the records are the same
    as ``handshake read`` of the saved file.
    """

    def __init__(self, iface: str = "any", *, port: int | None = None, bpf: str | None = None,
                 write: str | None = None, count: int | None = None,
                 duration: float | None = None, engine: str = "default",
                 replay: str | None = None, replay_speed: float = 1.0,
                 keep_events: int = 100_000,
                 results: Callable[..., Results] = Results) -> None:
        if port is not None and bpf is not None:
            raise UsageError("give a port or a capture filter, not both")
        self.iface = iface
        self.bpf = f"tcp port {port}" if port is not None else (bpf or "tcp")
        self.write = write
        self.count = count
        self.duration = duration
        self.engine_name = engine
        self.replay = replay
        self.replay_speed = replay_speed
        self.lock = threading.Lock()
        # What fills as packets arrive: Results, or the notebook's Capture (``results``
        # makes it; this layer does not import the one above it).
        self.capture = results(path=write or replay or f"live:{iface}",
                               engine=ReadOptions().new_engine(), stats={}, warnings=[])
        self.error: str | None = None  # why the capture ended early, if it did
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._events: deque[dict[str, Any]] = deque(maxlen=keep_events)
        self._events_lost = 0
        self._deriver = EventDeriver()
        self._source: Source | None = None
        self._out: IO[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._bytes_written = 0

    # ---- control -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the output file and the source (errors are raised here, one line each),
        then capture in a background thread; returns at once."""
        if self._thread is not None:
            raise UsageError("this session was already started")
        if self.write:
            try:
                self._out = open(self.write, "wb")  # noqa: SIM115 - closed by the thread
            except OSError as exc:
                raise UsageError(f"{self.write}: cannot write: {exc.strerror or exc}") from None
        try:
            self._source = ReplaySource(self.replay, self.replay_speed) if self.replay else \
                make_source(self.engine_name, self.iface, self.bpf, self.count)
            self._source.start()
        except BaseException:
            if self._out:
                self._out.close()
            raise
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="handshake-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the capture to end; the packets already seen are kept and the file stays
        valid. Returns at once; ``wait()`` for the end."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the capture to end; True if it has."""
        return self._done.wait(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    # ---- results -----------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """The events since the last call (see analyzer.live.events), oldest first."""
        with self.lock:
            out = list(self._events)
            self._events.clear()
        return out

    def stats(self) -> dict[str, Any]:
        """Packets seen, TCP segments, connections, kernel drops (known at the end for
        tcpdump/dumpcap), bytes written, events not fetched in time."""
        with self.lock:
            st = self.capture.engine.stats()
        source = self._source
        return {"engine": source.name if source else self.engine_name,
                "packets": st["packets_framed"], "tcp": st["tcp"],
                "connections": st["connections"],
                "kernel_drops": source.kernel_drops if source else None,
                "bytes_written": self._bytes_written, "events_lost": self._events_lost,
                "seconds": (self.ended_at or time.time()) - (self.started_at or time.time()),
                "error": self.error}

    # ---- the capture thread ------------------------------------------------------------

    def _run(self) -> None:
        assert self._source is not None
        source, engine = self._source, self.capture.engine
        deadline = None if self.duration is None else time.monotonic() + self.duration
        pending = b""
        stopping = False
        try:
            while True:
                if not stopping and (self._stop.is_set() or (
                        deadline is not None and time.monotonic() >= deadline)):
                    source.stop()
                    stopping = True
                data = source.read(POLL)
                if data is None:
                    break
                if not data:
                    continue
                buf = pending + data if pending else data
                with self.lock:
                    try:
                        used = engine.feed(buf)
                    except _engine.FormatError as exc:
                        self.error = f"{source.name} stream: {exc.args[0]}"
                        used = 0
                    self._keep(self._deriver.derive(engine, engine.drain_transitions()))
                self._save(buf[:used])
                pending = buf[used:]
                if self.error:
                    source.stop()
                    break
                if self.count and engine.stats()["packets_framed"] >= self.count:
                    source.stop()
                    stopping = True
        except Exception as exc:  # noqa: BLE001 - kept for the caller, the file stays valid
            self.error = f"capture stopped: {exc}"
            source.stop()
        finally:
            if source.ended_by and not self.error:
                self.error = source.ended_by
            with self.lock:
                engine.finish()
                self._keep(self._deriver.derive(engine, engine.drain_transitions()))
                self._keep(final_events(engine))
                self.capture.stats = capture_stats(engine)
            if self._out:
                self._out.close()
            self.ended_at = time.time()
            self._done.set()

    def _keep(self, events: list[dict[str, Any]]) -> None:
        room = (self._events.maxlen or 0) - len(self._events)
        self._events_lost += max(0, len(events) - room)
        self._events.extend(events)

    def _save(self, data: bytes) -> None:
        """Write exactly the framed bytes: the file never holds half a packet."""
        if self._out and data:
            self._out.write(data)
            self._out.flush()
            self._bytes_written += len(data)
