"""``handshake read -j N``: the same bytes as ``-j 1`` in every format, and one progress
bar for all inputs on a terminal (a pty here), nothing when stderr is not a terminal."""

from __future__ import annotations

import gzip
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def handshake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, check=False, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The sample captures (pcap, pcapng, Linux cooked), one gzipped, one cut short."""
    work = tmp_path_factory.mktemp("inputs")
    gz = work / "many-clients.pcap.gz"
    gz.write_bytes(gzip.compress((CAPTURES / "many-clients.pcap").read_bytes()))
    cut = work / "echo-cut.pcap"
    cut.write_bytes((CAPTURES / "echo-lo.pcap").read_bytes()[:-30])
    return [str(CAPTURES / "echo-lo.pcap"), str(gz), str(CAPTURES / "echo.pcapng"),
            str(cut), str(CAPTURES / "echo-any.pcap"), str(CAPTURES / "many-clients.pcap")]


def _zeek_body(text: str) -> str:  # #open/#close carry the wall-clock time
    return "".join(line for line in text.splitlines(True)
                   if not line.startswith(("#open", "#close")))


@pytest.mark.parametrize("fmt", ["table", "jsonl", "json", "csv", "zeek"])
def test_parallel_output_is_the_serial_output(inputs: list[str], fmt: str) -> None:
    serial = handshake("read", "-j", "1", "--format", fmt, *inputs)
    parallel = handshake("read", "-j", "3", "--format", fmt, *inputs)
    assert serial.returncode == parallel.returncode == 0
    # The cut file's warning, in the same place.
    assert serial.stderr == parallel.stderr != ""
    assert "echo-cut.pcap: truncated" in serial.stderr
    if fmt == "zeek":
        assert _zeek_body(serial.stdout) == _zeek_body(parallel.stdout)
    else:
        assert serial.stdout == parallel.stdout
    if fmt == "json":
        doc = json.loads(parallel.stdout)
        assert [d["file"] for d in doc] == inputs
    if fmt == "jsonl":
        files = [json.loads(line)["file"] for line in parallel.stdout.splitlines()]
        assert sorted(set(files), key=inputs.index) == inputs
        assert files == sorted(files, key=inputs.index)  # in the order given


def test_parallel_parquet_is_the_serial_parquet(inputs: list[str], tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    for jobs in ("1", "2"):
        done = handshake("read", "-j", jobs, "--format", "parquet", "-o",
                         str(tmp_path / jobs), *inputs)
        assert done.returncode == 0, done.stderr
    one, two = (pd.read_parquet(tmp_path / j) for j in ("1", "2"))
    assert len(one) == sum(len(json.loads(handshake("read", "--format", "json", p).stdout)
                               ["connections"]) for p in inputs)
    key = ["file", "id"]
    one = one.astype({"file": str}).sort_values(key).reset_index(drop=True)
    two = two.astype({"file": str}).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(one, two)
    assert set(one["file"]) == set(inputs)


def test_a_missing_file_is_one_line_in_its_place_and_the_others_are_read(
        inputs: list[str]) -> None:
    args = ("--format", "json", inputs[0], "/nonexistent.pcap", inputs[2], inputs[3])
    serial, parallel = handshake("read", "-j", "1", *args), handshake("read", "-j", "2", *args)
    assert serial.returncode == parallel.returncode == 2
    assert serial.stdout == parallel.stdout
    assert [d["file"] for d in json.loads(parallel.stdout)] == [inputs[0], inputs[2], inputs[3]]
    assert parallel.stderr.splitlines() == serial.stderr.splitlines() == [
        "handshake: error: /nonexistent.pcap: no such file",
        f"handshake: warning: {inputs[3]}: truncated at byte 11431 after packet 130"]


def _on_a_pty(*args: str) -> tuple[str, str]:
    """Run handshake with stderr on a pseudo-terminal: (stdout, what the terminal got)."""
    master, slave = os.openpty()
    out = tempfile.TemporaryFile("w+")  # not a pipe: nobody reads it while the pty is read
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", *args], stdout=out,
                            stderr=slave, cwd=ROOT, text=True)
    os.close(slave)
    seen = b""
    while True:  # until the child closes its end (EOF or EIO on Linux)
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "no progress output within a minute"
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert proc.wait(timeout=60) == 0
    out.seek(0)
    return out.read(), seen.decode(errors="replace")


@pytest.mark.parametrize("mode", [("-j", "2"), ("-j", "1"), ("--merge",)])
def test_one_progress_bar_for_all_inputs_on_a_terminal(inputs: list[str], mode: tuple[str, ...]
                                                        ) -> None:
    files = [p for p in inputs if "cut" not in p]
    total = sum(os.path.getsize(p) for p in files)
    out, tty = _on_a_pty("read", *mode, "--format", "jsonl", *files)
    lines = [chunk for chunk in tty.replace("\x1b[K", "").split("\r") if chunk.strip()]
    assert lines, tty
    # The last drawing is the whole job: every input's bytes, packets/s, connections.
    last = lines[-1]
    assert last.startswith(f"{len(files)} files ")
    assert f"/ {total / 1e6:.1f} MB  100%" in last or f"/ {total / 1e3:.1f} kB  100%" in last
    assert "packets/s" in last
    conns = len(out.splitlines())
    assert f" {conns:,} connections" in last
    assert tty.endswith("\r\x1b[K")  # the line is cleared at the end


def test_no_progress_when_stderr_is_not_a_terminal(inputs: list[str]) -> None:
    files = [p for p in inputs if "cut" not in p]
    for mode in (("-j", "2"), ("--merge",)):
        done = handshake("read", *mode, *files)
        assert done.returncode == 0 and done.stderr == ""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_bar_never_cuts_into_output_on_the_same_terminal(inputs: list[str], jobs: str
                                                             ) -> None:
    """stdout and stderr on one terminal: the bar leaves the line before each part."""
    import re

    files = [p for p in inputs if "cut" not in p]
    expected = handshake("read", "-j", jobs, "--format", "jsonl", *files).stdout
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "read", "-j", jobs, "--format",
                             "jsonl", *files], stdout=slave, stderr=slave, cwd=ROOT)
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = seen.decode().replace("\r\n", "\n")
    assert "connections\x1b[K" in text  # the bar was drawn
    # Output never starts on the bar's line: a drawing is followed by a redraw or by
    # the clearing of the line ("\r\x1b[K"), never directly by output text.
    assert not re.search(r"\r[^\r\n\x1b]+\x1b\[K[^\r]", text)
    # Take out every drawing ("\r...ESC[K") of the bar: the output is left whole.
    assert re.sub(r"\r[^\r\n]*?\x1b\[K", "", text) == expected
