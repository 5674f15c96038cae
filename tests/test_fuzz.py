"""Hypothesis: whatever bytes a file holds, reading it either gives a Capture (possibly
with ``error`` / ``warnings`` set) or raises CaptureError; nothing else, and never a
crash. Every output format must then be writable, and the engine's JSON lines must equal
the Python records."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import analyzer
from analyzer.capture import Capture
from analyzer.errors import CaptureError, HandshakeError
from analyzer.formats import FORMATS, write
from analyzer.results import UNSET
from analyzer.show import show

import pcapgen as g  # tests/ is on sys.path (pytest's rootdir-relative import)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"
CORPUS_PICKS = ["single-rst.pcap", "syn-then-stuff-then-rst.pcap", "fin_retransmission.pcap",
                "ctu-64702-888.pcap", "tcp-http-with-padding.pcap", "mixed-vlan-mpls.pcap",
                "pppoe-over-qinq.pcap", "ipv6.pcap", "http-on-irc-port-missing-syn.pcapng",
                "django-cloud.pcapng"]
CORPUS_FILES = [CORPUS / n for n in CORPUS_PICKS if (CORPUS / n).is_file()]

LINKTYPES = [g.LT_NULL, g.LT_ETHERNET, 12, 14, g.LT_RAW, g.LT_LOOP, g.LT_SLL, g.LT_IPV4,
             g.LT_IPV6, g.LT_SLL2]

# FUZZ_SCALE=20 pytest tests/test_fuzz.py: a longer hunt than the default few seconds.
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(250 * SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FEW = settings(FUZZ, max_examples=int(120 * SCALE))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_checked(path: Path, **kw: Any) -> Capture | None:
    """Read ``path``; a CaptureError is fine, anything else fails the test. Then use the
    Capture every way the CLI does."""
    try:
        cap = analyzer.read(str(path), **kw)
    except CaptureError as exc:
        assert str(exc).startswith(f"{path}: ")
        return None
    assert isinstance(cap, Capture)
    assert cap.error is None or isinstance(cap.error, CaptureError)
    assert all(isinstance(w, str) and w.startswith(f"{path}: ") for w in cap.warnings)
    stats = cap.stats
    assert stats["frames"] == stats["packets_framed"]
    assert len(cap) == stats["connections"]
    recs = list(cap.records())
    assert len(recs) == len(cap)
    for i, r in enumerate(recs):
        assert r["id"] == i
        assert 1 <= r["first_packet"] <= r["last_packet"] <= stats["frames"]
        assert r["close"]["kind"] in ("four_way", "three_way", "simultaneous", "reset",
                                      "refused", "unanswered", "incomplete", "open")
    json.dumps(recs, allow_nan=False)
    # The engine's JSON lines are the same records (for times that stay within int64 when
    # subtracted; test_extreme_timestamps_json_lines covers the others).
    lines = cap.batch().render("jsonl").decode().splitlines()
    assert len(lines) == len(recs)
    for i, (line, rec) in enumerate(zip(lines, recs)):
        raw = cap.raw(i)
        times = [t for t in (raw.start_ns, raw.end_ns, raw.syn_ns, raw.synack_ns, raw.ack_ns)
                 if t != UNSET]
        if all(abs(t) < 2**62 for t in times):
            assert json.loads(line) == rec
    for fmt in FORMATS:
        write([cap], fmt, io.StringIO())
    return cap


def write_file(scratch: Path, data: bytes, name: str = "fuzz.bin") -> Path:
    path = scratch / name
    path.write_bytes(data)
    return path


# ---- arbitrary bytes after valid headers ----------------------------------------------


@FUZZ
@given(byteorder=st.sampled_from("<>"), nanosecond=st.booleans(),
       linktype=st.sampled_from(LINKTYPES), snaplen=st.sampled_from([0, 65535, 262144,
                                                                     0xFFFFFFFF]),
       tail=st.binary(max_size=3000), verify=st.booleans())
def test_random_bytes_after_pcap_header(scratch: Path, byteorder: str, nanosecond: bool,
                                        linktype: int, snaplen: int, tail: bytes,
                                        verify: bool) -> None:
    data = g.pcap_header(linktype, byteorder, nanosecond, snaplen) + tail
    read_checked(write_file(scratch, data), verify_checksums=verify)


@FUZZ
@given(byteorder=st.sampled_from("<>"), linktype=st.sampled_from(LINKTYPES),
       tsresol=st.one_of(st.none(), st.integers(0, 255)),
       tsoffset=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
       tail=st.binary(max_size=3000))
def test_random_bytes_after_pcapng_shb_idb(scratch: Path, byteorder: str, linktype: int,
                                           tsresol: int | None, tsoffset: int | None,
                                           tail: bytes) -> None:
    iface = g.Interface(linktype, tsresol=tsresol, tsoffset=tsoffset)
    data = g.shb(byteorder) + g.idb(iface, byteorder) + tail
    read_checked(write_file(scratch, data, "fuzz.pcapng"))


@st.composite
def ng_blocks(draw: st.DrawFn) -> bytes:
    """A pcapng file of plausible blocks with random contents (valid framing mostly)."""
    order = draw(st.sampled_from("<>"))
    out = [g.shb(order)]
    n_if = 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["idb", "epb", "spb", "pb", "other", "shb", "raw"]))
        if kind == "idb":
            out.append(g.idb(g.Interface(draw(st.sampled_from(LINKTYPES)),
                                         tsresol=draw(st.one_of(st.none(),
                                                                st.integers(0, 255))),
                                         snaplen=draw(st.sampled_from([0, 64, 65535]))),
                             order))
            n_if += 1
        elif kind in ("epb", "pb"):
            ticks = draw(st.integers(0, 2**64 - 1))
            body = draw(st.binary(max_size=200))
            ifid = draw(st.integers(0, n_if + 1))
            caplen = draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
            if kind == "epb":
                head = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF,
                                   caplen, len(body))
            else:
                head = struct.pack(order + "HHIIII", ifid & 0xFFFF, 0, ticks >> 32,
                                   ticks & 0xFFFFFFFF, caplen, len(body))
            out.append(g.ng_block(6 if kind == "epb" else 2, head + body, order))
        elif kind == "spb":
            body = draw(st.binary(max_size=200))
            orig = draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
            out.append(g.ng_block(3, struct.pack(order + "I", orig) + body, order))
        elif kind == "other":
            out.append(g.ng_block(draw(st.integers(4, 0xFFFF)), draw(st.binary(max_size=40)),
                                  order))
        elif kind == "shb":
            order = draw(st.sampled_from("<>"))
            out.append(g.shb(order))
            n_if = 0
        else:
            out.append(draw(st.binary(max_size=40)))
    return b"".join(out)


@FUZZ
@given(data=ng_blocks())
def test_random_pcapng_blocks(scratch: Path, data: bytes) -> None:
    read_checked(write_file(scratch, data, "blocks.pcapng"))


# ---- well-framed records holding mutated packets -----------------------------------------


def _packet_pool() -> list[bytes]:
    pool: list[bytes] = []
    for client, server in ((("10.0.0.1", 1234), ("10.0.0.2", 80)),
                           (("2001:db8::1", 1234), ("2001:db8::2", 80))):
        ext = [g.hop_by_hop(), g.dest_options()] if ":" in client[0] else ()
        c = g.conversation(client, server, ext=ext)
        pool += [p.data for p in c.packets[:4]]
    c = g.conversation(ip_options=g.ipopt_record_route(2))
    pool.append(c.packets[0].data)
    return pool


POOL = _packet_pool()


@st.composite
def mutation(draw: st.DrawFn, data: bytes, max_flips: int = 6) -> bytes:
    """Bit flips, 'interesting' 16/32-bit values written over fields, and truncation."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, max_flips))):
        if not b:
            break
        what = draw(st.sampled_from(["bit", "byte", "word"]))
        i = draw(st.integers(0, len(b) - 1))
        if what == "bit":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif what == "byte":
            b[i] = draw(st.sampled_from([0x00, 0x01, 0x05, 0x0F, 0x40, 0x45, 0x60, 0x7F,
                                         0x80, 0xFF]))
        else:
            value = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x10000,
                                          0x7FFFFFFF, 0xFFFFFFFF]))
            size = 2 if value <= 0xFFFF and draw(st.booleans()) else 4
            chunk = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))[-size:]
            b[i:i + size] = chunk
    if draw(st.integers(0, 3)) == 0:
        b = b[:draw(st.integers(0, len(b)))]
    return bytes(b)


@st.composite
def mutated_frames(draw: st.DrawFn) -> tuple[int, list[bytes]]:
    linktype = draw(st.sampled_from(LINKTYPES))
    link = g.Link(linktype, vlans=draw(st.sampled_from([(), ((g.ETH_8021Q, 5),)])))
    frames = []
    for _ in range(draw(st.integers(1, 8))):
        pkt = draw(st.sampled_from(POOL))
        if not link.supports(g.ip_version(pkt)):
            continue
        frames.append(draw(mutation(g.frame(link, pkt))))
    return linktype, frames


@FUZZ
@given(spec=mutated_frames(), verify=st.booleans(), pcapng=st.booleans())
def test_mutated_packets_in_valid_records(scratch: Path, spec: tuple[int, list[bytes]],
                                          verify: bool, pcapng: bool) -> None:
    linktype, frames = spec
    pk = [g.Packet(k * 1000, f) for k, f in enumerate(frames)]
    data = (g.pcapng_file(pk, [g.Interface(linktype)]) if pcapng else
            g.pcap_file(pk, linktype))
    cap = read_checked(write_file(scratch, data), verify_checksums=verify)
    assert cap is not None and cap.error is None and cap.warnings == []
    assert cap.stats["frames"] == len(frames)


# ---- mutations of whole valid captures ----------------------------------------------------


def _handmade() -> dict[str, bytes]:
    c4 = g.conversation()
    c6 = g.conversation(("2001:db8::1", 5000), ("2001:db8::2", 443),
                        ext=[g.hop_by_hop()], close="three_way")
    frames = g.framed(c4.packets, g.LT_ETHERNET) + g.framed(c6.packets, g.LT_ETHERNET)
    frames.sort(key=lambda p: p.ts_ns)
    two = [g.Packet(p.ts_ns, g.frame(g.LT_RAW, p.data), 1) for p in c6.packets]
    return {
        "pcap": g.pcap_file(frames, g.LT_ETHERNET),
        "pcap-be-ns": g.pcap_file(frames, g.LT_ETHERNET, ">", nanosecond=True),
        "pcapng": g.pcapng_file(g.framed(c4.packets, g.LT_ETHERNET) + two,
                                [g.Interface(g.LT_ETHERNET), g.Interface(g.LT_RAW, tsresol=9)]),
        "pcapng-be": g.pcapng_file(frames, [g.Interface(g.LT_ETHERNET, tsresol=9)], ">"),
    }


HANDMADE = _handmade()


@st.composite
def mutated_capture(draw: st.DrawFn, sources: dict[str, bytes],
                    max_flips: int = 8) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(sources)))
    return name, draw(mutation(sources[name], max_flips))


@FUZZ
@given(spec=mutated_capture(HANDMADE), verify=st.booleans(), gzip=st.booleans(),
       port=st.sampled_from([None, 80, 443, 0]))
def test_mutated_handmade_capture(scratch: Path, spec: tuple[str, bytes], verify: bool,
                                  gzip: bool, port: int | None) -> None:
    name, data = spec
    if gzip:
        data = g.gz(data)
    read_checked(write_file(scratch, data, name), verify_checksums=verify, port=port)


@FUZZ
@given(spec=mutated_capture(HANDMADE, 0), op=st.sampled_from(["cut", "flip", "both"]),
       where=st.floats(0, 1), bit=st.integers(0, 7))
def test_mutated_gzip_stream(scratch: Path, spec: tuple[str, bytes], op: str, where: float,
                             bit: int) -> None:
    """Cut or corrupted gzip streams of a valid capture."""
    _, data = spec
    z = bytearray(g.gz(data))
    pos = min(int(where * len(z)), len(z) - 1)
    if op in ("flip", "both"):
        z[pos] ^= 1 << bit
    if op in ("cut", "both"):
        z = z[:pos]
    read_checked(write_file(scratch, bytes(z), "x.gz"))


@pytest.mark.skipif(not CORPUS_FILES, reason=f"{CORPUS} is absent")
@FEW
@given(data=st.data(), verify=st.booleans())
def test_mutated_corpus_traces(scratch: Path, data: st.DataObject, verify: bool) -> None:
    path = data.draw(st.sampled_from(CORPUS_FILES), label="trace")
    original = path.read_bytes()
    mutated = data.draw(mutation(original, 16), label="mutated")
    read_checked(write_file(scratch, mutated, path.name), verify_checksums=verify)


# ---- show on whatever was read --------------------------------------------------------


@FEW
@given(spec=mutated_capture(HANDMADE, 4), conn_id=st.integers(-1, 3))
def test_show_never_crashes(scratch: Path, spec: tuple[str, bytes], conn_id: int) -> None:
    name, data = spec
    path = write_file(scratch, data, "show-" + name)
    try:
        show(str(path), conn_id, io.StringIO())
    except HandshakeError:
        pass


# ---- found by fuzzing -------------------------------------------------------------------


def test_extreme_timestamps_json_lines(scratch: Path) -> None:
    """A corrupt pcapng timestamp far from the others (here the SYN's, in nanoseconds,
    ~1.07e19 ticks, i.e. about -7.7e18 ns once the engine makes it an int64): ``--format
    jsonl`` (the engine's writer) must still say what the records say (duration, irtt,
    server_rtt), not a wrapped-around 64-bit difference. Deterministic."""
    ticks = 0x9496_0000_0000_0000
    c = g.conversation()
    iface = g.Interface(g.LT_ETHERNET, tsresol=9)
    blocks = [g.shb(), g.idb(iface)]
    for k, p in enumerate(g.framed(c.packets, g.LT_ETHERNET)):
        blk = bytearray(g.epb(p, iface))
        if k == 0:
            struct.pack_into("<II", blk, 12, ticks >> 32, ticks & 0xFFFFFFFF)
        blocks.append(bytes(blk))
    cap = analyzer.read(str(write_file(scratch, b"".join(blocks), "extreme.pcapng")))
    recs = list(cap.records())
    lines = cap.batch().render("jsonl").decode().splitlines()
    assert [json.loads(x) for x in lines] == recs


# a sanity check that the mutation strategy is not a no-op
def test_pool_is_decodable(scratch: Path) -> None:
    pk = [g.Packet(k * 1000, g.frame(g.LT_RAW, p)) for k, p in enumerate(POOL)]
    cap = read_checked(write_file(scratch, g.pcap_file(pk, g.LT_RAW)), verify_checksums=True)
    assert cap is not None and cap.stats["tcp"] == len(POOL) and cap.stats["bad_checksum"] == 0

