"""Crafted input (issue 12): corrupt record lengths, absurd timestamps and gzip errors.

Each case is built here (tests/pcapgen.py), so nothing needs ``../shared``; where the
outside reliability test left its own reproducer in ``../shared/reliability`` it is read
too, and skipped when absent. The rules held to are libpcap's: a record may not claim
more than its link type's maximum snapshot length (256 KiB), and reading is linear in the
input whatever the record headers claim.
"""

from __future__ import annotations

import json
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pcapgen as g  # tests/ is on sys.path (pytest's rootdir-relative import)
import pytest

import analyzer
from analyzer import _engine
from analyzer.fsm import table_bytes

ROOT = Path(__file__).resolve().parent.parent
REPRO = ROOT.parent / "shared" / "reliability"
CONV = g.conversation()
FRAMES = g.framed(CONV.packets, g.LT_ETHERNET)
OFFSETS = g.record_offsets(FRAMES)
MiB = 1 << 20


def handshake(*args: str | Path, stdin: bytes | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)],
                       input=stdin.decode("latin-1") if stdin is not None else None,
                       capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                       encoding="latin-1")
    assert "Traceback" not in p.stderr, p.stderr
    return p


def one_error(p: subprocess.CompletedProcess[str], path: str | Path) -> str:
    assert p.returncode == 2, p
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"handshake: error: {path}: "), p.stderr
    return lines[0]


def huge_caplen_pcap(tail_bytes: int, caplen: int = 0xFFFFFFF0) -> bytes:
    """The reproducer's shape: snaplen 0xFFFFFFFF in the header, the first record claims
    ``caplen`` bytes, then ``tail_bytes`` of anything."""
    head = g.pcap_header(g.LT_ETHERNET, snaplen=0xFFFFFFFF)
    rec = struct.pack("<IIII", 1, 0, caplen, caplen)
    return head + rec + bytes(tail_bytes)


# ---- item 2: a corrupt record length is an error at its offset, found at once -------------


def test_huge_caplen_with_snaplen_ffffffff_is_corrupt_at_byte_24(tmp_path: Path) -> None:
    """Before: the header's snaplen lifted the limit to 4 GiB, the rest of the file was
    buffered (quadratic copying) and reading ended with "truncated at byte 24", exit 0."""
    path = tmp_path / "huge.pcap"
    path.write_bytes(huge_caplen_pcap(8 * MiB))
    p = handshake("read", path)
    line = one_error(p, path)
    assert "corrupt record: captured length 4294967280 exceeds 262144" in line
    assert "at byte 24 (after packet 0)" in line
    cap = analyzer.read(str(path))
    assert cap.error is not None and (cap.error.offset, cap.error.packet) == (24, 0)
    assert cap.warnings == []


def test_caplen_above_256k_is_corrupt_whatever_the_snaplen(tmp_path: Path) -> None:
    """Three good packets, then a record of 300,000 bytes in a file whose header allows
    4 GiB: libpcap refuses it ("invalid packet capture length"), so do we, and the good
    packets before it are kept."""
    data = g.pcap_file(FRAMES[:3], g.LT_ETHERNET, snaplen=0xFFFFFFFF)
    big = g.Packet(FRAMES[3].ts_ns, bytes(300_000))
    data += g.pcap_record(big) + b"".join(g.pcap_record(p) for p in FRAMES[4:])
    path = tmp_path / "big-record.pcap"
    path.write_bytes(data)
    cap = analyzer.read(str(path))
    assert cap.error is not None
    assert (cap.error.offset, cap.error.packet) == (OFFSETS[3], 3)
    assert "captured length 300000 exceeds 262144" in str(cap.error)
    assert len(cap) == 1 and cap.stats["packets_framed"] == 3


def test_record_of_exactly_256k_is_read(tmp_path: Path) -> None:
    """The limit itself is allowed (libpcap's MAXIMUM_SNAPLEN is inclusive)."""
    data = g.pcap_file(FRAMES[:3], g.LT_ETHERNET)
    data += g.pcap_record(g.Packet(FRAMES[3].ts_ns, bytes(262144)))
    path = tmp_path / "max.pcap"
    path.write_bytes(data)
    cap = analyzer.read(str(path))
    assert cap.error is None and cap.warnings == []
    assert cap.stats["packets_framed"] == 4


def test_pcapng_packet_block_with_huge_caplen_is_corrupt_before_it_is_buffered(
        tmp_path: Path) -> None:
    """An EPB whose block length is plausible (15 MiB, under libpcap's 16 MiB) but whose
    captured length is 4 GiB: reported at the block's offset as soon as its fixed part is
    read, not after buffering the block."""
    iface = g.Interface(g.LT_ETHERNET)
    good = g.pcapng_file(FRAMES[:3], [iface])
    blen = 15 * MiB
    bad = struct.pack("<IIIIIII", 6, blen, 0, 0, 0, 0xFFFFFFF0, 0xFFFFFFF0)
    path = tmp_path / "ng-huge.pcapng"
    path.write_bytes(good + bad + bytes(blen - len(bad) - 4) + struct.pack("<I", blen))
    cap = analyzer.read(str(path))
    assert cap.error is not None and (cap.error.offset, cap.error.packet) == (len(good), 3)
    assert "captured length 4294967280 exceeds 262144" in str(cap.error)
    assert len(cap) == 1


def test_pcapng_block_over_16_mib_is_corrupt(tmp_path: Path) -> None:
    """libpcap's pcapng reader refuses blocks over 16 MiB (our limit was 64 MiB)."""
    iface = g.Interface(g.LT_ETHERNET)
    good = g.pcapng_file(FRAMES[:3], [iface])
    path = tmp_path / "ng-block.pcapng"
    path.write_bytes(good + struct.pack("<II", 5, 20 * MiB) + bytes(MiB))
    cap = analyzer.read(str(path))
    assert cap.error is not None and cap.error.offset == len(good)
    assert "corrupt pcapng block: length 20971520" in str(cap.error)


def test_gzip_bomb_with_huge_caplen_is_refused_at_once(tmp_path: Path) -> None:
    """The 130 KB gzip of the reproducer took 27.8 s and 299 MB: now one line at once."""
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(g.gz(huge_caplen_pcap(64 * MiB)))
    assert path.stat().st_size < 100_000
    start = time.monotonic()
    line = one_error(handshake("read", path), path)
    assert "at byte 24 (after packet 0)" in line
    assert time.monotonic() - start < 60  # generous: the old code is quadratic (minutes)


@pytest.mark.skipif(not (REPRO / "dos-gzip-huge-caplen-128MiB.pcap.gz").is_file(),
                    reason="../shared/reliability not beside the clone")
@pytest.mark.parametrize("name", ["dos-huge-caplen-snaplen-ffffffff-small.pcap",
                                  "dos-gzip-huge-caplen-128MiB.pcap.gz"])
def test_reliability_reproducers_huge_caplen(name: str) -> None:
    path = REPRO / name
    line = one_error(handshake("read", path), path)
    assert "captured length 4294967280 exceeds 262144 at byte 24 (after packet 0)" in line


# ---- item 5: every error names its place ---------------------------------------------------


def test_unsupported_link_type_in_pcap_header_names_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "lt147.pcap"
    path.write_bytes(g.pcap_file(FRAMES, 147))
    line = one_error(handshake("read", path), path)
    assert "unsupported link type 147 in the file header at byte 20 (after packet 0)" in line


def test_gzip_bad_crc_names_byte_and_packet(tmp_path: Path) -> None:
    data = g.pcap_file(FRAMES, g.LT_ETHERNET)
    z = bytearray(g.gz(data))
    z[-6] ^= 0xFF  # the CRC: every byte decompressed, the check fails at the end
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(z))
    p = handshake("read", path, "--format", "jsonl")
    line = one_error(p, path)
    assert "gzip read error" in line and "CRC" in line
    assert f"at byte {len(data)} (after packet {len(FRAMES)})" in line
    assert len(p.stdout.splitlines()) == 1  # the connection is still reported


def test_gzip_corrupt_deflate_names_byte_and_packet(tmp_path: Path) -> None:
    """A flipped byte in the middle of a stream flushed after every record: decompression
    fails there; the error says at which decompressed byte and after which packet, and
    names the compressed offset it failed at or before."""
    data = g.pcap_file(FRAMES, g.LT_ETHERNET)
    z = bytearray(g.gz(data, flush_every=OFFSETS[1:]))
    z[len(z) // 2] ^= 0x55
    path = tmp_path / "bad.pcap.gz"
    path.write_bytes(bytes(z))
    try:
        zlib.decompress(bytes(z), 31)
    except zlib.error:
        pass
    else:  # pragma: no cover - the flip happened to keep the stream valid
        pytest.skip("the flipped byte left a valid stream")
    cap = analyzer.read(str(path))
    assert cap.error is not None, cap.warnings
    message = str(cap.error)
    assert "gzip" in message and "compressed byte" in message
    assert f"at byte {cap.error.offset} (after packet {cap.error.packet})" in message
    assert cap.error.packet is not None and cap.error.packet <= len(FRAMES)


# ---- item 3: absurd timestamps: one rule in both engines ----------------------------------

EDGE_TIMES = [-(2**63), 2**63 - 1]


def _segment_engine() -> _engine.Engine:
    import analyzer.records  # noqa: F401  (sets the engine's names for jsonl)

    e = _engine.Engine(table_bytes())
    a, b = g.addr("10.0.0.1"), g.addr("10.0.0.2")
    e.feed_segment(EDGE_TIMES[0], a, b, 40000, 80, g.SYN, seq=1)
    e.feed_segment(EDGE_TIMES[1], b, a, 80, 40000, g.SYN | g.ACK, seq=5, ack=2)
    e.finish()
    return e


def test_feed_segment_extreme_times_are_clamped_and_counted() -> None:
    """Times -2^63 and 2^63-1 (the reproducer ubsan-zeek555-feed_segment.py): clamped to
    0 and 2^62 ns, counted, and the jsonl equals the Python record (before, the jsonl
    duration was -9223372036.854775808 and json's +9223372036.854776)."""
    from analyzer.results import engine_batch

    e = _segment_engine()
    stats = e.stats()
    assert (stats["ts_clamped"], stats["ts_clamped_first"]) == (2, 1)
    batch = engine_batch(e)
    lines = [json.loads(x) for x in batch.render("jsonl").decode().splitlines()]
    for rec, line in zip(batch.records(), lines, strict=True):
        assert json.loads(json.dumps(rec)) == line
        assert line["duration"] >= 0
        assert 0 <= line["start"] <= 2**62 / 1e9 and 0 <= line["end"] <= 2**62 / 1e9


def _tsoffset_capture(tmp_path: Path, offsets: tuple[int, int]) -> Path:
    """The conversation over two interfaces whose if_tsoffset are ``offsets`` seconds:
    packets alternate between them."""
    ifaces = [g.Interface(g.LT_ETHERNET, tsresol=9, tsoffset=o) for o in offsets]
    pk = [g.Packet(p.ts_ns + offsets[k % 2] * g.NS, p.data, k % 2)
          for k, p in enumerate(FRAMES)]
    path = tmp_path / "tsoffset.pcapng"
    path.write_bytes(g.pcapng_file(pk, ifaces))
    return path


def test_pcapng_tsoffset_out_of_range_warns_and_agrees(tmp_path: Path) -> None:
    """if_tsoffset -5e9 s and +5e9 s (reproducer ubsan-zeek555-pyshark-ts.pcapng): every
    time is clamped into 1970..2116, one warning names the count and the first packet,
    jsonl and json agree, and each duration is its end minus its start (no wrap: the
    times jump back and forth between the two ends, so some are negative)."""
    path = _tsoffset_capture(tmp_path, (-5_000_000_000, 5_000_000_000))
    p = handshake("read", path, "--format", "jsonl")
    assert p.returncode == 0
    assert p.stderr == (f"handshake: warning: {path}: {len(FRAMES)} packet times outside "
                        "1970-01-01..2116-02-20 (first: packet 1), clamped to that range\n")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    doc = json.loads(handshake("read", path, "--format", "json").stdout)
    assert lines == doc["connections"]
    for r in lines:
        assert r["duration"] == pytest.approx(r["end"] - r["start"])
        assert abs(r["duration"]) <= 2**62 / 1e9


def test_times_in_range_give_no_warning(tmp_path: Path) -> None:
    path = _tsoffset_capture(tmp_path, (1_600_000_000, 1_600_000_000))
    cap = analyzer.read(str(path))
    assert cap.warnings == [] and cap.stats["ts_clamped"] == 0


def _has_tshark() -> bool:
    try:
        from analyzer.engines.pyshark_engine import find_tshark

        find_tshark()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _has_tshark(), reason="needs pyshark and tshark")
@pytest.mark.parametrize("offsets", [(-5_000_000_000, 5_000_000_000),
                                     (100_000_000_000, 100_000_000_000)])
def test_pyshark_engine_same_rule(tmp_path: Path, offsets: tuple[int, int]) -> None:
    """Times beyond +-9.2e9 s raised OverflowError in the pyshark engine (traceback, exit
    1): now both engines clamp the same way, warn the same way, and report the same."""
    path = _tsoffset_capture(tmp_path, offsets)
    native = handshake("read", path, "--format", "jsonl")
    shark = handshake("read", path, "--format", "jsonl", "--engine", "pyshark")
    assert native.returncode == shark.returncode == 0, shark.stderr
    assert native.stderr == shark.stderr
    assert "clamped to that range" in native.stderr
    assert ([json.loads(x) for x in native.stdout.splitlines()]
            == [json.loads(x) for x in shark.stdout.splitlines()])


@pytest.mark.skipif(not _has_tshark() or not REPRO.is_dir(),
                    reason="needs tshark and ../shared/reliability")
@pytest.mark.parametrize("name", ["pyexc-pyshark-ts-overflow.pcapng",
                                  "pyexc-pyshark-ts-overflow-2.pcapng",
                                  "ubsan-zeek555-pyshark-ts.pcapng"])
def test_pyshark_reproducers(name: str) -> None:
    path = REPRO / name
    native = handshake("read", path, "--format", "jsonl")
    shark = handshake("read", path, "--format", "jsonl", "--engine", "pyshark")
    assert native.returncode == shark.returncode == 0, shark.stderr
    assert native.stderr == shark.stderr and "clamped" in native.stderr
    assert native.stdout == shark.stdout


# ---- time and memory linear in the input ---------------------------------------------------

BUDGET_S_PER_MIB = 1.0
BUDGET_CONST_S = 10.0
RSS_LIMIT = 512 * MiB  # the child's hard limit (address space: 4x)
RSS_FIXED = 128 * MiB  # what reading may use whatever the input's size (chunks of 4 MiB)


def _crafted(kind: str, mib: int) -> bytes:
    if kind == "huge-caplen":
        return huge_caplen_pcap(mib * MiB)
    if kind == "huge-caplen-gz":
        return g.gz(huge_caplen_pcap(mib * MiB))
    if kind == "pcapng-huge-block":  # many blocks each claiming just under 16 MiB
        good = g.pcapng_file(FRAMES[:3], [g.Interface(g.LT_ETHERNET)])
        return good + struct.pack("<II", 6, (16 << 20) - 4) + bytes(mib * MiB)
    if kind == "zero-records":  # a header then zeros: 16-byte empty records
        return g.pcap_header(g.LT_ETHERNET) + bytes(mib * MiB)
    if kind == "zero-records-gz":
        return g.gz(g.pcap_header(g.LT_ETHERNET) + bytes(mib * MiB))
    raise ValueError(kind)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (RSS_LIMIT * 4, RSS_LIMIT * 4))


@pytest.mark.parametrize("kind", ["huge-caplen", "huge-caplen-gz", "pcapng-huge-block",
                                  "zero-records", "zero-records-gz"])
def test_time_and_memory_linear_in_input(tmp_path: Path, kind: str) -> None:
    """No crafted input of S MiB (decompressed) takes more than 1 s per MiB plus 10 s, or
    more than a fixed 128 MB of memory; run in a child with a hard address-space limit and
    a timeout. Before, 64 MiB of 'huge-caplen' took about 4 s and over 150 MB (the rest of
    the file buffered), and doubling the input quadrupled the time."""
    mib = 64
    path = tmp_path / f"{kind}.bin"
    path.write_bytes(_crafted(kind, mib))
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the (large) pytest
    # process the child was forked from.
    code = ("import analyzer, sys\n"
            "cap = analyzer.read(sys.argv[1])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(len(cap), hwm.split()[1])\n")
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                       text=True, timeout=BUDGET_CONST_S + BUDGET_S_PER_MIB * mib * 3,
                       preexec_fn=_limited, cwd=ROOT)
    elapsed = time.monotonic() - start
    assert p.returncode == 0, p.stderr
    rss_kib = int(p.stdout.split()[1])
    assert rss_kib * 1024 < RSS_FIXED, rss_kib
    assert elapsed < BUDGET_CONST_S + BUDGET_S_PER_MIB * mib, elapsed

