"""``handshake`` (run as ``python -m analyzer``) on bad input: one line
``handshake: error: PATH: ...`` on stderr and exit status 2, never a traceback; a file
cut short is only a warning (exit 0) and every complete packet is still reported."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

import analyzer
from analyzer.errors import CaptureError

import pcapgen as g  # tests/ is on sys.path (pytest's rootdir-relative import)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    status: int
    out: str
    err: str


def handshake(*args: str | Path) -> Result:
    p = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    assert "Traceback" not in p.stdout
    return Result(p.returncode, p.stdout, p.stderr)


def assert_error(res: Result, path: str | Path, *fragments: str) -> str:
    """Exit 2 and exactly one ``handshake: error: PATH: ...`` line; returns the message."""
    assert res.status == 2, res
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    prefix = f"handshake: error: {path}: "
    assert lines[0].startswith(prefix), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0][len(prefix):]


def jsonl(res: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in res.out.splitlines()]


# ---- fixtures: one normal conversation --------------------------------------------------

CONV = g.conversation()
FRAMES = g.framed(CONV.packets, g.LT_ETHERNET)
OFFSETS = g.record_offsets(FRAMES)


def good_pcap(byteorder: str = "<", nanosecond: bool = False) -> bytes:
    return g.pcap_file(FRAMES, g.LT_ETHERNET, byteorder=byteorder, nanosecond=nanosecond)


def ng_offsets(data: bytes, byteorder: str = "<") -> list[int]:
    """Byte offsets of the EPBs in a pcapng section."""
    out, pos = [], 0
    while pos < len(data):
        btype, blen = struct.unpack_from(byteorder + "II", data, pos)
        if btype == 6:
            out.append(pos)
        pos += blen
    return out


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.pcap"
    path.write_bytes(good_pcap())
    return path


# ---- help and usage ---------------------------------------------------------------------


def test_help() -> None:
    res = handshake("--help")
    assert res.status == 0
    assert "usage: handshake" in res.out
    assert "read" in res.out and "show" in res.out
    assert res.err == ""


@pytest.mark.parametrize("command", ["read", "show"])
def test_subcommand_help(command: str) -> None:
    res = handshake(command, "--help")
    assert res.status == 0
    assert f"usage: handshake {command}" in res.out
    assert "--port" in res.out


def test_no_command_is_a_usage_error() -> None:
    res = handshake()
    assert res.status == 2
    assert "usage: handshake" in res.err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_bad_port_is_a_usage_error(good: Path, port: str) -> None:
    res = handshake("read", good, "--port", port)
    assert res.status == 2
    assert "--port" in res.err
    assert res.out == ""


def test_good_file_reads_cleanly(good: Path) -> None:
    res = handshake("read", good, "--format", "jsonl")
    assert (res.status, res.err) == (0, "")
    [rec] = jsonl(res)
    assert rec["conn_state"] == "SF"


# ---- files that are not captures ----------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    assert assert_error(handshake("read", path), path) == "no such file"
    with pytest.raises(CaptureError, match=f"^{path}: no such file"):
        analyzer.read(str(path))


def test_directory(tmp_path: Path) -> None:
    res = handshake("read", tmp_path)
    assert "directory" in assert_error(res, tmp_path)
    with pytest.raises(CaptureError, match=f"^{tmp_path}: "):
        analyzer.read(str(tmp_path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    assert "empty" in assert_error(handshake("read", path), path)
    with pytest.raises(CaptureError, match=f"^{path}: "):
        analyzer.read(str(path))


@pytest.mark.parametrize("content", [b"hello, world\nthis is text\n", b"\x00" * 100, b"GIF8"],
                         ids=["text", "zeros", "four-bytes"])
def test_not_a_capture(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    res = handshake("read", path)
    assert "not a pcap or pcapng file" in assert_error(res, path)
    assert res.out == ""
    with pytest.raises(CaptureError, match=f"^{path}: not a pcap"):
        analyzer.read(str(path))


def test_one_missing_file_among_several(good: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    res = handshake("read", good, missing)
    assert_error(res, missing, "no such file")
    assert "1 connection (1 four_way)" in res.out  # good.pcap is still reported


# ---- unsupported link types ----------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_unsupported_link_type_pcap(tmp_path: Path, byteorder: str) -> None:
    path = tmp_path / "lt147.pcap"
    path.write_bytes(g.pcap_file(FRAMES, 147, byteorder=byteorder))
    res = handshake("read", path, "--format", "jsonl")
    assert_error(res, path, "unsupported link type 147")
    assert res.out == ""
    cap = analyzer.read(str(path))
    assert cap.error is not None and "147" in str(cap.error)
    assert len(cap) == 0


def test_unsupported_link_type_pcapng(tmp_path: Path) -> None:
    data = g.pcapng_file(FRAMES, [g.Interface(147)])
    path = tmp_path / "lt147.pcapng"
    path.write_bytes(data)
    first = ng_offsets(data)[0]
    assert_error(handshake("read", path), path, "unsupported link type 147", "interface 0",
                 f"at byte {first}")


def test_unsupported_link_type_pcapng_simple_packet_blocks(tmp_path: Path) -> None:
    """Simple packet blocks on an unsupported interface are the same error as EPBs, not
    silently dropped (11 frames, 0 TCP, no counter and no message)."""
    data = g.pcapng_file(FRAMES, [g.Interface(147)], block="spb")
    path = tmp_path / "spb147.pcapng"
    path.write_bytes(data)
    assert_error(handshake("read", path), path, "unsupported link type 147", "interface 0")


def test_unsupported_link_type_on_a_later_interface(tmp_path: Path) -> None:
    """Packets 1-3 on a supported interface, packet 4 on interface 1 (link type 147): the
    error names interface 1 (ids count from 0) and where its packet is; the connection
    seen so far is still printed."""
    ifaces = [g.Interface(g.LT_ETHERNET), g.Interface(147)]
    pk = [g.Packet(p.ts_ns, p.data, 0 if k < 3 else 1) for k, p in enumerate(FRAMES)]
    data = g.pcapng_file(pk, ifaces)
    path = tmp_path / "lt147b.pcapng"
    path.write_bytes(data)
    at = ng_offsets(data)[3]
    res = handshake("read", path, "--format", "jsonl")
    assert_error(res, path, "unsupported link type 147", "(interface 1)", f"at byte {at}",
                 "after packet 3")
    [rec] = jsonl(res)
    assert rec["last_packet"] == 3


def test_unused_unsupported_interface_is_harmless(tmp_path: Path) -> None:
    """An interface nobody captured on (as in Zeek's gap-data-missing.pcapng) does not stop
    the packets of the others from being read."""
    path = tmp_path / "unused.pcapng"
    path.write_bytes(g.pcapng_file(FRAMES, [g.Interface(g.LT_ETHERNET), g.Interface(274)]))
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 0, res.err
    assert len(jsonl(res)) == 1


# ---- corrupt records: an error, but what came before is kept ------------------------------


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_huge_captured_length_after_three_packets(tmp_path: Path, byteorder: str,
                                                  nanosecond: bool) -> None:
    data = bytearray(good_pcap(byteorder, nanosecond))
    struct.pack_into(byteorder + "I", data, OFFSETS[3] + 8, 0x7FFFFFF0)
    path = tmp_path / "huge.pcap"
    path.write_bytes(bytes(data))
    res = handshake("read", path, "--format", "jsonl")
    assert_error(res, path, "captured length", f"at byte {OFFSETS[3]}", "after packet 3")
    [rec] = jsonl(res)  # the three good packets' connection is still printed
    assert rec["client"] == CONV.client and rec["server"] == CONV.server
    assert rec["packets"] == {"client": 2, "server": 1}
    assert rec["last_packet"] == 3

    cap = analyzer.read(str(path))
    assert isinstance(cap.error, CaptureError)
    assert (cap.error.offset, cap.error.packet) == (OFFSETS[3], 3)
    assert str(cap.error).startswith(f"{path}: ")
    assert len(cap) == 1
    assert cap.stats["packets_framed"] == 3


def test_huge_captured_length_in_the_first_record(tmp_path: Path) -> None:
    """The offset is in the file: the first record starts after the 24-byte header."""
    data = bytearray(good_pcap())
    struct.pack_into("<I", data, OFFSETS[0] + 8, 0xFFFFFFFF)
    path = tmp_path / "huge0.pcap"
    path.write_bytes(bytes(data))
    res = handshake("read", path)
    assert_error(res, path, "captured length", "at byte 24", "after packet 0")
    cap = analyzer.read(str(path))
    assert cap.error is not None and (cap.error.offset, cap.error.packet) == (24, 0)


def _corrupt_pcapng(tmp_path: Path, how: str) -> tuple[Path, int]:
    data = bytearray(g.pcapng_file(FRAMES, [g.Interface(g.LT_ETHERNET, tsresol=9)]))
    at = ng_offsets(bytes(data))[3]
    blen = struct.unpack_from("<I", data, at + 4)[0]
    if how == "odd-length":
        struct.pack_into("<I", data, at + 4, 13)
    elif how == "tiny-length":
        struct.pack_into("<I", data, at + 4, 8)
    elif how == "huge-length":
        struct.pack_into("<I", data, at + 4, 0xFFFFFFF0)
    elif how == "trailer-mismatch":
        struct.pack_into("<I", data, at + blen - 4, blen + 4)
    elif how == "caplen-too-big":
        struct.pack_into("<I", data, at + 20, blen)
    elif how == "unknown-interface":
        struct.pack_into("<I", data, at + 8, 5)
    else:
        raise ValueError(how)
    path = tmp_path / f"{how}.pcapng"
    path.write_bytes(bytes(data))
    return path, at


@pytest.mark.parametrize("how", ["odd-length", "tiny-length", "huge-length",
                                 "trailer-mismatch", "caplen-too-big", "unknown-interface"])
def test_corrupt_pcapng_block(tmp_path: Path, how: str) -> None:
    path, at = _corrupt_pcapng(tmp_path, how)
    res = handshake("read", path, "--format", "jsonl")
    msg = assert_error(res, path, f"at byte {at}", "after packet 3")
    if how.endswith("length"):
        assert "block" in msg and "length" in msg
    [rec] = jsonl(res)
    assert rec["packets"] == {"client": 2, "server": 1}
    cap = analyzer.read(str(path))
    assert cap.error is not None and (cap.error.offset, cap.error.packet) == (at, 3)
    assert len(cap) == 1


def test_corrupt_section_header(tmp_path: Path) -> None:
    data = bytearray(g.pcapng_file(FRAMES, [g.Interface(g.LT_ETHERNET)]))
    data[8:12] = b"\x01\x02\x03\x04"  # byte-order magic
    path = tmp_path / "shb.pcapng"
    path.write_bytes(bytes(data))
    assert_error(handshake("read", path), path, "at byte 0")


# ---- truncated files: a warning, exit 0, every complete packet reported --------------------


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("cut", [8, 16, 30], ids=["in-header", "after-header", "in-data"])
def test_truncated_pcap(tmp_path: Path, byteorder: str, nanosecond: bool, cut: int) -> None:
    data = good_pcap(byteorder, nanosecond)[:OFFSETS[-1] + cut]
    path = tmp_path / "cut.pcap"
    path.write_bytes(data)
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 0, res.err
    assert res.err == (f"handshake: warning: {path}: truncated at byte {OFFSETS[-1]} "
                       f"after packet {len(FRAMES) - 1}\n")
    [rec] = jsonl(res)
    assert rec["packets"] == {"client": 5, "server": 5}
    assert rec["last_packet"] == 10
    cap = analyzer.read(str(path))
    assert cap.error is None
    assert cap.warnings == [f"{path}: truncated at byte {OFFSETS[-1]} after packet 10"]


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("cut", [4, 12, 40], ids=["in-block-header", "in-epb-header",
                                                   "in-data"])
def test_truncated_pcapng(tmp_path: Path, byteorder: str, cut: int) -> None:
    full = g.pcapng_file(FRAMES, [g.Interface(g.LT_ETHERNET)], byteorder)
    last = ng_offsets(full, byteorder)[-1]
    path = tmp_path / "cut.pcapng"
    path.write_bytes(full[:last + cut])
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 0, res.err
    assert res.err == (f"handshake: warning: {path}: truncated at byte {last} after packet "
                       f"10\n")
    [rec] = jsonl(res)
    assert rec["packets"] == {"client": 5, "server": 5}


def test_truncated_global_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes(good_pcap()[:10])
    res = handshake("read", path, "--format", "jsonl")
    # No whole file header: no capture (tcpdump: "truncated dump file"), an error.
    assert_error(res, path, "the file header is cut short: the input ends at byte 10")
    assert res.out == ""


def test_header_only_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "hdr.pcap"
    path.write_bytes(good_pcap()[:24])
    res = handshake("read", path, "--format", "jsonl")
    assert (res.status, res.out, res.err) == (0, "", "")


def _cut_gzip(data: bytes, keep_at_least: int) -> bytes:
    """``data`` gzip-compressed with a full flush after every record, then cut so that
    decompression yields at least ``keep_at_least`` bytes but not the whole file."""
    z = g.gz(data, flush_every=OFFSETS[1:])
    for cut in range(len(z) - 1, 10, -1):
        got = zlib.decompressobj(31).decompress(z[:cut])
        if keep_at_least <= len(got) < len(data):
            return z[:cut]
    raise AssertionError("no suitable cut")


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(_cut_gzip(good_pcap(), OFFSETS[-1]))
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 0, res.err
    assert res.err == (f"handshake: warning: {path}: truncated at byte {OFFSETS[-1]} after "
                       f"packet 10\n")
    [rec] = jsonl(res)
    assert rec["packets"] == {"client": 5, "server": 5}


def test_truncated_gzip_early(tmp_path: Path) -> None:
    """Cut after the fourth record: the first four packets are kept."""
    path = tmp_path / "cut4.pcap.gz"
    data = good_pcap()[:OFFSETS[5]]
    path.write_bytes(_cut_gzip(data, OFFSETS[4]))
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 0, res.err
    assert res.err == (f"handshake: warning: {path}: truncated at byte {OFFSETS[4]} after "
                       f"packet 4\n")
    [rec] = jsonl(res)
    assert rec["last_packet"] == 4


def test_gzip_cut_inside_its_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.gz"
    path.write_bytes(g.gz(good_pcap())[:5])
    res = handshake("read", path)
    assert res.status in (0, 2)
    assert len(res.err.splitlines()) == 1 and res.err.startswith("handshake: ")


def test_gzip_bad_crc_keeps_the_packets(tmp_path: Path) -> None:
    """Every byte decompressed fine, only the trailer's CRC is wrong: an error, but the
    connection is still reported (what came before the problem is kept)."""
    z = bytearray(g.gz(good_pcap()))
    z[-6] ^= 0xFF
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(z))
    res = handshake("read", path, "--format", "jsonl")
    assert res.status == 2
    assert res.err.startswith(f"handshake: error: {path}: ")
    assert len(jsonl(res)) == 1


def test_gzip_corrupt_stream(tmp_path: Path) -> None:
    z = bytearray(g.gz(good_pcap()))
    z[len(z) // 2] ^= 0xFF
    path = tmp_path / "bad.pcap.gz"
    path.write_bytes(bytes(z))
    res = handshake("read", path)
    assert res.status in (0, 2)
    assert res.err.startswith("handshake: ")


# ---- several files ------------------------------------------------------------------------


def test_several_files_one_corrupt(good: Path, tmp_path: Path) -> None:
    """Every file is reported (with its name); the corrupt one adds its error line and
    makes the exit status 2."""
    data = bytearray(good_pcap())
    struct.pack_into("<I", data, OFFSETS[3] + 8, 0x7FFFFFF0)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(good_pcap()[:OFFSETS[-1] + 3])
    res = handshake("read", good, bad, cut, "--format", "jsonl")
    assert res.status == 2
    recs = jsonl(res)
    assert [r["file"] for r in recs] == [str(good), str(bad), str(cut)]
    assert [r["last_packet"] for r in recs] == [11, 3, 10]
    assert res.err.splitlines() == [  # file by file: bad.pcap's error, cut.pcap's warning
        f"handshake: error: {bad}: corrupt record: captured length 2147483632 exceeds 262144 "
        f"at byte {OFFSETS[3]} (after packet 3)",
        f"handshake: warning: {cut}: truncated at byte {OFFSETS[-1]} after packet 10"]


# ---- show ---------------------------------------------------------------------------------


@pytest.mark.parametrize("conn_id", ["99", "1", "-1"])
def test_show_unknown_connection(good: Path, conn_id: str) -> None:
    res = handshake("show", good, conn_id)
    msg = assert_error(res, good, f"no connection {conn_id}")
    assert "ids 0 to 0" in msg
    assert res.out == ""


def test_show_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.pcap"
    assert_error(handshake("show", path, "0"), path, "no such file")


def test_show_known_connection(good: Path) -> None:
    res = handshake("show", good, "0")
    assert (res.status, res.err) == (0, "")
    assert "connection 0: client 10.0.0.1:40000 -> server 10.0.0.2:80" in res.out
    assert "TIME_WAIT" in res.out


def test_show_on_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "lt147.pcap"
    path.write_bytes(g.pcap_file(FRAMES, 147))
    res = handshake("show", path, "0")
    assert res.status == 2
    assert res.err.startswith(f"handshake: error: {path}: ")


# ---- output file ------------------------------------------------------------------------


def test_output_file(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    res = handshake("read", good, "--format", "jsonl", "-o", out)
    assert (res.status, res.out, res.err) == (0, "", "")
    assert len(out.read_text().splitlines()) == 1


@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
def test_output_file_cannot_be_written(good: Path, tmp_path: Path, where: str) -> None:
    out = tmp_path / "no" / "such" / "dir" / "out.txt" if where == "missing-dir" else tmp_path
    res = handshake("read", good, "-o", out)
    assert res.status == 2
    assert len(res.err.splitlines()) == 1 and res.err.startswith("handshake: error: ")
    assert str(out) in res.err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(good: Path) -> None:
    good.chmod(0)
    try:
        assert_error(handshake("read", good), good, "permission denied")
    finally:
        good.chmod(0o644)


@pytest.mark.parametrize("module,argv,extra", [
    ("matplotlib", ["plot", "captures/echo-lo.pcap", "--kind", "fsm", "-o", "x.png"], "plot"),
    ("scapy", ["sniff", "-i", "lo", "--engine", "scapy", "-c", "1"], "capture"),
])
def test_missing_optional_module_is_one_line_with_the_extra(module: str, argv: list[str],
                                                            extra: str) -> None:
    """An extra that is not installed: the command says which and how, no traceback."""
    code = (f"import sys; sys.modules[{module!r}] = None; from analyzer.cli import main; "
            f"sys.exit(main({argv!r}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 2
    assert res.stderr.strip() == (f"handshake: error: {argv[0]} needs {module}: "
                                  f"pip install 'handshake-analyzer[{extra}]'")


@pytest.mark.parametrize("name, keep", [("echo-lo.pcap", 10), ("echo-lo.pcap", 23),
                                        ("echo.pcapng", 20)])
def test_a_file_cut_inside_its_file_header_is_an_error(tmp_path: Path, name: str,
                                                        keep: int) -> None:
    """A pcap shorter than its 24-byte header (a pcapng cut in its section header) is no
    capture: an error naming the byte, as tcpdump's 'truncated dump file', not an empty
    result with a 'truncated after packet 0' warning and status 0."""
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes((ROOT / "captures" / name).read_bytes()[:keep])
    res = handshake("read", cut)
    assert_error(res, cut, "file header is cut short", f"byte {keep}")
    assert "truncated" not in res.err
    whole_header = tmp_path / "header-only.pcap"
    whole_header.write_bytes((ROOT / "captures" / "echo-lo.pcap").read_bytes()[:30])
    res = handshake("read", whole_header)  # a whole header, then a cut record: a warning
    assert res.status == 0 and "truncated at byte 24 after packet 0" in res.err


def test_a_filter_that_keeps_nothing_says_so_without_empty_brackets() -> None:
    res = handshake("read", ROOT / "captures" / "echo-lo.pcap", "--where", "irtt > 9")
    assert res.status == 0, res.err
    assert res.out.splitlines()[-1].startswith("0 of 13 connections; ")
    assert "()" not in res.out
