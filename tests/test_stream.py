"""Streamed reading (issue 11, item 2): ``handshake read`` and ``analyzer.stream`` write
each connection out once it is over and reuse its memory.

* Streamed output equals the in-memory output (analyzer.read + formats.write, the
  DataFrames for Parquet) byte for byte in id order, on every sample capture, every
  Zeek corpus trace and every capture of other stacks; ``--order end`` gives the same
  records with the same ids.
* Write-outs really happen during the read: real loopback captures repeated with their
  times shifted by 100 s (so each copy's connections are closed and quiet for more than
  the 60 s linger before the next copy), read through a pipe: lines come out before the
  input ends, in the order the copies end.
* ``--idle-timeout`` splits a connection quiet longer than it, alike in read, show and
  the library.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.cli import main
from analyzer.fit import elide, elide_endpoint
from analyzer.formats import TABLE_BLOCK, TableWriter, write

from pcapgen import checksum  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"
FILES = (sorted((ROOT / "captures").glob("*.pcap*"))
         + sorted((SHARED / "zeek" / "traces").glob("*.pcap*"))
         + sorted(p for p in (SHARED / "examples").glob("*") if p.suffix in (".pcap", ".pcapng")))
TEXT_FORMATS = ("jsonl", "csv", "zeek", "json", "table")
MANY = ROOT / "captures" / "many-clients.pcap"  # 160 connections, every one closed
ECHO = ROOT / "captures" / "echo-lo.pcap"
IPV6 = SHARED / "zeek" / "traces" / "ipv6.pcap"  # 6 connections, long IPv6 endpoints


def cli(*args: str, tmp: Path) -> tuple[int, str]:
    """``handshake read ARGS -o FILE`` in this process: exit status and the output."""
    out = tmp / "out"
    status = main(["read", *args, "-o", str(out)])
    return status, out.read_text(encoding="utf-8")


def in_memory(path: Path | str, fmt: str, **options: Any) -> str:
    out = io.StringIO()
    write([analyzer.read(path, **options)], fmt, out)
    return out.getvalue()


def without_times(text: str) -> str:
    """A Zeek log without its #open/#close lines (the wall clock of the writing)."""
    return "".join(line for line in text.splitlines(True)
                   if not line.startswith(("#open", "#close")))


# ---- streamed == in memory ------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_streamed_output_is_the_in_memory_output(path: Path, tmp_path: Path) -> None:
    """Every text format, byte for byte (connections in id order), footer and json
    summary included: the same counts, close kinds, counters, warnings and error."""
    for fmt in TEXT_FORMATS:
        status, got = cli("--format", fmt, str(path), tmp=tmp_path)
        want = in_memory(path, fmt)
        if fmt == "zeek":
            got, want = without_times(got), without_times(want)
        assert got == want, (fmt, path.name)
        assert status == (2 if analyzer.read(path).error else 0)
    # Zeek's timers decide when a connection is over instead (no compact bare SYNs)
    _, got = cli("--format", "jsonl", "--zeek-timers", str(path), tmp=tmp_path)
    assert got == in_memory(path, "jsonl", zeek_timers=True)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_order_end_gives_the_same_records_and_ids(path: Path, tmp_path: Path) -> None:
    _, by_id = cli("--format", "jsonl", str(path), tmp=tmp_path)
    _, by_end = cli("--format", "jsonl", "--order", "end", str(path), tmp=tmp_path)
    assert sorted(by_end.splitlines()) == sorted(by_id.splitlines())
    assert [json.loads(line)["id"] for line in by_id.splitlines()] == \
        list(range(len(by_id.splitlines())))


def test_parquet_streamed_is_the_connections_frame(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    files = [MANY, ECHO, *FILES[len(list((ROOT / "captures").glob("*.pcap*"))):][:6]]
    out = tmp_path / "conns"
    assert main(["read", "--format", "parquet", "-o", str(out), *map(str, files)]) == 0
    table = pd.read_parquet(out)
    for path in files:
        frame = analyzer.read(path).connections.reset_index(drop=True)
        part = table[table["file"] == str(path)].drop(columns="file").reset_index(drop=True)
        assert len(part) == len(frame)
        for name in frame.columns:  # Parquet stores times in microseconds
            want, got = frame[name], part[name]
            if str(want.dtype).startswith("datetime"):
                want = want.dt.floor("us")
            elif str(want.dtype).startswith("timedelta"):
                want = want.dt.floor("us")
                got = got.dt.floor("us")
            assert list(got.astype(str)) == list(want.astype(str)), (path.name, name)


def test_filters_apply_to_each_batch(tmp_path: Path) -> None:
    """--state/--close/--where on a streamed read: the same lines, footer and summary
    ("2 of 13 connections") as in memory."""
    for fmt in TEXT_FORMATS:
        args = ["--close", "reset,refused", "--where", "packets > 1"]
        _, got = cli("--format", fmt, *args, str(ECHO), tmp=tmp_path)
        want = in_memory(ECHO, fmt, close="reset,refused", where="packets > 1")
        assert without_times(got) == without_times(want), fmt
    _, table = cli("--close", "refused", str(MANY), tmp=tmp_path)
    assert "9 of 160 connections (9 refused)" in table


def test_several_files_and_jobs_stream_the_same(tmp_path: Path) -> None:
    files = [str(ECHO), str(MANY), str(ROOT / "captures" / "echo.pcapng")]
    caps = [analyzer.read(f) for f in files]
    for fmt in TEXT_FORMATS:
        want = io.StringIO()
        write(caps, fmt, want)
        for jobs in ("1", "2"):
            _, got = cli("--format", fmt, "-j", jobs, *files, tmp=tmp_path)
            assert without_times(got) == without_times(want.getvalue()), (fmt, jobs)


def test_error_mid_file_keeps_what_came_before(tmp_path: Path) -> None:
    """A record claiming 2 GiB after packet 700: the 75 connections before it written in
    every format, the one error line, exit 2, as in memory."""
    data = bytearray(MANY.read_bytes())
    offset = 24
    for _ in range(700):
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    struct.pack_into("<II", data, offset + 8, 0x7FFFFFFF, 0x7FFFFFFF)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    cap = analyzer.read(bad)
    assert cap.error is not None and len(cap) == 75
    for fmt in TEXT_FORMATS:
        status, got = cli("--format", fmt, str(bad), tmp=tmp_path)
        assert status == 2
        assert without_times(got) == without_times(in_memory(bad, fmt)), fmt
    p = subprocess.run([sys.executable, "-m", "analyzer", "read", "--format", "jsonl",
                        str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       check=False)
    assert p.returncode == 2 and len(p.stdout.splitlines()) == 75
    assert p.stderr.splitlines() == [f"handshake: error: {cap.error}"]
    assert f"at byte {offset}" in p.stderr


# ---- write-outs during the read -------------------------------------------------------


def pcap_records(path: Path) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """A classic little-endian microsecond pcap: its header and (seconds, µs, record
    body with its lengths) per packet."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, offset = [], 24
    while offset < len(data):
        sec, usec, caplen = struct.unpack_from("<III", data, offset)
        out.append((sec, usec, data[offset + 8:offset + 16 + caplen]))
        offset += 16 + caplen
    return data[:24], out


def readdressed(body: bytes, k: int) -> bytes:
    """An Ethernet/IPv4 loopback record (its 8 length bytes first) with 127.0.0.1 made
    127.0.k.1 on both ends (IP header checksum fixed; TCP checksums, partial on
    loopback anyway, are not verified by default)."""
    frame = bytearray(body)
    ip = 8 + 14
    assert frame[ip - 2:ip] == b"\x08\x00" and frame[ip + 12:ip + 20] == bytes([127, 0, 0, 1]) * 2
    frame[ip + 12:ip + 20] = bytes([127, 0, k, 1]) * 2
    ihl = (frame[ip] & 15) * 4
    frame[ip + 10:ip + 12] = b"\0\0"
    frame[ip + 10:ip + 12] = struct.pack("!H", checksum(bytes(frame[ip:ip + ihl])))
    return bytes(frame)


def shifted(path: Path, copies: int, shift: int, reuse: bool = False) -> bytes:
    """``copies`` copies of a real capture one after the other, copy k ``k * shift``
    seconds later, each copy on its own addresses (127.0.k.1), or with ``reuse`` on the
    same ones (4-tuples and ISNs repeat: a later copy's packets start new connections
    once the earlier ones are over)."""
    header, records = pcap_records(path)
    parts = [header]
    for k in range(copies):
        parts += [struct.pack("<II", sec + k * shift, usec)
                  + (body if reuse else readdressed(body, k)) for sec, usec, body in records]
    return b"".join(parts)


def test_connections_are_written_out_while_the_file_is_read(tmp_path: Path) -> None:
    """12 copies of many-clients.pcap 100 s apart (17,976 packets): batches come before
    the end of the input (the engine wrote connections out in its sweeps: ``written``
    > 0 while reading), in id order equal to the in-memory read, and in end order copy
    by copy (a copy's connections end 60 s after its last packet, before the next's)."""
    path = tmp_path / "copies.pcap"
    path.write_bytes(shifted(MANY, 12, 100))
    want = list(analyzer.read(path).records())
    assert len(want) == 12 * 160
    assert want[0]["client"].startswith("127.0.0.1:") and want[-1]["client"].startswith(
        "127.0.11.1:")
    for order in ("id", "end"):
        s = analyzer.stream(path, order=order)
        got: list[dict[str, Any]] = []
        early = 0
        for batch in s:
            if not s.done and not s.stats:  # the file is still being fed
                early += batch.n
                assert s.engine.stats()["written"] >= early
            got += batch.records()
        assert early >= 160 * 6, order  # most copies came out during the read
        assert s.done and s.error is None and s.warnings == []
        assert s.stats == analyzer.read(path).stats
        if order == "id":
            assert got == want
        else:
            assert sorted(got, key=lambda r: r["id"]) == want
            copy = [(r["first_packet"] - 1) // 1498 for r in got]  # 1498 packets a copy
            assert copy == sorted(copy)


def test_time_going_back_after_write_outs_is_a_warning(tmp_path: Path) -> None:
    """The first connection's first packets again at their own times after 12 copies
    (a file not in time order, as cat a.pcap b.pcap would make): its connection was
    written out long before, so the streamed read says so, once, with the packet."""
    header, records = pcap_records(MANY)
    late = b"".join(struct.pack("<II", sec, usec) + body for sec, usec, body in records[:11])
    path = tmp_path / "back.pcap"
    path.write_bytes(shifted(MANY, 12, 100) + late)
    assert analyzer.read(path).warnings == []
    s = analyzer.stream(path)
    n = sum(batch.n for batch in s)
    assert n >= 12 * 160 and s.error is None
    assert s.warnings == [f"{path}: packet {12 * 1498 + 1} goes back in time further than "
                          "any before, after connections were written out (the file is not "
                          "in time order): the records near it may differ from reading the "
                          "file whole"]
    p = subprocess.run([sys.executable, "-m", "analyzer", "read", str(path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert p.returncode == 0 and p.stderr == f"handshake: warning: {s.warnings[0]}\n"


def test_a_reused_four_tuple_streams_as_in_memory(tmp_path: Path) -> None:
    """The same copies on the same addresses: every 4-tuple and ISN comes back 100 s
    later, after the earlier connection is over (a new connection, in both reads)."""
    path = tmp_path / "reused.pcap"
    path.write_bytes(shifted(MANY, 12, 100, reuse=True))
    want = list(analyzer.read(path).records())
    assert len(want) == 12 * 160
    got = [r for batch in analyzer.stream(path) for r in batch.records()]
    assert [r["id"] for r in got] == [r["id"] for r in want]
    assert got == want


def test_a_connection_left_open_holds_id_order_back_not_end_order(tmp_path: Path) -> None:
    """A connection whose handshake opens the capture and which never closes (the first
    3 packets of echo-lo.pcap) keeps every later connection in memory in id order (they
    wait for it), not in end order; with --idle-timeout it is over too."""
    header, echo = pcap_records(ECHO)
    _, many = pcap_records(MANY)
    first = many[0][0]
    records = [(first - 1, usec, body) for _, usec, body in echo[:3]]
    for k in range(30):  # 8.9 MB: three chunks fed
        records += [(sec + k * 100, usec, readdressed(body, k)) for sec, usec, body in many]
    path = tmp_path / "open.pcap"
    path.write_bytes(header + b"".join(struct.pack("<II", s, u) + b for s, u, b in records))

    def during(order: str, **options: Any) -> tuple[int, int]:
        """Connections yielded while the file was fed, and most held at one time."""
        held = [0]
        s = analyzer.stream(path, order=order, progress=lambda *_: held.append(
            s.engine.stats()["open"]), **options)
        early = 0
        for batch in s:
            if not s.stats:
                early += batch.n
        return early, max(held)

    early, held = during("id")
    assert early == 0 and held >= 29 * 160  # everything waits for connection 0
    early, held = during("end")
    assert early >= 20 * 160 and held < 5 * 160
    early, held = during("id", idle_timeout=50)
    assert early >= 20 * 160 and held < 5 * 160
    assert json.loads(in_memory(path, "jsonl").splitlines()[0])["close"]["kind"] == "open"


def test_a_pipe_is_written_out_before_it_ends(tmp_path: Path) -> None:
    """``handshake read -`` on a pipe: the first lines are written while the input is
    still open (the writer sends the last quarter only once it has seen output), and
    the whole output is the in-memory read's."""
    data = shifted(MANY, 40, 100)  # 11.9 MB: three 4 MiB chunks
    path = tmp_path / "copies.pcap"
    path.write_bytes(data)
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "--format", "jsonl",
                             "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    seen = threading.Event()
    head = 3 * len(data) // 4

    def send(stdin: Any) -> None:
        stdin.write(data[:head])
        stdin.flush()
        if seen.wait(300):  # no output before the end: the test fails below
            stdin.write(data[head:])
        stdin.close()

    writer = threading.Thread(target=send, args=(proc.stdin,))
    writer.start()
    ready, _, _ = select.select([proc.stdout], [], [], 300)  # the first output
    first = os.read(proc.stdout.fileno(), 1 << 16) if ready else b""
    seen.set()
    rest = proc.stdout.read()
    writer.join()
    assert proc.wait(60) == 0
    assert first.startswith(b'{"id":0,'), "no line before the input ended"
    assert (first + rest).decode() == in_memory(path, "jsonl")


def test_stream_reads_a_pipe(tmp_path: Path) -> None:
    """analyzer.stream("-") and on a named pipe: the in-memory records, no copy of the
    input left behind (a stream is read once)."""
    want = list(analyzer.read(MANY).records())
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(MANY.read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    s = analyzer.stream(fifo)
    got = [r for batch in s for r in batch.records()]
    writer.join()
    assert got == want and s.error is None
    code = ("import analyzer, json\n"
            "s = analyzer.stream('-', order='end', close='refused')\n"
            "print(json.dumps([r['id'] for b in s for r in b.records()]))\n"
            "print(len(s), s.error)\n")
    p = subprocess.run([sys.executable, "-c", code], input=MANY.read_bytes(),
                       capture_output=True, cwd=tmp_path, timeout=120, check=True)
    ids, tail = p.stdout.decode().splitlines()
    assert json.loads(ids) == [r["id"] for r in want if r["close"]["kind"] == "refused"]
    assert tail == "160 None"


# ---- the table, streamed -------------------------------------------------------------


def table_capture(tmp_path: Path, then: Path) -> Path:
    """13 copies of many-clients.pcap 100 s apart (2,080 connections: more than the
    table's first block) and, 100 s after them, the real capture ``then`` with rows the
    first block has not seen: wider text or numbers."""
    _, records = pcap_records(then)
    last = 12 * 100 + pcap_records(MANY)[1][-1][0]
    moved = b"".join(struct.pack("<II", sec - records[0][0] + last + 100, usec) + body
                     for sec, usec, body in records)
    path = tmp_path / "long.pcap"
    path.write_bytes(shifted(MANY, 13, 100) + moved)
    return path


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.2f}ms" if seconds < 10 else f"{seconds:.1f}s"


def check_table(lines: list[str], recs: list[dict[str, Any]], width: int) -> list[int]:
    """Every row in the layout of the header above it (a cell starts where its header
    starts, a number's ends where its header ends), every number whole, every text the
    record's or elided as analyzer.fit elides; the header lines' indices."""
    headers: list[int] = []
    slots: list[tuple[str, int, int]] = []
    for i, line in enumerate(lines):
        if i - len(headers) == len(recs):
            break  # the footer
        assert len(line) <= width
        words = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", line)]
        if words[0][0] == "id":
            headers.append(i)
            slots = [w for w in words if w[0] != "bytes"]  # "bytes c/s": one column
            if len(slots) > 10:
                slots[9] = ("bytes", *slots[9][1:])
            continue
        rec = recs[i - len(headers)]
        assert len(words) == len(slots), line
        kind, who = rec["close"]["kind"], rec["close"]["initiator"]
        want = {"id": str(rec["id"]), "iRTT": ms(rec["handshake"]["irtt"]),
                "pkts": str(sum(rec["packets"].values())), "duration": ms(rec["duration"]),
                "bytes": "{client}/{server}".format(**rec["payload_bytes"])}
        texts = {"close": kind + (f":{who[0]}" if who and kind not in ("refused",
                                                                       "simultaneous") else ""),
                 "zeek": rec["conn_state"], "history": rec["history"] or "-"}
        for (name, start, end), (cell, a, b) in zip(slots, words):
            if name in want:  # a number: right-aligned, whole
                assert b == end and cell == want[name], (name, line)
                continue
            assert a == start, (name, line)
            if name in ("client", "server"):
                assert cell == elide_endpoint(rec[name], len(cell)), line
                assert cell.endswith(":" + rec[name].rsplit(":", 1)[1]), line
            elif name in texts:
                assert cell == elide(texts[name], len(cell)), line
    return headers


def held_rows(path: Path, width: int) -> tuple[list[str], list[int]]:
    """The table's lines written as analyzer.stream hands out batches, and after each
    batch the rows the writer keeps."""
    table = TableWriter(width)
    lines: list[str] = []
    held = []
    for batch in analyzer.stream(path):
        lines += table.add(batch)
        held.append(table.held)
    return lines + table.end(), held


@pytest.mark.parametrize("width", [80, 112])
def test_a_long_table_is_fitted_on_its_first_block(width: int, tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    """More rows than the table's first block: it is fitted on that block and every
    row is written as it comes. echo-lo.pcap after 2,080 connections brings a close
    kind wider than its column (simultaneous: elided in place) and, at 112 columns
    (every column shown, no room to spare), a duration wider than its column (1500.91ms:
    the table is fitted again with room for it and its header written again above that
    row; no digit lost). The writer keeps at most one block of rows, none once past it;
    streamed and in memory the same bytes; a second file's table has its own
    layout."""
    path = table_capture(tmp_path, ECHO)
    recs = list(analyzer.read(path).records())
    assert len(recs) == 2093 > TABLE_BLOCK
    monkeypatch.setenv("COLUMNS", str(width))
    status, text = cli(str(path), tmp=tmp_path)
    assert status == 0 and text == in_memory(path, "table")
    lines = text.splitlines()
    headers = check_table(lines, recs, width)
    assert lines[len(recs) + len(headers)].startswith("2093 connections (")
    row = {int(line.split()[0]): line for line in lines if not line.lstrip().startswith(
        ("id", "2093 ", "simultaneous)"))}
    assert "three_way:c " in row[0] and " simul…neous " in row[2091]
    if width == 80:  # duration is not shown: one layout
        assert headers == [0]
    else:  # the first 9-character duration: connection 2085 (echo-lo's 5)
        assert headers == [0, 2086] and lines[2087] == row[2085]
        assert " 1500.91ms " in row[2085] and " 5.75ms " in row[0]
    streamed, held = held_rows(path, width)
    assert streamed == lines[:len(recs) + len(headers)]
    past = held.index(0)  # the batch that went past the first block
    assert max(held) <= TABLE_BLOCK and held[past:] == [0] * (len(held) - past)
    _, both = cli("-j", "1", str(path), str(ECHO), tmp=tmp_path)
    assert both.split(f"== {ECHO}\n")[1] == in_memory(ECHO, "table")


@pytest.mark.skipif(not IPV6.exists(), reason="needs ../shared/corpus/zeek")
def test_later_ipv6_rows_are_elided_not_misaligned(tmp_path: Path, monkeypatch: Any) -> None:
    """Zeek's ipv6.pcap after 2,080 IPv4 connections, at 80 columns: its endpoints (44
    characters) elided to the block's 21 keeping port and host ([…94:aa7c:2e3e]:49185),
    its 107.01 ms handshake RTT whole (the table fitted again: header again)."""
    path = table_capture(tmp_path, IPV6)
    recs = list(analyzer.read(path).records())
    monkeypatch.setenv("COLUMNS", "80")
    _, text = cli(str(path), tmp=tmp_path)
    assert text == in_memory(path, "table")
    lines = text.splitlines()
    headers = check_table(lines, recs, 80)
    assert headers == [0, len(recs) - 6 + 1]  # above the first IPv6 row
    ipv6 = lines[headers[1] + 1:len(recs) + 2]
    assert len(ipv6) == 6 and all("[…" in line and "]:" in line for line in ipv6)
    irtt = ms(recs[-6]["handshake"]["irtt"])
    assert elide_endpoint(recs[-6]["client"], 21) in ipv6[0] and f" {irtt} " in ipv6[0]
    assert irtt == "107.01ms" and " 0.03ms " in lines[1]  # 8 characters after 6
    assert max(held_rows(path, 80)[1]) <= TABLE_BLOCK


# ---- --idle-timeout -------------------------------------------------------------------


def paused(tmp_path: Path, gap: int) -> Path:
    """Connection 0 of echo-lo.pcap (127.0.0.1:34835 -> :9502, 11 packets) with its
    packets from the 4th on (data, then the close) ``gap`` seconds later: an established
    connection quiet for ``gap`` s."""
    header, records = pcap_records(ECHO)
    conn = [r for r in records[:11]]
    moved = conn[:3] + [(sec + gap, usec, body) for sec, usec, body in conn[3:]]
    path = tmp_path / "paused.pcap"
    path.write_bytes(header + b"".join(struct.pack("<II", s, u) + b for s, u, b in moved))
    return path


def test_idle_timeout_splits_a_quiet_connection_alike_everywhere(tmp_path: Path,
                                                                 capsys: Any) -> None:
    path = paused(tmp_path, 30)
    one = list(analyzer.read(path).records())
    assert len(one) == 1 and one[0]["close"]["kind"] == "four_way"
    for timeout in (10, 29.5):
        two = list(analyzer.read(path, idle_timeout=timeout).records())
        assert [(r["first_packet"], r["last_packet"]) for r in two] == [(1, 3), (4, 11)]
        assert two[0]["close"]["kind"] == "open" and two[1]["roles_guessed"]  # no SYN
        streamed = [r for b in analyzer.stream(path, idle_timeout=timeout) for r in b.records()]
        assert streamed == two
        _, text = cli("--format", "jsonl", "--idle-timeout", str(timeout), str(path),
                      tmp=tmp_path)
        assert [json.loads(line) for line in text.splitlines()] == two
    assert len(list(analyzer.read(path, idle_timeout=31).records())) == 1
    # show finds connection 1 with the same option, its packets 4..11
    assert main(["show", str(path), "1", "--idle-timeout", "10"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("connection 1: client 127.0.0.1:34835 -> server 127.0.0.1:9502")
    assert [int(line.split()[0]) for line in shown.splitlines()[4:12]] == list(range(4, 12))
    assert main(["show", str(path), "1"]) == 2
    assert "no connection 1 (the file has 1: ids 0 to 0)" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--idle-timeout", "0"], "argument --idle-timeout: '0' is not a positive number"),
    (["--idle-timeout", "-5"], "'-5' is not a positive number of seconds"),
    (["--idle-timeout", "nan"], "'nan' is not a positive number of seconds"),
    (["--idle-timeout", "soon"], "'soon' is not a positive number of seconds"),
    (["--idle-timeout", "1e300"], "idle timeout 1e+300: give a number of seconds > 0"),
    (["--idle-timeout", "5", "--zeek-timers"], "an idle timeout and Zeek's timers"),
    (["--order", "last"], "argument --order: invalid choice: 'last'"),
    (["--order", "end", "--merge"], "--order end streams each file with the native engine"),
])
def test_bad_values_are_one_line(args: list[str], message: str) -> None:
    p = subprocess.run([sys.executable, "-m", "analyzer", "read", *args, str(ECHO)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert p.returncode == 2 and p.stdout == ""
    assert "Traceback" not in p.stderr
    assert message in p.stderr.splitlines()[-1]


def test_bad_values_in_the_library() -> None:
    for bad in (0, -1.0, float("inf"), float("nan"), "5", True):
        with pytest.raises(analyzer.HandshakeError, match="idle timeout"):
            analyzer.read(ECHO, idle_timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(analyzer.HandshakeError, match="idle timeout"):
            analyzer.stream(ECHO, idle_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(analyzer.HandshakeError, match="order 'time'"):
        analyzer.stream(ECHO, order="time")
    with pytest.raises(analyzer.HandshakeError, match="--close"):
        analyzer.stream(ECHO, close="closed")



def test_a_stream_closed_early_closes_its_file(tmp_path: Path) -> None:
    """``with analyzer.stream(...)`` (or .close()) ends the reading: the file is closed
    whether a batch was taken or not."""
    path = tmp_path / "copies.pcap"
    path.write_bytes(shifted(MANY, 30, 100))
    fds = len(os.listdir("/proc/self/fd"))
    with analyzer.stream(path) as s:
        first = next(s)
        assert first.n > 0 and not s.done
        assert len(os.listdir("/proc/self/fd")) == fds + 1
    assert len(os.listdir("/proc/self/fd")) == fds
    assert list(s) == []
    s = analyzer.stream(path)
    s.close()
    assert len(os.listdir("/proc/self/fd")) == fds


def test_show_finds_the_ids_of_read_with_zeek_timers(capsys: Any) -> None:
    """echo.pcapng (lo and any: every packet twice) is 13 connections, 23 with Zeek's
    timers; show takes --zeek-timers too, so read's id 20 is found with its endpoints."""
    path = ROOT / "captures" / "echo.pcapng"
    recs = list(analyzer.read(path, zeek_timers=True).records())
    assert len(recs) == 23 and len(analyzer.read(path)) == 13
    assert main(["show", str(path), "20", "--zeek-timers"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"connection 20: client {recs[20]['client']} -> server "
                            f"{recs[20]['server']}")
    assert f"history {recs[20]['history']}" in shown
    assert main(["show", str(path), "20"]) == 2
    assert "no connection 20 (the file has 13" in capsys.readouterr().err
