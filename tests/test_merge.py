"""``handshake read --merge``: rotated captures read as one, equal to the unsplit capture.

A real capture is made on loopback (a server on its own ephemeral port; long connections
that carry data across the rotation and short ones that come and go) by ``tcpdump -G 1``
(rotated every second, live), its files concatenated by ``mergecap -a`` into the
unsplit reference, then split again by ``tcpdump -r -C 1`` (every megabyte) and
``editcap -c`` (whose parts are made pcap, pcapng, gzip and raw-IP). Merged, each set
gives the reference's records field for field, whatever order the files are named in.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pcapgen
import pytest

import analyzer
from analyzer.merge import MergedFiles

ROOT = Path(__file__).resolve().parent.parent
FILE_FIELDS = ("first_file", "first_file_packet", "last_file", "last_file_packet")

needs_capture = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("tcpdump", "mergecap", "editcap")),
    reason="needs root, tcpdump, mergecap and editcap")


def handshake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, check=False)


def jsonl(*args: str) -> list[dict[str, Any]]:
    done = handshake("read", "--format", "jsonl", *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def without_files(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in FILE_FIELDS} for r in recs]


def _traffic(server: socket.socket, seconds: float) -> None:
    """Echo service on ``server``: two long connections that send a burst every 20 ms
    for ``seconds`` (several MB, so they cross every rotation), and short connections
    (normal close, server close, reset) opened all along."""
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionResetError):  # the aborting clients
            while data := conn.recv(1 << 16):
                if data.startswith(b"bye-server"):
                    return  # the server closes first
                if data.startswith((b"small", b"bye")):
                    conn.sendall(data)

    def long_client() -> None:
        with socket.create_connection(("127.0.0.1", port)) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                c.sendall(b"x" * 65536)
                time.sleep(0.02)  # paces the traffic so that it spans the rotations
            c.sendall(b"bye")
            c.recv(16)

    threading.Thread(target=serve, daemon=True).start()
    longs = [threading.Thread(target=long_client) for _ in range(2)]
    for t in longs:
        t.start()
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        with socket.create_connection(("127.0.0.1", port)) as c:
            if n % 3 == 0:
                c.sendall(b"small")
                c.recv(16)
            elif n % 3 == 1:
                c.sendall(b"bye-server")
                c.recv(16)
            else:  # abort: RST
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        n += 1
        time.sleep(0.05)
    for t in longs:
        t.join()
    stop.set()


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory with ``g-*.pcap`` (tcpdump -G 1, live) and ``full.pcap`` (them joined)."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("tcpdump", "mergecap",
                                                                "editcap")):
        pytest.skip("needs root, tcpdump, mergecap and editcap")
    work = tmp_path_factory.mktemp("rotated")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # its own ephemeral port: other tests use loopback
        server.listen(64)
        port = server.getsockname()[1]
        # -Z root: tcpdump keeps the rights to open its next file in this directory.
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode",
                                 "-Z", "root", "-G", "1", "-w", str(work / "g-%s.pcap"),
                                 f"tcp port {port}"], stderr=subprocess.PIPE, text=True)
        try:
            assert dump.stderr is not None and "listening on" in dump.stderr.readline()
            _traffic(server, 2.6)
        finally:
            dump.terminate()
            dump.wait()
    parts = sorted(glob.glob(str(work / "g-*.pcap")))
    assert len(parts) >= 3, parts
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(work / "full.pcap"), *parts],
                   check=True)
    return work


def _check_merged(files: list[str], full: Path) -> list[dict[str, Any]]:
    """Merged (files in a shuffled order) equals the unsplit file, every jsonl field but
    those naming files; the table is the same bytes. Returns the merged records."""
    shuffled = files[:]
    random.Random(len(files)).shuffle(shuffled)
    merged = jsonl("--merge", *shuffled)
    reference = jsonl(str(full))
    assert len(merged) == len(reference) > 10
    assert without_files(merged) == reference
    table = handshake("read", "--merge", *shuffled)
    assert table.returncode == 0, table.stderr
    assert table.stdout == handshake("read", str(full)).stdout
    # The test means something: connections do cross file boundaries.
    crossing = [r for r in merged if r["first_file"] != r["last_file"]]
    assert crossing
    # And each packet named by file and number is that packet.
    for rec in crossing[:2]:
        for which, t in (("first", rec["start"]), ("last", rec["end"])):
            cap = analyzer.read(rec[f"{which}_file"], record=-2)
            row = cap.packets[cap.packets["packet"] == rec[f"{which}_file_packet"]]
            assert len(row) == 1
            assert row["time"].iloc[0].value // 1000 == round(t * 1e6)  # tcpdump: us
    return merged


@needs_capture
def test_tcpdump_rotated_by_time_merges_to_the_unsplit_capture(rotated: Path) -> None:
    files = sorted(glob.glob(str(rotated / "g-*.pcap")))
    merged = _check_merged(files, rotated / "full.pcap")
    # Read file by file (no --merge) the long connections fall apart into pieces.
    pieces = jsonl(*files)
    assert len(pieces) > len(merged)
    # ... while merged, a connection opened in one file is closed in another.
    assert any(r["handshake"]["complete"] and r["close"]["kind"] in ("four_way", "three_way")
               for r in merged if r["first_file"] != r["last_file"])


@needs_capture
def test_tcpdump_rotated_by_size_merges_to_the_unsplit_capture(rotated: Path,
                                                                tmp_path: Path) -> None:
    subprocess.run(["tcpdump", "-r", str(rotated / "full.pcap"), "-C", "1", "-w",
                    str(tmp_path / "rot"), "-Z", "root"], check=True, capture_output=True)
    files = sorted(glob.glob(str(tmp_path / "rot*")))
    assert len(files) >= 4
    _check_merged(files, rotated / "full.pcap")


def _raw_ip(src: Path, dst: Path) -> None:
    """The same packets without their Ethernet headers (link type 101, raw IP)."""
    data = src.read_bytes()
    out = bytearray(data[:20] + struct.pack("<I", pcapgen.LT_RAW))
    pos = 24
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, pos)
        body = data[pos + 16:pos + 16 + incl]
        out += struct.pack("<IIII", sec, frac, incl - 14, orig - 14) + body[14:]
        pos += 16 + incl
    dst.write_bytes(bytes(out))


@needs_capture
def test_editcap_parts_in_mixed_formats_and_link_types(rotated: Path, tmp_path: Path) -> None:
    subprocess.run(["editcap", "-F", "pcap", "-c", "150", str(rotated / "full.pcap"),
                    str(tmp_path / "cut.pcap")], check=True)
    parts = sorted(glob.glob(str(tmp_path / "cut_*.pcap")))
    assert len(parts) >= 4
    files = []
    for i, part in enumerate(parts):
        p = Path(part)
        if i % 4 == 1:  # pcapng
            subprocess.run(["editcap", "-F", "pcapng", part, part + "ng"], check=True)
            files.append(part + "ng")
        elif i % 4 == 2:  # gzip
            Path(part + ".gz").write_bytes(gzip.compress(p.read_bytes()))
            files.append(part + ".gz")
        elif i % 4 == 3:  # another link type
            _raw_ip(p, p.with_suffix(".raw.pcap"))
            files.append(str(p.with_suffix(".raw.pcap")))
        else:
            files.append(part)
    _check_merged(files, rotated / "full.pcap")


# ---- hand-made cases: what a real stack does not produce on demand ------------------

def _conn_files(tmp_path: Path) -> tuple[str, str]:
    """Two files whose packets have the same timestamps, pairwise."""
    files = []
    for name, client in (("a", ("10.0.0.1", 1111)), ("b", ("10.0.0.3", 2222))):
        conv = pcapgen.conversation(client, ("10.0.0.2", 80))
        frames = [pcapgen.Packet(p.ts_ns, pcapgen.frame(pcapgen.LT_RAW, p.data))
                  for p in conv.packets]
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(pcapgen.pcap_file(frames, pcapgen.LT_RAW))
        files.append(str(path))
    return files[0], files[1]


def test_equal_timestamps_keep_the_file_order(tmp_path: Path) -> None:
    fa, fb = _conn_files(tmp_path)
    ab = analyzer.read([fa, fb], merge=True)
    ba = analyzer.read([fb, fa], merge=True)
    assert [r["client"] for r in ab.records()] == ["10.0.0.1:1111", "10.0.0.3:2222"]
    assert [r["client"] for r in ba.records()] == ["10.0.0.3:2222", "10.0.0.1:1111"]
    assert isinstance(ab.merged, MergedFiles)
    # Alternating runs: a1 b1 a2 b2 ... (each tie goes to the first file named).
    assert ab.merged.runs[:3] == ((1, 0, 1), (2, 1, 1), (3, 0, 2))
    assert ab.merged.locate(4) == (fb, 2)
    with pytest.raises(IndexError):
        ab.merged.locate(0)


def test_a_corrupt_file_ends_there_and_the_others_are_merged(tmp_path: Path) -> None:
    fa, fb = _conn_files(tmp_path)
    data = bytearray(Path(fb).read_bytes())
    first = 24 + 16 + struct.unpack_from("<I", data, 24 + 8)[0]
    struct.pack_into("<I", data, first + 8, 0x7FFFFFFF)  # the second record's caplen
    Path(fb).write_bytes(bytes(data))
    done = handshake("read", "--merge", "--format", "jsonl", fa, fb)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"handshake: error: {fb}: corrupt record")
    assert f"at byte {first}" in err[0]
    recs = [json.loads(line) for line in done.stdout.splitlines()]
    assert recs[0]["client"] == "10.0.0.1:1111" and recs[0]["close"]["kind"] == "four_way"
    assert recs[1]["client"] == "10.0.0.3:2222" and recs[1]["packets"]["client"] == 1


def test_a_list_without_merge_is_a_usage_error(tmp_path: Path) -> None:
    fa, fb = _conn_files(tmp_path)
    with pytest.raises(analyzer.HandshakeError, match="merge=True"):
        analyzer.read([fa, fb])
    assert len(analyzer.read([fa])) == 1
