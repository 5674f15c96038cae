"""The compiled core under AddressSanitizer and UndefinedBehaviorSanitizer (issue 12).

The extension is built once with ``fuzz/build_sanitized.sh`` (clang's
``-fsanitize=address,undefined,pointer-overflow``, any report fatal) into a scratch
directory, and the commands below run on it: the crafted inputs of
tests/test_hostile_input.py, extreme times through ``feed_segment``, the fuzzer's
regression corpus, readers racing a feeding thread, offline, streamed and on a live
loopback capture, and tests/test_stream_core.py (the stream mode with a sweep before every
packet). Each of these failed on the code before the fixes (jsonl.c's ``NULL + 0`` on any
capture, the signed overflow in ``zeek_expired``, the use after free in ``Engine_conn``).
Skipped when no compiler with the sanitizer runtime is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import test_hostile_input as hostile

SANITIZER_REPORT = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def _runtime_present() -> bool:
    cc = shutil.which("clang") or shutil.which("gcc")
    if cc is None:
        return False
    name = "libclang_rt.asan-x86_64.so" if cc.endswith("clang") else "libasan.so"
    found = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True,
                           text=True).stdout.strip()
    return os.path.isabs(found) and os.path.exists(found)


pytestmark = pytest.mark.skipif(not _runtime_present(),
                                reason="needs clang (or gcc) with the ASan runtime")


@pytest.fixture(scope="module")
def san(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sanitized")
    subprocess.run([str(ROOT / "fuzz" / "build_sanitized.sh"), str(out)], check=True,
                   capture_output=True, env={**os.environ, "PYTHON": sys.executable},
                   timeout=600)
    return out / "run"


def sanitized(run: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    # Run from the scratch directory: the worktree's own (unsanitized) build must not be
    # imported from the current directory.
    p = subprocess.run([str(run), sys.executable, *argv], capture_output=True, text=True,
                       timeout=timeout, cwd=run.parent)
    for marker in SANITIZER_REPORT:
        assert marker not in p.stderr, p.stderr[-6000:]
    return p


def test_sanitized_build_is_the_one_imported(san: Path) -> None:
    p = sanitized(san, "-c", "import analyzer._engine as e; print(e.__file__)")
    assert p.stdout.strip().startswith(str(san.parent)), p.stdout


def test_captures_and_crafted_inputs(san: Path, tmp_path: Path) -> None:
    """Every bundled capture and every crafted case, each output format: no report.
    (jsonl.c's first put did ``NULL + 0``: clang's pointer-overflow check on any capture.)"""
    files = sorted((ROOT / "captures").glob("*.pcap*"))
    for kind in ("huge-caplen", "huge-caplen-gz", "pcapng-huge-block", "zero-records"):
        path = tmp_path / f"{kind}.bin"
        path.write_bytes(hostile._crafted(kind, 1))
        files.append(path)
    ts = tmp_path / "ts"
    ts.mkdir()
    files.append(hostile._tsoffset_capture(ts, (-5_000_000_000, 5_000_000_000)))
    for path in files:
        for fmt in ("jsonl", "json", "zeek"):
            p = sanitized(san, "-m", "analyzer", "read", "--format", fmt, str(path))
            assert p.returncode in (0, 2), (path, p.stderr[-3000:])
        # --zeek-timers takes the zeek_expired path whose subtraction overflowed
        p = sanitized(san, "-m", "analyzer", "read", "--zeek-timers", str(path))
        assert p.returncode in (0, 2), (path, p.stderr[-3000:])


def test_feed_segment_extreme_times(san: Path) -> None:
    """Times -2^63 and 2^63-1 through feed_segment, with and without Zeek's timers
    (before: signed overflow at zeek.c:555)."""
    code = (
        "import analyzer.records\n"
        "from analyzer import _engine\n"
        "from analyzer.fsm import table_bytes\n"
        "for timers in (False, True):\n"
        "    e = _engine.Engine(table_bytes(), zeek_timers=timers)\n"
        "    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])\n"
        "    for ts in (-(2**63), 2**63 - 1, -(2**63), 0, 2**63 - 1):\n"
        "        e.feed_segment(ts, a, b, 40000, 80, 0x02, seq=1)\n"
        "        e.feed_segment(ts, b, a, 80, 40000, 0x12, seq=5, ack=2)\n"
        "    e.finish()\n"
        "    print(_engine.render(e.columns(0, e.conn_count()), 'jsonl').count(b'\\n'))\n")
    p = sanitized(san, "-c", code)
    assert p.returncode == 0, p.stderr[-3000:]


def test_regression_corpus_under_sanitizers(san: Path) -> None:
    """The fuzzer's regression corpus (fuzz/regressions) and seeds, through the same
    entry points as the fuzzer (file reading, chunked feed, feed_segment)."""
    p = sanitized(san, str(ROOT / "fuzz" / "replay.py"), str(ROOT / "fuzz" / "regressions"),
                  str(ROOT / "fuzz" / "seeds"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "inputs" in p.stdout


def test_readers_racing_a_feeding_thread(san: Path) -> None:
    """Engine.feed in one thread (GIL released), conn()/transitions()/jsonl()/
    row_columns() in another: before the engine's lock, ASan found a heap use after free
    in Engine_conn within a second or two."""
    p = sanitized(san, str(TESTS / "race_readers.py"), "offline", "8")
    assert p.returncode == 0, p.stderr[-3000:]
    reads, conns = (int(x) for x in p.stdout.split()[1::2])
    assert reads > 100 and conns == 3000


def test_readers_racing_a_streamed_engine(san: Path) -> None:
    """A streamed engine fed in one thread (a sweep before every packet: connections
    written out and their Conn slots, transitions and Pends reused as it goes) while
    another take()s what is written out: no report, no connection lost."""
    p = sanitized(san, str(TESTS / "race_readers.py"), "stream", "6")
    assert p.returncode == 0, p.stderr[-3000:]
    reads, conns = (int(x) for x in p.stdout.split()[1::2])
    assert reads > 10 and conns >= 3000


def test_stream_core_under_sanitizers(san: Path) -> None:
    """tests/test_stream_core.py on the sanitized extension: every capture (and the Zeek
    corpus and other stacks' captures when ../shared is there) streamed with a sweep
    before every packet against the in-memory read, the hand-made cases of each
    write-out rule, the SYN flood, the flow table rehashing under deletions."""
    code = ("import sys, pytest, analyzer._engine as e\n"
            f"assert e.__file__.startswith({str(san.parent)!r}), e.__file__\n"
            "sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', sys.argv[1]]))\n")
    p = sanitized(san, "-c", code, str(TESTS / "test_stream_core.py"), timeout=1500)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    assert " passed" in p.stdout


CAN_CAPTURE = os.geteuid() == 0 and shutil.which("dumpcap") is not None


@pytest.mark.root
@pytest.mark.skipif(not CAN_CAPTURE, reason="live capture needs root and dumpcap")
def test_reader_hammering_a_live_capture(san: Path) -> None:
    """The reproducer of the issue (asan-uaf-background-sniff-race.py) on its own
    ephemeral port: analyzer.sniff(background=True) on loopback, clients connecting in a
    loop, the caller reading records()/record()/len() as fast as it can."""
    p = sanitized(san, str(TESTS / "race_readers.py"), "live", "12")
    assert p.returncode == 0, p.stderr[-3000:]
    reads, conns = (int(x) for x in p.stdout.split()[1::2])
    assert reads > 10 and conns > 100



@pytest.mark.skipif(shutil.which("clang") is None, reason="the libFuzzer harness needs clang")
def test_core_fuzzer_builds_and_replays_the_corpus(tmp_path: Path) -> None:
    """fuzz/fuzz_core.c (the C harness of the long campaigns and CI) still builds over the
    core's current files and runs the seeds and regressions without a finding."""
    out = tmp_path / "core"
    subprocess.run([str(ROOT / "fuzz" / "build_core_fuzzer.sh"), str(out)], check=True,
                   capture_output=True, env={**os.environ, "PYTHON": sys.executable},
                   timeout=600)
    p = subprocess.run([str(out / "fuzz_core"), "-runs=0", str(ROOT / "fuzz" / "regressions"),
                        str(ROOT / "fuzz" / "seeds")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "INITED" in p.stderr or "DONE" in p.stderr
