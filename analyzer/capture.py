"""Reading a capture: feed a source's bytes to the engine, keep the results.

``read(path)`` is the library entry point; the CLI and notebooks use the same call.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _engine
from .errors import CaptureError, UsageError
from .fsm import table_bytes
from .records import RawConn, build_record
from .source import open_source

if TYPE_CHECKING:
    import pandas as pd

    from .connection import Connection
    from .merge import MergedFiles

#: progress(bytes done, bytes in all, packets so far, connections so far)
ProgressFn = Callable[[int, int, int, int], None]


@dataclass
class Capture:
    """Every TCP connection found in one capture file."""

    path: str
    engine: Any = field(repr=False)
    stats: dict[str, int]
    warnings: list[str]
    error: CaptureError | None = None  # reading stopped here; what came before is kept
    # How read() was called, so the packet table can be rebuilt from the same file.
    options: dict[str, Any] = field(default_factory=dict, repr=False)
    # The live capture filling this one (analyzer.sniff(background=True)), else None.
    live: Any = field(default=None, repr=False)
    # The connections the filters kept (read(state=, close=, where=)), None for all.
    selected: list[int] | None = field(default=None, repr=False)
    # A copy of a non-seekable input (a pipe, ``-``) to read again (source.Spool), else None.
    spool: Any = field(default=None, repr=False)
    # Several files read as one (read(paths, merge=True)): the files and where each
    # packet number came from (analyzer.merge); ``path`` is then the files joined by "+".
    merged: MergedFiles | None = field(default=None, repr=False)

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

    def __len__(self) -> int:
        return int(self.engine.conn_count())

    def raw(self, conn_id: int) -> RawConn:
        return RawConn._make(self.engine.conn(conn_id))

    def record(self, conn_id: int) -> dict[str, Any]:
        if not 0 <= conn_id < len(self):
            raise UsageError(f"{self.path}: no connection {conn_id} "
                             f"(the file has {len(self)}: ids 0 to {len(self) - 1})")
        return build_record(self.raw(conn_id), self.engine.transitions(conn_id))

    def ids(self) -> list[int] | range:
        """The ids of the connections reported: those the connection filters kept (ids
        are the file's, so ``handshake show FILE ID`` finds them), or every one."""
        return range(len(self)) if self.selected is None else self.selected

    def records(self) -> Iterator[dict[str, Any]]:
        conn, transitions = self.engine.conn, self.engine.transitions
        for i in self.ids():
            yield build_record(RawConn._make(conn(i)), transitions(i))

    def packet_rows(self) -> list[tuple[Any, ...]]:
        """Rows recorded with ``record=``: one per TCP packet (see Engine.rows)."""
        return list(self.engine.rows())

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

        self.record(conn_id)  # a clear error for an unknown id
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

    def reread(self, record: int) -> Capture:
        """The same file read again with the same options, keeping packet rows of
        connection ``record`` (or of every one with -2)."""
        options = {k: v for k, v in self.options.items() if k != "record"}
        if self.merged is not None:
            return read(self.merged.files, record=record, **options)
        if self.spool is None:
            return read(self.path, record=record, **options)
        again = read(self.spool.path, record=record, **options)
        again.path, again.spool = self.path, self.spool
        return again

    def _all_packet_columns(self) -> dict[str, Any]:
        from .columns import row_columns

        if self.options.get("record") == -2:
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


def new_engine(*, port: int | None = None, verify_checksums: bool = False,
               zeek_timers: bool = False, record: int | None = None,
               likely_server_ports: Collection[int] | None = None, bpf: str | None = None,
               count: int | None = None) -> _engine.Engine:
    """A tracker with read()'s options (see there), fed by whichever decoder."""
    programs = None
    if bpf is not None:
        from .bpf import compile_filter

        programs = compile_filter(bpf)
    return _engine.Engine(table_bytes(), verify_checksums=verify_checksums,
                          port=-1 if port is None else port,
                          record=-1 if record is None else record, zeek_timers=zeek_timers,
                          likely_server_ports=None if likely_server_ports is None
                          else list(likely_server_ports), bpf=programs, count=count or 0)


def read(path: str | os.PathLike[str] | Sequence[str], *, port: int | None = None,
         verify_checksums: bool = False, zeek_timers: bool = False, record: int | None = None,
         progress: ProgressFn | None = None, engine: str = "native",
         likely_server_ports: Collection[int] | None = None, merge: bool = False,
         bpf: str | None = None, count: int | None = None,
         state: str | Collection[str] | None = None,
         close: str | Collection[str] | None = None, where: str | None = None) -> Capture:
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
    """
    from .filters import ConnFilter

    conn_filter = ConnFilter.make(state, close, where)  # bad values fail before reading
    if isinstance(path, os.PathLike):  # one file given as a Path (notebooks do)
        path = os.fspath(path)
    if not isinstance(path, str):
        paths = list(path)
        if merge and len(paths) > 1:
            if engine != "native":
                raise UsageError("merging files needs the native engine")
            if bpf is not None or count is not None:
                raise UsageError("a BPF filter (-f) and -c work on one file at a time, not "
                                 "on merged files")
            from .merge import read_merged

            merged = read_merged(paths, port=port, verify_checksums=verify_checksums,
                                 zeek_timers=zeek_timers, record=record, progress=progress,
                                 likely_server_ports=likely_server_ports)
            if conn_filter is not None:
                merged.selected = conn_filter.select(merged)
            return merged
        if len(paths) != 1:
            raise UsageError(f"{len(paths)} files: read(paths, merge=True) reads them as one "
                             "capture; read each file on its own otherwise")
        path = paths[0]
    if engine == "pyshark":
        from .engines import pyshark_engine

        if bpf is not None or count is not None:
            raise UsageError("a BPF filter (-f) and -c need the native engine; tshark's own "
                             "-Y/-c do this for --engine pyshark")

        cap = pyshark_engine.read(path, port=port, verify_checksums=verify_checksums,
                                  zeek_timers=zeek_timers, record=record, progress=progress,
                                  likely_server_ports=likely_server_ports)
        if conn_filter is not None:
            cap.selected = conn_filter.select(cap)
        return cap
    if engine != "native":
        raise UsageError(f"unknown engine {engine!r} (known: native, pyshark)")
    options = {"port": port, "verify_checksums": verify_checksums,
               "zeek_timers": zeek_timers, "record": record,
               "likely_server_ports": likely_server_ports, "bpf": bpf, "count": count}
    tracker = new_engine(port=port, verify_checksums=verify_checksums,
                         zeek_timers=zeek_timers, record=record,
                         likely_server_ports=likely_server_ports, bpf=bpf, count=count)
    source = open_source(path)
    warnings: list[str] = []
    error: CaptureError | None = None
    # Bytes of an incomplete record wait in `pending` for the next chunk. The framer bounds
    # a record (libpcap's limits), so `pending` stays small and each byte is copied O(1)
    # times: time and memory linear in the input, whatever its record lengths claim.
    pending = bytearray()
    for chunk in source.chunks():
        if pending:
            pending += chunk.data
        try:
            used = tracker.feed(pending if pending else chunk.data)
        except _engine.FormatError as exc:
            error = _format_error(path, exc)
            break
        if pending:
            del pending[:used]
        else:
            pending[:] = memoryview(chunk.data)[used:]
        if progress:
            progress(chunk.position, source.size, tracker.stats()["frames"],
                     tracker.conn_count())
        if count and tracker.stats()["count_reached"]:
            break  # -c: the rest of the file is not read
    else:
        # End of input: feed the rest until nothing more is framed.
        while pending:
            try:
                used = tracker.feed(pending)
            except _engine.FormatError as exc:
                error = _format_error(path, exc)
                break
            if used == 0:
                break
            del pending[:used]
    stats = tracker.stats()
    if stats["count_reached"]:
        pending.clear()  # what -c left unread is no truncation
    if error is None and source.read_error is not None:
        error = CaptureError(path, f"{source.read_error} at byte {source.delivered} (after "
                                   f"packet {stats['packets_framed']})",
                             offset=source.delivered, packet=stats["packets_framed"])
    if error is None and (pending or source.truncated_stream):
        warnings.append(f"{path}: truncated at byte {stats['bytes_framed']} after packet "
                        f"{stats['packets_framed']}")
    tracker.finish()
    stats = tracker.stats()
    warnings += time_warnings(path, stats)
    cap = Capture(path=path, engine=tracker, stats=stats, warnings=warnings,
                  error=error, options=options, spool=source.spool)
    if conn_filter is not None:
        cap.selected = conn_filter.select(cap)
    return cap


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
