"""The results model: the only Python code that talks to the engine about connections.

A read leaves the engine as :class:`ConnBatch` values: a batch of connections as typed
columns (csrc/columns.h: one ``bytes`` buffer per column, struct-of-arrays). Every
output is a view of those columns: the text formats are rendered from them by the
engine (``ConnBatch.render``), records, DataFrames, Arrow tables, the table and live
events read them here. Derived fields (RTTs, close kind, the endpoint text, counts of
unexpected inputs) are filled once, in csrc/columns.c.

:class:`Results` is one capture's tracker with how it was read (one frozen
:class:`~analyzer.options.ReadOptions`), and :func:`read_file` reads a file into it;
:meth:`Results.reread` reads the same file again and is the one place that checks it is
still the same file. :func:`stream_file` reads a file as a :class:`Stream` of batches
instead: each connection is written out once it is over and its memory reused. Both are
fed by one loop, :func:`_feed`.
"""

from __future__ import annotations

import collections
import itertools
import struct
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self

from . import _engine
from .anomalies import NAMES as ANOMALY_NAMES
from .errors import CaptureError, UsageError
from .options import ProgressFn, ReadOptions, capture_stats, time_warnings
from .records import CLOSE_KINDS, CONN_STATES, INPUT_NAMES, STATE_NAMES, WHO, secs
from .source import FileSource, open_source

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .merge import MergedFiles


#: Fixed-width columns: name -> (struct code, values per row), csrc/columns.h order.
COLUMN_TYPES: Final = {name: (code, per) for name, code, per in _engine.COLUMNS}
CONN_COLUMNS: Final = tuple(n for n in COLUMN_TYPES if not n.startswith("trans."))
TRANS_COLUMNS: Final = tuple(n for n in COLUMN_TYPES if n.startswith("trans."))
STRING_COLUMNS: Final = tuple(_engine.STRING_COLUMNS)
UNSET: Final = -(1 << 63)  # a time or duration not seen (numpy: NaT)
BATCH: Final = 2048  # connections per batch when a capture is walked in batches (text
# outputs render one batch at a time: a few MB, whatever the capture)
ORDERS: Final = ("id", "end")  # a streamed read's output order (Stream)

#: A connection's fields by name (ConnBatch.row): every fixed and text column; nulls are
#: as in the columns (UNSET times, -1 ISNs/options/states), ``anomalies`` a tuple.
ROW_FIELDS: Final = CONN_COLUMNS + STRING_COLUMNS
ConnRow = collections.namedtuple("ConnRow", ROW_FIELDS)  # type: ignore[misc]


class Transition(NamedTuple):
    """One endpoint state change (or unexpected input) of a connection."""

    role: int  # 0 client, 1 server
    state: int  # TcpState
    ts_ns: int
    packet: int
    how: int  # records.HOW
    input: int  # fsm.Input, -1 for an initial state


class ConnBatch:
    """Connections as typed columns, straight from the engine's buffers.

    ``buffers`` maps each column name to a ``bytes`` object (a string column has its
    UTF-8 data and ``<name>.offsets``; ``trans.*`` columns hold every connection's
    transitions, connection k's at ``trans.offsets[k]`` up to ``[k + 1]``)."""

    def __init__(self, buffers: dict[str, Any]) -> None:
        self.buffers = buffers
        self.n: int = int(buffers["n"])
        self._lists: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return self.n

    def column(self, name: str) -> memoryview[int]:
        """A fixed-width column (or ``<string>.offsets``) as a typed memoryview."""
        code = "i" if name.endswith(".offsets") else COLUMN_TYPES[name][0]
        view: memoryview[int] = memoryview(self.buffers[name]).cast(code)  # type: ignore[call-overload]
        return view

    def values(self, name: str) -> list[Any]:
        """A column as a Python list (strings decoded; anomalies one tuple per row)."""
        got = self._lists.get(name)
        if got is None:
            if name in STRING_COLUMNS:
                text = self.buffers[name].decode()
                off = self.column(f"{name}.offsets").tolist()
                got = [text[a:b] for a, b in itertools.pairwise(off)] if text.isascii() else \
                    [self.buffers[name][a:b].decode() for a, b in itertools.pairwise(off)]
            elif COLUMN_TYPES[name][1] > 1:
                flat, per = self.column(name).tolist(), COLUMN_TYPES[name][1]
                got = [tuple(flat[k:k + per]) for k in range(0, len(flat), per)]
            else:
                got = self.column(name).tolist()
            self._lists[name] = got
        return got

    def numpy(self, name: str) -> NDArray[Any]:
        """A fixed-width column as a read-only numpy array over the engine's buffer
        (no copy); ``anomalies`` is 2-D (one row per connection)."""
        import numpy as np

        code, per = ("i", 1) if name.endswith(".offsets") else COLUMN_TYPES[name]
        arr = np.frombuffer(self.buffers[name], dtype=np.dtype(code))
        return arr.reshape(-1, per) if per > 1 else arr

    def row(self, i: int) -> Any:
        """Connection ``i`` of the batch (0-based in the batch) as a ConnRow."""
        return ConnRow(*(self.values(name)[i] for name in ROW_FIELDS))

    def rows(self) -> Iterator[Any]:
        cols = [self.values(name) for name in ROW_FIELDS]
        return (ConnRow(*values) for values in zip(*cols))

    def transitions(self, i: int) -> list[Transition]:
        off = self.column("trans.offsets")
        cols = [self.values(name)[off[i]:off[i + 1]] for name in TRANS_COLUMNS]
        return [Transition(*t) for t in zip(*cols)]

    def subset(self, rows: Sequence[int]) -> ConnBatch:
        """Rows ``rows`` (increasing, 0-based in the batch) as a batch of their own."""
        if len(rows) == self.n:
            return self
        runs = _runs(list(rows))
        out: dict[str, Any] = {"n": len(rows)}
        for name, (code, per) in COLUMN_TYPES.items():
            if not name.startswith("trans."):
                size = struct.calcsize(code) * per
                data = memoryview(self.buffers[name])
                out[name] = b"".join(data[a * size:(a + n) * size] for a, n in runs)
        for name in (*STRING_COLUMNS, "trans"):
            off = self.column(f"{name}.offsets")
            spans = [(off[a], off[a + n]) for a, n in runs]
            if name == "trans":
                for col in TRANS_COLUMNS:
                    size = struct.calcsize(COLUMN_TYPES[col][0]) * COLUMN_TYPES[col][1]
                    data = memoryview(self.buffers[col])
                    out[col] = b"".join(data[a * size:b * size] for a, b in spans)
            else:
                data = memoryview(self.buffers[name])
                out[name] = b"".join(data[a:b] for a, b in spans)
            new = [0]
            for (a, n), (first, _) in zip(runs, spans):
                base = new[-1] - first
                new.extend(off[k] + base for k in range(a + 1, a + n + 1))
            out[f"{name}.offsets"] = struct.pack(f"{len(new)}i", *new)
        return ConnBatch(out)

    def render(self, fmt: str, *, tag: str | None = None, uid_seed: str = "") -> bytes:
        """The rows as ``jsonl``, ``csv`` or ``zeek`` text (csrc/columns.c). ``tag`` adds a
        ``file`` field; Zeek uids are made from ``uid_seed`` and the id."""
        return _engine.render(self.buffers, fmt, tag, uid_seed)

    def records(self) -> Iterator[dict[str, Any]]:
        """The ``handshake read --format jsonl`` objects of the batch, as dicts."""
        v = self.values
        off = self.column("trans.offsets").tolist()
        t_role, t_state, t_ts, t_pkt, t_how, t_in = (v(n) for n in TRANS_COLUMNS)
        cols = [v(name) for name in _RECORD_COLUMNS]
        for i, row in enumerate(zip(*cols)):
            r = dict(zip(_RECORD_COLUMNS, row))
            states: dict[str, list[list[Any]]] = {"client": [], "server": []}
            unexpected: list[dict[str, Any]] = []
            for k in range(off[i], off[i + 1]):
                who = "server" if t_role[k] else "client"
                if t_how[k] == 2:  # an input the table does not allow here: kept, not raised
                    unexpected.append({"packet": t_pkt[k], "endpoint": who,
                                       "state": STATE_NAMES[t_state[k]],
                                       "input": INPUT_NAMES[t_in[k]]})
                else:
                    states[who].append([secs(t_ts[k]), STATE_NAMES[t_state[k]]])
            yield {
                "id": r["id"], "client": r["client"], "server": r["server"],
                "first_packet": r["first_packet"], "last_packet": r["last_packet"],
                "start": secs(r["start_ns"]), "end": secs(r["end_ns"]),
                "duration": secs(r["duration_ns"]),
                "packets": {"client": r["packets_client"], "server": r["packets_server"]},
                "payload_bytes": {"client": r["payload_bytes_client"],
                                  "server": r["payload_bytes_server"]},
                "conn_state": CONN_STATES[r["conn_state"]],
                "history": r["history"],
                "handshake": {
                    "complete": r["handshake_complete"],
                    "simultaneous_open": r["simultaneous_open"],
                    "fast_open": r["fast_open"],
                    "syn_retransmits": r["syn_retransmits"],
                    "synack_retransmits": r["synack_retransmits"],
                    "client_isn": _null(r["client_isn"]),
                    "server_isn": _null(r["server_isn"]),
                    "irtt": _secs(r["irtt_ns"]),
                    "client_rtt": _secs(r["client_rtt_ns"]),
                    "server_rtt": _secs(r["server_rtt_ns"]),
                    "client_options": _options(r, "client"),
                    "server_options": _options(r, "server"),
                },
                "close": {
                    "kind": CLOSE_KINDS[r["close_kind"]],
                    "initiator": WHO[r["close_initiator"]],
                    "reset_by": WHO[r["close_reset_by"]],
                    "half_close": r["close_half_close"],
                    "time_wait": WHO[r["close_time_wait"]],
                },
                "states": states,
                "roles_guessed": r["roles_guessed"],
                "unexpected": unexpected,
                "anomalies": {name: n for name, n in zip(ANOMALY_NAMES, r["anomalies"]) if n},
            }


_OPTION_KEYS: Final = ("options", "mss", "wscale", "sack_permitted", "timestamps")
_RECORD_COLUMNS: Final = (
    "id", "client", "server", "first_packet", "last_packet", "start_ns", "end_ns",
    "duration_ns", "packets_client", "packets_server", "payload_bytes_client",
    "payload_bytes_server", "conn_state", "history", "handshake_complete",
    "simultaneous_open", "fast_open", "syn_retransmits", "synack_retransmits", "client_isn", "server_isn",
    "irtt_ns", "client_rtt_ns", "server_rtt_ns",
    *(f"{side}_{key}" for side in ("client", "server") for key in _OPTION_KEYS),
    "close_kind", "close_initiator", "close_reset_by", "close_half_close", "close_time_wait",
    "roles_guessed", "anomalies")


def _null(value: int) -> int | None:
    return None if value < 0 else value


def _secs(ns: int) -> float | None:
    return None if ns == UNSET else secs(ns)


def _options(r: dict[str, Any], side: str) -> dict[str, Any] | None:
    if not r[f"{side}_options"]:
        return None
    return {"mss": _null(r[f"{side}_mss"]), "wscale": _null(r[f"{side}_wscale"]),
            "sack_permitted": r[f"{side}_sack_permitted"],
            "timestamps": r[f"{side}_timestamps"]}


def empty_batch() -> ConnBatch:
    """A batch of no connection."""
    zero = struct.pack("i", 0)
    buffers: dict[str, Any] = {"n": 0, **{name: b"" for name in COLUMN_TYPES},
                               **{name: b"" for name in STRING_COLUMNS}}
    buffers.update({f"{name}.offsets": zero for name in (*STRING_COLUMNS, "trans")})
    return ConnBatch(buffers)


def engine_batch(engine: Any, start: int = 0, count: int | None = None) -> ConnBatch:
    """Connections ``start`` .. ``start + count`` of a tracker (all the rest by default);
    those not finished yet (a live capture) as they would be if it ended now."""
    n = int(engine.conn_count()) - start if count is None else count
    return ConnBatch(engine.columns(start, n))


def concat(batches: list[ConnBatch]) -> ConnBatch:
    """Several batches as one (offsets rebased)."""
    if len(batches) == 1:
        return batches[0]
    import array

    out: dict[str, Any] = {"n": sum(b.n for b in batches)}
    for name in COLUMN_TYPES:
        out[name] = b"".join(b.buffers[name] for b in batches)
    for name in (*STRING_COLUMNS, "trans"):
        offsets = array.array("i", [0])
        base = 0
        for b in batches:
            off = b.column(f"{name}.offsets")
            offsets.extend(x + base for x in off[1:])
            base += off[b.n]
        out[f"{name}.offsets"] = offsets.tobytes()
        if name != "trans":
            out[name] = b"".join(b.buffers[name] for b in batches)
    return ConnBatch(out)


@dataclass
class Results:
    """Every TCP connection found in one capture: the tracker and how it was read."""

    path: str
    engine: Any = field(repr=False)
    stats: dict[str, int]
    warnings: list[str]
    error: CaptureError | None = None  # reading stopped here; what came before is kept
    options: ReadOptions = field(default_factory=ReadOptions, repr=False)
    # A copy of a non-seekable input (a pipe, ``-``) to read again (source.Spool), else None.
    spool: Any = field(default=None, repr=False)
    # The connections the filters kept (read(state=, close=, where=)), None for all.
    selected: list[int] | None = field(default=None, repr=False)
    # Several files read as one (read(paths, merge=True)): the files and where each
    # packet number came from (analyzer.merge); ``path`` is then the files joined by "+".
    merged: MergedFiles | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.engine.conn_count())

    @property
    def filtered(self) -> bool:
        """True when the connection filters chose which connections are reported."""
        return self.selected is not None

    def ids(self) -> list[int] | range:
        """The ids of the connections reported: those the connection filters kept (ids
        are the file's, so ``handshake show FILE ID`` finds them), or every one."""
        return range(len(self)) if self.selected is None else self.selected

    def batch(self, start: int | None = None, count: int | None = None) -> ConnBatch:
        """Connections ``start`` .. ``start + count`` (all the rest by default); without
        arguments every connection reported (those the filters kept)."""
        if start is not None or count is not None:
            return engine_batch(self.engine, start or 0, count)
        # Every connection: kept while the engine has seen nothing new (frames, plots
        # and the packet table all read it; a live capture that fills gets a new one).
        key = (len(self), self.engine.stats()["tcp"], tuple(self.selected or ()))
        cached = self.__dict__.get("_batch")
        if cached is not None and cached[0] == key:
            return cached[1]  # type: ignore[no-any-return]
        if self.selected is None:
            batch = engine_batch(self.engine)
        else:
            batch = concat(list(self.batches())) if self.selected else \
                engine_batch(self.engine, 0, 0)
        self.__dict__["_batch"] = (key, batch)
        return batch

    def every(self) -> ConnBatch:
        """Every connection of the capture, row k being id k (whatever the filters kept)."""
        return self.batch() if self.selected is None else engine_batch(self.engine)

    def batches(self, size: int = BATCH) -> Iterator[ConnBatch]:
        """Every connection reported, in id order, ``size`` at a time (bounded memory)."""
        if self.selected is None:
            for start in range(0, len(self), size):
                yield engine_batch(self.engine, start, size)
            return
        for first, n in _runs(self.selected):
            for start in range(first, first + n, size):
                yield engine_batch(self.engine, start, min(size, first + n - start))

    def check_id(self, conn_id: int) -> None:
        if not 0 <= conn_id < len(self):
            raise UsageError(f"{self.path}: no connection {conn_id} "
                             f"(the file has {len(self)}: ids 0 to {len(self) - 1})")

    def row(self, conn_id: int) -> Any:
        """One connection's fields by name (a ConnRow)."""
        self.check_id(conn_id)
        return engine_batch(self.engine, conn_id, 1).row(0)

    def raw(self, conn_id: int) -> Any:
        """The same as :meth:`row` (the name older code used)."""
        return self.row(conn_id)

    def state_changes(self, conn_id: int) -> list[Transition]:
        self.check_id(conn_id)
        return engine_batch(self.engine, conn_id, 1).transitions(0)

    def record(self, conn_id: int) -> dict[str, Any]:
        """The ``--format jsonl`` object of one connection."""
        self.check_id(conn_id)
        return next(engine_batch(self.engine, conn_id, 1).records())

    def records(self) -> Iterator[dict[str, Any]]:
        for batch in self.batches():
            yield from batch.records()

    def packet_rows(self) -> list[tuple[Any, ...]]:
        """Rows recorded with ``record=``: one per TCP packet (see Engine.rows)."""
        return list(self.engine.rows())

    def reread(self, record: int | None) -> Results:
        """The same file read again with the same options, keeping packet rows of
        connection ``record`` (every one with -2). Raises UsageError when the file is
        no longer the one read (other connections): the one "same file?" check."""
        if self.merged is not None:
            again = read_merged(self.merged.files, self.options.recording(record))
        else:
            again = read_file(self.spool.path if self.spool else self.path,
                              self.options.recording(record))
            again.path, again.spool = self.path, self.spool
        if _fingerprint(self) != _fingerprint(again):
            raise UsageError(f"{self.path}: the file changed since it was read; read it "
                             "again")
        return again


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive ids as (first, count) runs: [0, 1, 2, 7] -> [(0, 3), (7, 1)]."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


def _fingerprint(res: Results) -> tuple[int, bytes, bytes, bytes]:
    """What identifies the connections of a read: their number, first and last packets
    and start times (cheap: three columns)."""
    if res.error is not None and len(res) == 0:
        return (0, b"", b"", b"")
    cols = res.engine.columns(0, len(res))
    return (len(res), cols["first_packet"], cols["last_packet"], cols["start_ns"])


def read_merged(paths: Sequence[str], options: ReadOptions,
                progress: ProgressFn | None = None) -> Results:
    """Several files read as one capture in time order (analyzer.merge)."""
    from .merge import track

    engine, stats, warnings, error, merged = track(paths, options, progress)
    return Results("+".join(merged.files), engine, stats, warnings, error, options,
                   merged=merged)


def read_file(path: str, options: ReadOptions | None = None,
              progress: ProgressFn | None = None) -> Results:
    """Analyse one capture file (see analyzer.read). A corrupt record stops the reading:
    the Results keep everything before it and say where it stopped in ``error``; a file
    cut short only adds a warning."""
    options = options or ReadOptions()
    if options.engine == "pyshark":
        from .engines import pyshark_engine

        engine, stats, warnings, error, spool = pyshark_engine.track(path, options, progress)
        return Results(path, engine, stats, warnings, error, options, spool)
    tracker = options.new_engine()
    source = open_source(path)
    feed = _feed(path, source, tracker, options, progress)
    while True:
        try:
            next(feed)
        except StopIteration as done:
            fed: Fed = done.value
            break
    return Results(path, tracker, fed.stats, fed.warnings, fed.error, options, source.spool)


class Fed(NamedTuple):
    """What reading a file gave besides the connections."""

    stats: dict[str, int]
    warnings: list[str]
    error: CaptureError | None


def _feed(path: str, source: FileSource, tracker: Any, options: ReadOptions,
          progress: ProgressFn | None) -> Generator[None, None, Fed]:
    """Feed a capture file to ``tracker`` to its end (or ``-c``, or the first corrupt
    record), yielding after each chunk (a streamed read takes what was written out
    then); then finish the tracker and return the counters, warnings and error."""
    notes: list[str] = []
    error_at: CaptureError | None = None
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
            error_at = _format_error(path, exc)
            break
        if pending:
            del pending[:used]
        else:
            pending[:] = memoryview(chunk.data)[used:]
        if progress:
            progress(chunk.position, source.size, tracker.stats()["frames"],
                     tracker.conn_count())
        if options.count and tracker.stats()["count_reached"]:
            break  # -c: the rest of the file is not read
        yield
    else:
        # End of input: feed the rest until nothing more is framed.
        while pending:
            try:
                used = tracker.feed(pending)
            except _engine.FormatError as exc:
                error_at = _format_error(path, exc)
                break
            if used == 0:
                break
            del pending[:used]
    stats = tracker.stats()
    if stats["count_reached"]:
        pending.clear()  # what -c left unread is no truncation
    if error_at is None and source.read_error is not None:
        error_at = CaptureError(path, f"{source.read_error} at byte {source.delivered} (after "
                                      f"packet {stats['packets_framed']})",
                                offset=source.delivered, packet=stats["packets_framed"])
    if error_at is None and pending and stats["bytes_framed"] == 0:
        # Not even the file header is whole: no capture to speak of (tcpdump: an error).
        error_at = CaptureError(path, f"the file header is cut short: the input ends at "
                                      f"byte {len(pending)}", offset=len(pending), packet=0)
    elif error_at is None and (pending or source.truncated_stream):
        notes.append(f"{path}: truncated at byte {stats['bytes_framed']} after packet "
                     f"{stats['packets_framed']}")
    tracker.finish()
    stats = capture_stats(tracker)
    notes += time_warnings(path, stats)
    return Fed(stats, notes, error_at)


class Stream:
    """One capture file read as a stream: an iterator of :class:`ConnBatch`, each
    connection written out once it is over (``Engine.take``) and its memory reused, so
    memory is bounded by the connections held at one moment, not by the capture.

    Batches come after each chunk of the file is fed (those written out meanwhile) and
    at the end (every connection left). ``order="id"``: in id order, the order of first
    packets, as :class:`Results` lists them (a connection waits for every older one
    still open); ``order="end"``: in the order they end, as Zeek writes conn.log (ties
    by id); ids are the same either way. Once exhausted, ``stats``, ``warnings`` and
    ``error`` are those :func:`read_file` would give; ``len()`` counts the connections
    of the file so far, ``select`` (a filter of a batch's rows) chooses those yielded."""

    merged: MergedFiles | None = None  # as Results (the writers read both)

    def __init__(self, path: str, options: ReadOptions, progress: ProgressFn | None = None,
                 order: str = "id",
                 select: Callable[[ConnBatch], ConnBatch] | None = None) -> None:
        if order not in ORDERS:
            raise UsageError(f"order {order!r}: one of {', '.join(ORDERS)}")
        if options.engine != "native":
            raise UsageError("a streamed read needs the native engine")
        if options.record is not None:
            raise UsageError("a streamed read keeps no packet rows (record=): use read()")
        self.path = path
        self.options = options
        self.order = order
        self.stats: dict[str, int] = {}
        self.warnings: list[str] = []
        self.error: CaptureError | None = None
        self.done = False  # exhausted: stats, warnings and error are final
        # Called before each chunk is fed and before each batch (and the end) is handed
        # out: the CLI draws its progress line between the two, not while it writes.
        self.before_read: Callable[[], object] = _nothing
        self.before_write: Callable[[], object] = _nothing
        self._select = select
        self.engine = options.new_engine(stream=True, order_end=order == "end")
        # A pipe is read once: no copy to read it again.
        self._source = open_source(path, spool=False)
        self._batches = self._run(_feed(path, self._source, self.engine, options, progress))

    def __iter__(self) -> Stream:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading (the file is closed); batches not taken yet are dropped."""
        self._batches.close()
        self._source.close()

    def __next__(self) -> ConnBatch:
        return next(self._batches)

    def batches(self) -> Iterator[ConnBatch]:
        """The batches (one pass: the same iterator)."""
        return self

    def __len__(self) -> int:
        return int(self.engine.conn_count())

    @property
    def filtered(self) -> bool:
        return self._select is not None

    def _run(self, feed: Generator[None, None, Fed]) -> Generator[ConnBatch, None, None]:
        while True:
            self.before_read()
            try:
                next(feed)
            except StopIteration as end:
                fed: Fed = end.value
                break
            yield from self._take(final=False)
        self.stats, self.warnings, self.error = fed
        late = self.engine.stats().get("time_back_late", 0)
        if late:
            self.warnings.append(
                f"{self.path}: packet {late} goes back in time further than any before, "
                "after connections were written out (the file is not in time order): "
                "the records near it may differ from reading the file whole")
        yield from self._take(final=True)
        # Bare SYNs held compactly become connections (and their state changes) only
        # as they are taken: the counters are final now.
        self.stats = capture_stats(self.engine)
        self.done = True
        self.before_write()  # what follows the batches (a footer, a summary)

    def _take(self, final: bool) -> Iterator[ConnBatch]:
        while True:
            batch = ConnBatch(self.engine.take(BATCH, final))
            if batch.n == 0:
                return
            got = batch.n
            if self._select is not None:
                batch = self._select(batch)
            if batch.n:
                self.before_write()
                yield batch
            if got < BATCH and not final:
                return  # nothing more was written out


def _nothing() -> None:
    pass


def stream_file(path: str, options: ReadOptions | None = None,
                progress: ProgressFn | None = None, order: str = "id",
                select: Callable[[ConnBatch], ConnBatch] | None = None) -> Stream:
    """Read one capture file as a :class:`Stream` of batches (see analyzer.stream)."""
    return Stream(path, options or ReadOptions(), progress, order, select)


def _format_error(path: str, exc: Exception) -> CaptureError:
    message, offset, packets = exc.args
    return CaptureError(path, message, offset=offset, packet=packets)
