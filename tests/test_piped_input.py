"""Input that cannot be seeked (issue 13, item 2): ``-``, ``/dev/stdin``, ``<(zcat f.gz)``
and named pipes give the same results as the file, in read, show, plot and report; gzip is
recognised from the stream's first bytes. Before, each ended in a traceback
(``io.UnsupportedOperation: File or stream is not seekable``) and ``-`` was "no such file".
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import analyzer

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = ROOT / "captures" / "echo-lo.pcap"
NG = ROOT / "captures" / "echo.pcapng"


def run(argv: list[str], stdin: bytes | None = None, shell: bool = False
        ) -> subprocess.CompletedProcess[bytes]:
    p = subprocess.run(argv if not shell else ["bash", "-c", argv[0]], input=stdin,
                       capture_output=True, cwd=ROOT, timeout=300)
    assert b"Traceback" not in p.stderr, p.stderr.decode()
    return p


def handshake(*args: str) -> list[str]:
    return [sys.executable, "-m", "analyzer", *args]


def records(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode().splitlines()]


@pytest.fixture(scope="module")
def expected() -> dict[Path, list[dict[str, object]]]:
    return {f: records(run(handshake("read", "--format", "jsonl", str(f))).stdout)
            for f in (CAPTURE, NG)}


@pytest.mark.parametrize("capture", [CAPTURE, NG], ids=["pcap", "pcapng"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
def test_read_from_standard_input(expected: dict[Path, list[dict[str, object]]],
                                  capture: Path, compressed: bool, name: str) -> None:
    data = capture.read_bytes()
    p = run(handshake("read", "--format", "jsonl", name),
            stdin=gzip.compress(data) if compressed else data)
    assert p.returncode == 0 and p.stderr == b"", p.stderr
    assert records(p.stdout) == expected[capture]


def test_read_from_a_pipe_not_a_file(expected: dict[Path, list[dict[str, object]]],
                                     tmp_path: Path) -> None:
    """A real pipe (``cat f | handshake read -``), not a regular file on stdin."""
    gz = tmp_path / "echo.pcap.gz"
    gz.write_bytes(gzip.compress(CAPTURE.read_bytes()))
    cmd = " ".join(handshake("read", "--format", "jsonl", "-"))
    p = run([f"cat {gz} | {cmd}"], shell=True)
    assert p.returncode == 0, p.stderr
    assert records(p.stdout) == expected[CAPTURE]


def test_process_substitution(expected: dict[Path, list[dict[str, object]]],
                              tmp_path: Path) -> None:
    """``handshake read <(zcat f.gz)``: a /dev/fd path to a pipe."""
    gz = tmp_path / "echo.pcap.gz"
    gz.write_bytes(gzip.compress(CAPTURE.read_bytes()))
    cmd = " ".join(handshake("read", "--format", "jsonl"))
    p = run([f"{cmd} <(zcat {gz})"], shell=True)
    assert p.returncode == 0, p.stderr
    assert records(p.stdout) == expected[CAPTURE]


def _fifo_with(tmp_path: Path, data: bytes, times: int = 1) -> Path:
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        for _ in range(times):
            with open(fifo, "wb") as w:
                w.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return fifo


def test_named_pipe(expected: dict[Path, list[dict[str, object]]], tmp_path: Path) -> None:
    fifo = _fifo_with(tmp_path, CAPTURE.read_bytes())
    p = run(handshake("read", "--format", "jsonl", str(fifo)))
    assert p.returncode == 0, p.stderr
    assert records(p.stdout) == expected[CAPTURE]


def test_named_pipe_in_the_library(tmp_path: Path) -> None:
    """analyzer.read on a pipe, then what reads the input again (the packet table): from
    the copy made while streaming, the same rows as from the file."""
    pytest.importorskip("pandas")
    fifo = _fifo_with(tmp_path, gzip.compress(CAPTURE.read_bytes()))
    cap = analyzer.read(str(fifo))
    want = analyzer.read(str(CAPTURE))
    assert list(cap.records()) == list(want.records())
    assert cap.packets.equals(want.packets)
    spool = cap.spool.path
    assert os.path.exists(spool)
    del cap
    import gc

    gc.collect()
    assert not os.path.exists(spool)  # the copy goes with the Capture


def test_show_from_stdin() -> None:
    want = run(handshake("show", str(CAPTURE), "0"))
    got = run(handshake("show", "-", "0"), stdin=CAPTURE.read_bytes())
    assert got.returncode == 0 and want.returncode == 0, got.stderr
    assert got.stdout == want.stdout


def test_plot_and_report_from_stdin(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = CAPTURE.read_bytes()
    svg = tmp_path / "ladder.svg"
    p = run(handshake("plot", "-", "--kind", "ladder", "--conn", "0", "-o", str(svg)),
            stdin=data)
    assert p.returncode == 0, p.stderr
    assert svg.read_bytes().startswith(b"<?xml")
    html = tmp_path / "report.html"
    p = run(handshake("report", "-", "-o", str(html), "--limit", "1"), stdin=data)
    assert p.returncode == 0, p.stderr
    assert b"<html" in html.read_bytes()[:200].lower()


def test_stdin_not_a_capture() -> None:
    p = run(handshake("read", "-"), stdin=b"hello world\n")
    assert p.returncode == 2
    assert p.stderr.decode() == ("handshake: error: -: not a pcap or pcapng file (starts "
                                 "with 0x68656c6c)\n")


def test_empty_stdin() -> None:
    p = run(handshake("read", "-"), stdin=b"")
    assert p.returncode == 2
    assert p.stderr.decode() == "handshake: error: -: empty file, not a capture\n"


def test_pyshark_engine_from_stdin(expected: dict[Path, list[dict[str, object]]]) -> None:
    """tshark needs a file it can read twice: the pipe is copied first, results equal."""
    from analyzer.engines.pyshark_engine import find_tshark

    try:
        find_tshark()
    except analyzer.HandshakeError:
        pytest.skip("needs pyshark and tshark")
    p = run(handshake("read", "--format", "jsonl", "--engine", "pyshark", "-"),
            stdin=CAPTURE.read_bytes())
    assert p.returncode == 0, p.stderr
    assert records(p.stdout) == expected[CAPTURE]
