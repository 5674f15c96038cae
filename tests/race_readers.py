"""Readers hammering an engine that another thread feeds (issue 12, item 1). Run as a
script, under the sanitized build (fuzz/build_sanitized.sh), by tests/test_sanitized.py:

    race_readers.py offline SECONDS   a thread feeds a generated capture chunk by chunk
                                      (GIL released) while this one reads conn(),
                                      transitions(), jsonl() and len() of the growing engine
    race_readers.py stream SECONDS    the same feeding thread on a streamed engine (a
                                      sweep before every packet, idle_ns 1 ns, so
                                      connections are written out and their memory
                                      reused as it goes) while this one take()s them
    race_readers.py live SECONDS      analyzer.sniff(background=True) on loopback (an
                                      ephemeral port, clients connecting in a loop) while
                                      this thread reads the filling Capture, as a notebook

Prints ``reads N connections M``; any sanitizer report makes the process fail.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time

import analyzer
import analyzer.records  # noqa: F401  (gives the engine the names render() writes)
from analyzer import _engine
from analyzer.fsm import table_bytes
from analyzer.options import ReadOptions
from analyzer.results import ConnBatch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen as g


def many_connections(n: int) -> bytes:
    frames = []
    t = 1_600_000_000 * g.NS
    for k in range(n):
        conv = g.conversation(client=(f"10.0.{k // 250}.{k % 250 + 1}", 40000 + k % 20000))
        start = conv.packets[0].ts_ns
        frames += [g.Packet(t + p.ts_ns - start, p.data) for p in conv.packets]
        t += 1000
    return g.pcap_file(g.framed(frames, g.LT_ETHERNET), g.LT_ETHERNET)


def feed(engine: object, data: bytes, done: threading.Event) -> None:
    pos = 0
    while pos < len(data):  # small chunks: many feeds, each growing the arrays
        pos += engine.feed(data[pos:pos + 4096])  # type: ignore[attr-defined]
    done.set()


def offline(seconds: float) -> None:
    data = many_connections(3000)
    deadline = time.monotonic() + seconds
    reads = conns = 0
    while time.monotonic() < deadline:
        engine = ReadOptions(record=-2).new_engine()
        done = threading.Event()

        feeder = threading.Thread(target=feed, args=(engine, data, done))
        feeder.start()
        while not done.is_set():
            n = engine.conn_count()
            if n:
                cols = engine.columns(max(0, n - 3), 3)
                _engine.render(cols, "jsonl")
                engine.row_columns(n - 1)
                reads += 1
        feeder.join()
        conns = max(conns, engine.conn_count())
    print("reads", reads, "connections", conns)


def stream(seconds: float) -> None:
    data = many_connections(3000)
    deadline = time.monotonic() + seconds
    reads = conns = 0
    while time.monotonic() < deadline:
        engine = _engine.Engine(table_bytes(), stream=True, sweep_every=1, idle_ns=1)
        done = threading.Event()
        feeder = threading.Thread(target=feed, args=(engine, data, done))
        feeder.start()
        ids: list[int] = []
        while not done.is_set():
            batch = ConnBatch(engine.take(16))
            ids += batch.values("id")
            engine.stats()
            reads += 1
        feeder.join()
        engine.finish()
        while batch := ConnBatch(engine.take(64, True)):
            ids += batch.values("id")
        assert sorted(ids) == list(range(engine.conn_count())), "a connection lost"
        conns = max(conns, len(ids))
    print("reads", reads, "connections", conns)


def live(seconds: float) -> None:
    stop = threading.Event()
    server = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = server.getsockname()[1]
    server.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(10)
                except OSError:
                    pass

    def client() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"x")
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    scratch = tempfile.mkdtemp(prefix="race-")
    cap = analyzer.sniff("lo", port=port, background=True, display=False,
                         write=os.path.join(scratch, "race.pcap"))
    for _ in range(3):
        threading.Thread(target=client, daemon=True).start()
    deadline = time.monotonic() + seconds
    reads = most = 0
    while time.monotonic() < deadline and cap.running:
        n = len(cap)
        most = max(most, n)
        list(cap.records())  # documented: the Capture fills as packets arrive
        if n:
            cap.record(n - 1)
        reads += 1
    stop.set()
    cap.stop()
    print("reads", reads, "connections", max(most, len(cap)))


if __name__ == "__main__":
    {"offline": offline, "stream": stream, "live": live}[sys.argv[1]](float(sys.argv[2]))
