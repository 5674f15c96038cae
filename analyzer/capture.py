"""The top layer: ``read(path)`` and the Capture users hold in a notebook.

``read`` is the library entry point (the CLI uses the same call); it reads through
analyzer.results and wraps the Results in a Capture, which adds the conveniences
(DataFrames, ``capture[i]``, HTML, exports). Nothing below this layer imports it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .options import ProgressFn, ReadOptions
from .results import Results, Stream, read_file, read_merged, stream_file

if TYPE_CHECKING:
    import pandas as pd

    from .connection import Connection

__all__ = ["Capture", "ProgressFn", "TerminalProgress", "read", "stream"]


@dataclass
class Capture(Results):
    """Every TCP connection found in one capture file, with the conveniences of a
    notebook: DataFrames, connection objects, HTML, exports. The data and the engine
    are the results model's (analyzer.results.Results); this layer only adds methods
    and is imported by nothing in the package but the entry points."""

    # The live capture filling this one (analyzer.sniff(background=True)), else None.
    live: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, res: Results) -> Capture:
        return cls(res.path, res.engine, res.stats, res.warnings, res.error, res.options,
                   spool=res.spool, selected=res.selected, merged=res.merged)

    @property
    def running(self) -> bool:
        """True while a live capture is still filling this Capture."""
        return bool(self.live is not None and self.live.running)

    def stop(self) -> None:
        """Stop the live capture filling this Capture; the saved pcap stays valid. A
        Capture read from a file is complete already: nothing to stop."""
        if self.live is not None:
            self.live.stop()
            self.live.wait()

    # Exploration (notebooks): pandas is imported by these, never by ``import analyzer``.

    @property
    def connections(self) -> pd.DataFrame:
        """One row per connection, the jsonl fields as typed columns (analyzer.frames)."""
        from .frames import connections_frame

        return self._cached("connections", connections_frame)

    @property
    def packets(self) -> pd.DataFrame:
        """One row per TCP packet with both endpoints' states after it (analyzer.frames).
        A capture read without ``record=-2`` reads its file again to get the rows."""
        from .frames import packets_frame

        return self._cached("packets",
                            lambda cap: packets_frame(cap, columns=cap._all_packet_columns()))

    @property
    def transitions(self) -> pd.DataFrame:
        """Every endpoint state change of every connection (analyzer.frames)."""
        from .frames import transitions_frame

        return self._cached("transitions", transitions_frame)

    def __getitem__(self, conn_id: int) -> Connection:
        from .connection import Connection

        self.check_id(conn_id)  # a clear error for an unknown id
        return Connection(self, conn_id)

    def __iter__(self) -> Iterator[Connection]:
        return (self[i] for i in range(len(self)))

    def _repr_html_(self) -> str:
        from .notebook import capture_html

        return capture_html(self)

    def to_parquet(self, directory: str) -> list[str]:
        """connections.parquet, packets.parquet and transitions.parquet in ``directory``
        (for DuckDB, Spark, pandas); returns the paths written."""
        from .notebook import export_parquet

        return export_parquet(self, directory)

    def to_json(self, path: str) -> None:
        """The ``handshake read --format jsonl`` lines, one connection per line."""
        from .formats import write_jsonl

        with open(path, "w", encoding="utf-8") as out:
            write_jsonl([self], out)

    def to_zeek(self, path: str) -> None:
        """A Zeek ``conn.log`` (as ``--format zeek``), for zeek-cut and Zeek tools."""
        from .formats import write_zeek

        with open(path, "w", encoding="utf-8") as out:
            write_zeek([self], out)

    def _all_packet_columns(self) -> dict[str, Any]:
        from .columns import row_columns

        if self.options.record == -2:
            return row_columns(self.engine)
        return row_columns(self.reread(-2).engine)

    def _cached(self, name: str, build: Callable[[Capture], Any]) -> Any:
        # Keyed on what the engine has seen, so a live capture that fills gets new frames;
        # ``stats`` is set once reading is finished (connections classified).
        key = (name, len(self), self.engine.stats().get("tcp"), tuple(self.stats.items()))
        cache = self.__dict__.setdefault("_frames", {})
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[key] = build(self)
        return cache[key]


def read(path: str | os.PathLike[str] | Sequence[str], *, port: int | None = None,
         verify_checksums: bool = False, zeek_timers: bool = False, record: int | None = None,
         progress: ProgressFn | None = None, engine: str = "native",
         likely_server_ports: Collection[int] | None = None, merge: bool = False,
         bpf: str | None = None, count: int | None = None,
         state: str | Collection[str] | None = None,
         close: str | Collection[str] | None = None, where: str | None = None,
         idle_timeout: float | None = None) -> Capture:
    """Analyse one capture file, or with ``merge=True`` several files as one capture in
    time order, as mergecap merges them (rotated captures: analyzer.merge).

    Filters, as ``handshake read``: ``bpf`` is a tcpdump filter (``"host 10.0.0.1 and
    tcp port 443"``, compiled by libpcap: analyzer.bpf) applied to every frame, ``count``
    stops after that many frames that pass it (tcpdump's ``-c``); packet numbers stay
    those of the file. ``state`` (Zeek conn_state values), ``close`` (close kinds) and
    ``where`` (a condition over record fields: analyzer.filters) choose the connections
    ``records()``, the writers and the DataFrames report; ``Capture.ids()`` lists them.

    ``port`` keeps only segments to or from that TCP port. ``verify_checksums`` drops
    segments with a bad TCP checksum from the state machines, as Zeek does without -C.
    ``zeek_timers`` splits connections where Zeek would (its timers, a repeated SYN after
    a close); by default only a SYN with a new ISN starts a new connection on a 4-tuple.
    ``record`` keeps per-packet rows for one connection id (or every one with -2).
    A corrupt record stops the reading: the Capture keeps everything before it and says
    where it stopped in ``error``. A file cut short only adds a warning.
    ``engine="native"`` is the compiled engine; ``engine="pyshark"`` lets tshark decode
    the packets (tunnels, other link types) for the same tracker (analyzer.engines).
    ``likely_server_ports`` switches to Zeek's exact rule for connections whose SYN was
    not seen (the sender of a SYN-ACK or of a first non-SYN packet is the server only
    when its port is in the set, as in Zeek's ``likely_server_ports``, which depends on
    the scripts Zeek loaded); by default a SYN-ACK sender is always the server.
    ``idle_timeout`` (seconds) ends an open connection quiet longer than that: a later
    packet of its 4-tuple starts a new connection (by default an open connection never
    ends: TCP has no idle timeout; a closed one ends 60 s after its last packet, an
    unanswered handshake after 180 s, as ``analyzer.stream`` writes them out).
    The options are kept as one frozen value, ``Capture.options`` (ReadOptions).
    """
    from .filters import ConnFilter

    conn_filter = ConnFilter.make(state, close, where)  # bad values fail before reading
    if isinstance(path, os.PathLike):  # one file given as a Path (notebooks do)
        path = os.fspath(path)
    options = ReadOptions.make(port=port, verify_checksums=verify_checksums,
                               zeek_timers=zeek_timers, record=record, engine=engine,
                               likely_server_ports=likely_server_ports, bpf=bpf, count=count,
                               idle_timeout=idle_timeout)
    if engine == "pyshark" and (bpf is not None or count is not None):
        raise UsageError("a BPF filter (-f) and -c need the native engine; tshark's own "
                         "-Y/-c do this for --engine pyshark")
    if not isinstance(path, str):
        paths = list(path)
        if merge and len(paths) > 1:
            if engine != "native":
                raise UsageError("merging files needs the native engine")
            cap = Capture.of(read_merged(paths, options, progress))
        elif len(paths) != 1:
            raise UsageError(f"{len(paths)} files: read(paths, merge=True) reads them as one "
                             "capture; read each file on its own otherwise")
        else:
            cap = Capture.of(read_file(paths[0], options, progress))
    else:
        cap = Capture.of(read_file(path, options, progress))
    if conn_filter is not None:
        cap.selected = conn_filter.select(cap)
    return cap


def stream(path: str | os.PathLike[str], *, order: str = "id", port: int | None = None,
           verify_checksums: bool = False, zeek_timers: bool = False,
           likely_server_ports: Collection[int] | None = None, bpf: str | None = None,
           count: int | None = None, idle_timeout: float | None = None,
           state: str | Collection[str] | None = None,
           close: str | Collection[str] | None = None, where: str | None = None,
           progress: ProgressFn | None = None) -> Stream:
    """Read one capture file (or pipe, ``-``) as a stream of batches of connections
    (analyzer.results.ConnBatch: ``.records()``, ``.render("jsonl")``, ``.numpy(name)``),
    for files bigger than memory: each connection is written out once it is over (closed
    and quiet 60 s, an unanswered handshake quiet 180 s, open and quiet ``idle_timeout``
    seconds) and its memory reused. ``order="id"`` gives the connections in id order (as
    ``read``: the same ids, the same records), ``order="end"`` in the order they end, as
    Zeek's conn.log (memory then bounded by the connections open at one moment; in id
    order by those since the oldest still open). The other keywords are ``read``'s; the
    connection filters apply to each batch. After the last batch, ``.stats``,
    ``.warnings`` and ``.error`` are what ``read`` gives (a corrupt record ends the
    stream after every connection before it)::

        s = analyzer.stream("big.pcap", order="end")
        for batch in s:
            for rec in batch.records():
                ...
        s.error, s.warnings
    """
    from .filters import ConnFilter

    conn_filter = ConnFilter.make(state, close, where)  # bad values fail before reading
    options = ReadOptions.make(port=port, verify_checksums=verify_checksums,
                               zeek_timers=zeek_timers,
                               likely_server_ports=likely_server_ports, bpf=bpf, count=count,
                               idle_timeout=idle_timeout)
    return stream_file(os.fspath(path), options, progress, order,
                       None if conn_filter is None else conn_filter.keep)


def sniff(iface: str = "any", port: int | None = 9502, duration: float | None = None,
          count: int | None = None, *, bpf: str | None = None, write: str | None = None,
          refresh: float = 0.5, display: bool = True,
          on_start: Callable[[], object] | None = None, background: bool = False) -> Capture:
    """Capture live TCP traffic from a notebook cell; returns the Capture.

    Runs until ``duration`` seconds pass or ``count`` packets are seen, or until the cell
    is stopped (Jupyter's interrupt, Ctrl-C): the capture is then stopped cleanly and
    what was seen so far is returned. Meanwhile a display handle shows the counts every
    ``refresh`` seconds. The packets are saved to ``write`` (a temporary pcap file when
    not given), which the packet table and the plots read. Needs the rights to capture
    (root, or tcpdump with CAP_NET_RAW and CAP_NET_ADMIN, see the README).
    ``on_start`` is called once the capture is running (e.g. to start a client thread).

    With ``background=True`` the call returns at once: the Capture fills as packets
    arrive (its tables and ``len()`` grow; ``capture.running`` says whether it still
    does), the display keeps refreshing from a thread, and ``capture.stop()`` ends it.
    """
    import atexit
    import shutil
    import tempfile
    import threading

    from .live import LiveSession
    from .notebook import _in_ipython, _LiveView, _refresh_until_done

    if write is None:  # kept while the kernel runs: the packet table and plots read it
        scratch = tempfile.mkdtemp(prefix="handshake-sniff-")
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        write = os.path.join(scratch, "sniff.pcap")
    session = LiveSession(iface, port=port, bpf=bpf, write=write, count=count,
                          duration=duration, results=Capture)
    title = f"live capture on {iface}" + (f", port {port}" if port is not None else "")
    view = _LiveView(session, title) if display and _in_ipython() else None
    session.start()  # returns once the capture tool is listening
    cap = session.capture
    assert isinstance(cap, Capture)
    cap.live = session
    if background:
        if on_start is not None:
            on_start()
        if view:
            threading.Thread(target=_refresh_until_done, args=(session, view, refresh),
                             daemon=True).start()
        return cap
    status = "finished"
    try:
        if on_start is not None:
            on_start()
        while session.running:
            time.sleep(refresh)
            if view:
                view.update("capturing")
    except KeyboardInterrupt:  # the cell was stopped: stop capturing, keep the results
        status = "stopped"
    finally:
        session.stop()
        session.wait()
    if view:
        view.update(status)
    return cap


class TerminalProgress:
    """``reading FILE: 42% 180 MB/s`` on stderr, redrawn at most every half second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int, packets: int = 0, connections: int = 0
                 ) -> None:
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
