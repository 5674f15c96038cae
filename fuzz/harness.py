"""One fuzz input, three ways into the compiled core (issue 12): shared by the
coverage-guided fuzzer (fuzz_engine.py, atheris) and the replay of the corpora
(replay.py, tests/test_fuzz_corpus.py).

The first byte picks the way and the options; the rest is the input:

* ``file``: written to a file and read by ``analyzer.read`` (gzip detection, framing,
  decoding, tracking, the records and every output format);
* ``live``: fed to ``Engine.feed`` in chunks of sizes taken from the input, keeping the
  unconsumed bytes as a live capture does, readers called between chunks;
* ``segments``: 42-byte records, each one ``Engine.feed_segment`` call (any time, flags,
  sequence numbers, options), readers called as it goes.

Bit 0x40 of the first byte reads the input (any way) with a streamed engine instead
(``Engine(stream=True)``, a sweep before every packet; bit 0x10 then picks end order,
bit 0x80 ``idle_ns`` 2 s), taking connections as it goes; its records must equal an
in-memory engine's with the same options (unless times stepped back after a write-out:
``time_back_late``).

Anything but the documented outcomes (a Capture, a CaptureError, FormatError from feed,
ValueError for bad feed_segment arguments) is a finding; so is any sanitizer report.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from collections.abc import Callable
from typing import Any

import analyzer
from analyzer import _engine
from analyzer.errors import CaptureError
from analyzer.formats import FORMATS, write
from analyzer.fsm import table_bytes
from analyzer.options import ReadOptions
from analyzer.results import ConnBatch, engine_batch

SCRATCH = os.path.join(tempfile.gettempdir(), f"handshake-fuzz-{os.getpid()}.bin")
SEGMENT = struct.Struct("<qIIHHBIIHHhbBBI")  # see segments()
WAYS = ("file", "live", "segments")


def options(byte: int) -> dict[str, Any]:
    return {"verify_checksums": bool(byte & 0x04), "zeek_timers": bool(byte & 0x08),
            "record": -2 if byte & 0x10 else None,
            "likely_server_ports": (80, 443) if byte & 0x20 else None}


def one_input(data: bytes) -> None:
    if not data:
        return
    way, opts, body = WAYS[data[0] % 3], options(data[0]), data[1:]
    if data[0] & 0x40:
        streamed(way, body, data[0])
    elif way == "file":
        read_file(body, opts)
    elif way == "live":
        live(body, opts)
    else:
        segments(body, opts)


def read_file(body: bytes, opts: dict[str, Any]) -> None:
    with open(SCRATCH, "wb") as f:
        f.write(body)
    try:
        cap = analyzer.read(SCRATCH, **opts)
    except CaptureError:
        return
    same_records(cap.engine)
    write([cap], FORMATS[body[-1] % len(FORMATS)] if body else "jsonl", io.StringIO())
    if opts["record"] == -2:
        cap.engine.row_columns()
        cap.packet_rows()


def same_records(engine: Any) -> None:
    """The engine's JSON lines and the Python records are one record (one fact, one
    place: a time difference that wrapped in C once made them differ)."""
    n = engine.conn_count()
    batch = engine_batch(engine)
    lines = batch.render("jsonl").decode().splitlines()
    assert len(lines) == n
    for line, rec in zip(lines, batch.records()):
        assert json.loads(line) == json.loads(json.dumps(rec, allow_nan=False)), (line, rec)


def _engine_for(opts: dict[str, Any]) -> Any:
    return ReadOptions.make(verify_checksums=opts["verify_checksums"],
                            zeek_timers=opts["zeek_timers"], record=opts["record"],
                            likely_server_ports=opts["likely_server_ports"]).new_engine()


def read_back(engine: Any) -> None:
    """What a reader (a notebook, the live view) asks of a filling engine."""
    n = engine.conn_count()
    for i in {0, n // 2, n - 1} if n else ():
        next(engine_batch(engine, i, 1).records())
        engine.row_columns(i)
    engine_batch(engine).render("jsonl")
    engine.drain_transitions()
    engine.stats()


def live(body: bytes, opts: dict[str, Any]) -> None:
    engine = _engine_for(opts)
    chunks = 0

    def every_fourth() -> None:
        nonlocal chunks
        chunks += 1
        if chunks % 4 == 0:
            read_back(engine)

    feed_chunks(engine, body, every_fourth)
    engine.finish()
    same_records(engine)


def streamed(way: str, body: bytes, byte: int) -> None:
    """The input through a streamed engine and an in-memory one: the same records."""
    opts = {"verify_checksums": bool(byte & 0x04), "zeek_timers": bool(byte & 0x08),
            "likely_server_ports": (80, 443) if byte & 0x20 else None,
            "idle_ns": 2_000_000_000 if byte & 0x80 else 0}
    order_end = bool(byte & 0x10)
    memory = _engine.Engine(table_bytes(), **opts)
    engine = _engine.Engine(table_bytes(), stream=True, order_end=order_end, sweep_every=1,
                            **opts)
    got: list[dict[str, Any]] = []

    def take() -> None:
        got.extend(ConnBatch(engine.take(5)).records())
        engine.stats()

    for e in (memory, engine):
        if way == "file":
            try:
                e.feed(body)
            except _engine.FormatError:
                pass
        elif way == "live":
            feed_chunks(e, body, take if e is engine else lambda: None)
        else:
            feed_segments(e, body, (lambda _: take()) if e is engine else lambda _: None)
        e.finish()
    while batch := ConnBatch(engine.take(64, True)):
        got.extend(batch.records())
    want = list(ConnBatch(memory.columns(0, memory.conn_count())).records())
    if engine.stats()["time_back_late"]:
        return  # a connection may have been written out before a later, older packet
    assert (sorted(got, key=lambda r: r["id"]) if order_end else got) == want


def feed_chunks(engine: Any, body: bytes, between: Callable[[], None]) -> None:
    """Feed the input in chunks whose sizes come from the input itself (1 to 1786
    bytes), calling ``between`` after each."""
    pending = bytearray()
    pos = 0
    while pos < len(body):
        size = 1 + body[pos] * 7
        pending += body[pos + 1:pos + 1 + size]
        pos += 1 + size
        try:
            used = engine.feed(pending)
        except _engine.FormatError:
            break
        del pending[:used]
        between()


def feed_segments(engine: Any, body: bytes, between: Callable[[int], None]) -> None:
    """Feed the input as decoded segments, calling ``between(k)`` after segment k."""
    for k in range(0, len(body) - SEGMENT.size + 1, SEGMENT.size):
        (ts, src, dst, sport, dport, flags, seq, ack, length, win, mss, wscale, sack,
         tsok, pkt) = SEGMENT.unpack_from(body, k)
        # few addresses and ports, so that segments meet in the same connections
        a, b = struct.pack(">I", 0x0A000000 | src & 3), struct.pack(">I", 0x0A000000 | dst & 3)
        engine.feed_segment(ts, a, b, sport & 7, dport & 7, flags, seq, ack, length, win,
                            mss, wscale, bool(sack & 1), bool(tsok & 1),
                            pkt_no=pkt & 0xFF if pkt & 0x100 else 0)
        between(k // SEGMENT.size)


def segments(body: bytes, opts: dict[str, Any]) -> None:
    engine = _engine_for(opts)
    feed_segments(engine, body, lambda k: read_back(engine) if k % 16 == 0 else None)
    engine.finish()
    same_records(engine)
