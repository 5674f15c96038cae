"""The pyshark engine (tshark's dissectors feeding the same tracker) against the native one.

* Every sample capture and every Zeek corpus trace (../shared/corpus/zeek, skipped when
  absent) gives identical connection records, every field, and identical packet rows.
* Encapsulations the native decoder does not know: GRE (hand-made by wrapping the real
  loopback capture, since this kernel has no GRE driver) and VXLAN (a real capture of
  real sockets between two network namespaces).
* The one-line errors: no tshark, no pyshark, a corrupt and a truncated file.

pyshark costs about 0.2 s of tshark start-up per file, so the whole module takes about 50 s on two shared cores.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pcapgen
import pytest
from waiting import capture_has_ended, wait_until

import analyzer
from analyzer.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"
SAMPLES = sorted(p for p in (ROOT / "captures").iterdir() if ".pcap" in p.name)
TRACES = sorted(CORPUS.iterdir()) if CORPUS.is_dir() else []
PEER = str(Path(__file__).parent / "netns_peer.py")

HAVE_PYSHARK = importlib.util.find_spec("pyshark") is not None
needs_tshark = pytest.mark.skipif(not HAVE_PYSHARK or not shutil.which("tshark"),
                                  reason="needs pyshark and tshark")

# Differences that are native-engine bugs: trace name -> reason (strict xfail, so the
# entry must go when the bug is fixed). None are known: every trace agrees.
NATIVE_BUGS: dict[str, str] = {}

# (verify_checksums, zeek_timers): the defaults, and how test_zeek_corpus reads.
OPTIONS = [pytest.param(False, False, id="default"),
           pytest.param(True, True, id="checksums+timers")]


def both(path: Path, **options: Any) -> tuple[analyzer.Capture, analyzer.Capture]:
    native = analyzer.read(str(path), record=-2, **options)
    if native.error:
        pytest.skip(f"the native engine cannot read it: {native.error}")
    return native, analyzer.read(str(path), record=-2, engine="pyshark", **options)


def differences(native: analyzer.Capture, other: analyzer.Capture) -> list[str]:
    """Every field that differs, named, so a failure says what and where."""
    found = []
    mine, theirs = list(native.records()), list(other.records())
    if len(mine) != len(theirs):
        found.append(f"{len(mine)} connections natively, {len(theirs)} with pyshark")
    for a, b in zip(mine, theirs):
        found += [f"connection {a['id']} {key}: native {a[key]!r}, pyshark {b.get(key)!r}"
                  for key in a if a[key] != b.get(key)]
    # the whole engine tuple too: Zeek's packet and IP byte counts, anomaly totals ...
    for i in range(min(len(native), len(other))):
        ra, rb = native.raw(i), other.raw(i)
        found += [f"connection {i} {name}: native {x!r}, pyshark {y!r}"
                  for name, x, y in zip(ra._fields, ra, rb) if x != y]
    rows_a = native.packet_rows()
    rows_b = other.packet_rows()
    found += [f"packet row {a[0]}: native {a}, pyshark {b}"
              for a, b in zip(rows_a, rows_b) if a != b][:5]
    if len(rows_a) != len(rows_b):
        found.append(f"{len(rows_a)} packet rows natively, {len(rows_b)} with pyshark")
    return found


def traced(paths: list[Path]) -> list[Any]:
    return [pytest.param(p, id=p.name, marks=[pytest.mark.xfail(reason=NATIVE_BUGS[p.name],
                                                                strict=True)]
                         if p.name in NATIVE_BUGS else []) for p in paths]


@needs_tshark
@pytest.mark.parametrize(("verify", "timers"), OPTIONS)
@pytest.mark.parametrize("path", traced(SAMPLES + TRACES))
def test_same_records_as_native(path: Path, verify: bool, timers: bool) -> None:
    native, other = both(path, verify_checksums=verify, zeek_timers=timers)
    assert differences(native, other) == []
    assert native.stats["frames"] == other.stats["frames"]
    assert native.stats["tcp"] == other.stats["tcp"]


@needs_tshark
def test_port_filter_same_as_native() -> None:
    native, other = both(ROOT / "captures" / "echo-lo.pcap", port=9503)
    assert len(native) == 6
    assert differences(native, other) == []
    assert native.stats["skipped_port"] == other.stats["skipped_port"] > 0


@needs_tshark
def test_bad_checksums_reach_the_history() -> None:
    # Loopback captures carry partial checksums: with verification nearly every segment
    # is bad (129 of 131), and both engines must record it as Zeek does ('C'), not drop
    # it silently.
    native, other = both(ROOT / "captures" / "echo-lo.pcap", verify_checksums=True)
    assert native.stats["bad_checksum"] == other.stats["bad_checksum"] == 129
    assert all("c" in rec["history"].lower() for rec in other.records())
    assert differences(native, other) == []


# ---- encapsulations the native decoder does not know ---------------------------------


def read_pcap(path: Path) -> tuple[int, list[pcapgen.Packet]]:
    """(link type, packets) of a little-endian classic pcap."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    scale = 1 if magic == 0xA1B23C4D else 1000
    packets, off = [], 24
    while off < len(data):
        sec, frac, caplen, _ = struct.unpack_from("<IIII", data, off)
        packets.append(pcapgen.Packet(sec * pcapgen.NS + frac * scale,
                                      data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    return linktype, packets


def gre_wrapped(packets: list[pcapgen.Packet]) -> list[pcapgen.Packet]:
    """Each Ethernet frame's IP packet carried in GRE (RFC 2784) between two routers."""
    out = []
    for pkt in packets:
        ethertype = struct.unpack_from("!H", pkt.data, 12)[0]
        gre = struct.pack("!HH", 0, ethertype) + pkt.data[14:]
        outer = pcapgen.ipv4(pcapgen.addr("192.0.2.1"), pcapgen.addr("192.0.2.2"), gre,
                             proto=47)
        out.append(pcapgen.Packet(pkt.ts_ns, pcapgen.ethernet(outer, 0x0800)))
    return out


@needs_tshark
def test_gre_fallback(tmp_path: Path) -> None:
    original = ROOT / "captures" / "echo-lo.pcap"
    linktype, packets = read_pcap(original)
    assert linktype == pcapgen.LT_ETHERNET
    wrapped = tmp_path / "echo-gre.pcap"
    wrapped.write_bytes(pcapgen.pcap_file(gre_wrapped(packets), linktype, nanosecond=True))

    native = analyzer.read(str(wrapped))
    assert len(native) == 0 and native.stats["tcp"] == 0  # GRE is not decoded natively
    other = analyzer.read(str(wrapped), engine="pyshark", record=-2)
    assert other.stats["tunnelled"] == other.stats["tcp"] == len(packets)
    # The inner packets are the loopback capture's, untouched: every field agrees with
    # the native engine reading the original file.
    assert differences(analyzer.read(str(original), record=-2), other) == []


VX_UNDER = ("192.0.2.1", "192.0.2.2")  # the veth underlay, in the namespaces only
VX_OVER = ("198.51.100.1", "198.51.100.2")  # the VXLAN overlay
VX_PORT = 9502


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture(scope="module")
def vxlan_captures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Real TCP connections across a VXLAN tunnel between two namespaces, captured on the
    underlay (UDP 4789) and, at the same time, on the tunnel interface itself."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tcpdump"):
        pytest.skip("needs root, iproute2 and tcpdump")
    tag = f"hsd{os.getpid()}"
    names = (f"{tag}c", f"{tag}s")
    out = tmp_path_factory.mktemp("vxlan")
    outer, inner = out / "underlay.pcap", out / "overlay.pcap"
    try:
        for ns in names:
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        for i, (ns, dev) in enumerate(zip(names, (f"{tag}a", f"{tag}b"))):
            sh("ip", "link", "set", dev, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{VX_UNDER[i]}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            try:
                sh("ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "42",
                   "remote", VX_UNDER[1 - i], "local", VX_UNDER[i], "dstport", "4789",
                   "dev", dev)
            except subprocess.CalledProcessError:
                pytest.skip("this kernel cannot make VXLAN interfaces")
            sh("ip", "-n", ns, "addr", "add", f"{VX_OVER[i]}/24", "dev", "vx0")
            sh("ip", "-n", ns, "link", "set", "vx0", "up")
        dumps = [subprocess.Popen(["ip", "netns", "exec", names[0], "tcpdump", "-i", dev, "-U",
                                   "-w", str(path), "--immediate-mode", filt],
                                  stderr=subprocess.PIPE, text=True)
                 for dev, path, filt in ((f"{tag}a", outer, "udp port 4789"),
                                         ("vx0", inner, "tcp"))]
        server = subprocess.Popen(["ip", "netns", "exec", names[1], sys.executable, PEER,
                                   "server", VX_OVER[1], str(VX_PORT)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            for dump in dumps:
                assert dump.stderr is not None and "listening on" in dump.stderr.readline()
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            for scenario in ("normal", "serverclose", "rst"):
                subprocess.run(["ip", "netns", "exec", names[0], sys.executable, PEER,
                                "client", VX_OVER[1], str(VX_PORT), scenario],
                               check=True, capture_output=True, timeout=20)
            # Every session ended in the overlay capture, and the underlay holds as many
            # datagrams as the overlay has segments (events, not a fixed wait).
            wait_until(capture_has_ended(inner, connections=3), "the sessions' last packets")
            segments = analyzer.read(str(inner)).stats["tcp"]
            wait_until(lambda: analyzer.read(str(outer)).stats["frames"] >= segments,
                       "the underlay's copy of every segment")
        finally:
            server.kill()
            server.wait()
            for dump in dumps:
                dump.send_signal(signal.SIGINT)
                dump.wait(timeout=10)
        yield outer, inner
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


STRUCTURE = ("client", "server", "packets", "payload_bytes", "conn_state", "history")


@needs_tshark
@pytest.mark.root
def test_vxlan_fallback(vxlan_captures: tuple[Path, Path]) -> None:
    outer, inner = vxlan_captures
    assert len(analyzer.read(str(outer))) == 0  # UDP to the native decoder
    tunnelled = list(analyzer.read(str(outer), engine="pyshark").records())
    direct = list(analyzer.read(str(inner)).records())
    assert len(tunnelled) == 3 and tunnelled[-1]["close"]["kind"] == "reset"
    assert {r["server"] for r in tunnelled} == {f"{VX_OVER[1]}:{VX_PORT}"}
    # Two capture points, so times differ by microseconds; everything else agrees.
    for a, b in zip(direct, tunnelled, strict=True):
        assert {k: a[k] for k in STRUCTURE} == {k: b[k] for k in STRUCTURE}
        assert a["handshake"]["client_isn"] == b["handshake"]["client_isn"]
        assert a["handshake"]["client_options"] == b["handshake"]["client_options"]
        assert a["close"] == b["close"]
        assert [s for _, s in a["states"]["client"]] == [s for _, s in b["states"]["client"]]


# ---- one-line errors -------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None,
            code: str = "") -> subprocess.CompletedProcess[str]:
    script = f"{code}\nimport sys\nfrom analyzer.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", script, *args], check=False, capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)


@pytest.mark.skipif(not HAVE_PYSHARK, reason="needs pyshark")
def test_missing_tshark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.engines.pyshark_engine import find_tshark

    monkeypatch.setenv("PATH", str(tmp_path))  # pyshark searches PATH for tshark
    with pytest.raises(UsageError, match=r"needs tshark.*apt-get install tshark"):
        find_tshark()
    result = run_cli("read", "--engine", "pyshark", "captures/echo-lo.pcap",
                     env={**os.environ, "PATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "apt-get install tshark" in result.stderr and "Traceback" not in result.stderr


def test_missing_pyshark() -> None:
    # A None entry makes `import pyshark` fail as if it were not installed.
    result = run_cli("read", "--engine", "pyshark", "captures/echo-lo.pcap",
                     code="import sys; sys.modules['pyshark'] = None")
    assert result.returncode == 2
    assert result.stderr == ("handshake: error: --engine pyshark needs the pyshark module: "
                             "pip install 'handshake-analyzer[pyshark]'\n")


@needs_tshark
def test_corrupt_and_truncated_files(tmp_path: Path) -> None:
    data = (ROOT / "captures" / "echo-lo.pcap").read_bytes()
    offset = 24
    for _ in range(20):  # to the 21st record
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    corrupt = tmp_path / "corrupt.pcap"
    corrupt.write_bytes(data[:offset + 8] + struct.pack("<I", 0x7FFFFFFF) + data[offset + 12:])
    result = run_cli("read", "--engine", "pyshark", str(corrupt))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "damaged or corrupt" in errors[0]
    assert "after packet 20" in errors[0] and "Traceback" not in result.stderr
    assert "2 connections" in result.stdout  # what came before is still reported

    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:offset + 30])
    cap = analyzer.read(str(cut), engine="pyshark")
    assert cap.error is None
    assert cap.warnings == [f"{cut}: truncated after packet 20"]

    missing = run_cli("read", "--engine", "pyshark", str(tmp_path / "nothing.pcap"))
    assert missing.returncode == 2
    assert missing.stderr == f"handshake: error: {tmp_path / 'nothing.pcap'}: no such file\n"
