"""Filters on reading (issue 13 item 3): a BPF filter (``-f``) and ``-c`` on the packets,
checked against tcpdump itself on real captures; ``--state``, ``--close`` and
``--where`` on the connections, in every output format and in ``analyzer.read``."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.errors import UsageError
from analyzer.filters import Where, record_fields

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "captures" / "echo-lo.pcap"       # Ethernet, IPv4 and IPv6
ANY = ROOT / "captures" / "echo-any.pcap"       # Linux cooked v2 (tcpdump -i any)
ZEEK = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"
needs_tcpdump = pytest.mark.skipif(not shutil.which("tcpdump"), reason="needs tcpdump")

CASES = [(ECHO, "tcp port 9502 and host ::1"),
         (ECHO, "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0"),
         (ECHO, "src host 127.0.0.1 and greater 70"),
         (ANY, "tcp dst port 9502"),
         (ANY, "ip6 or tcp[tcpflags] & tcp-rst != 0")]
CASES += [(ZEEK / name, expr) for name, expr in (
    ("mixed-vlan-mpls.pcap", "vlan and tcp"),     # BPF's VLAN rules, not ours
    ("ipv6.pcap", "ip6 and tcp port 21"),
    ("ssh.pcap", "tcp port 22 and not host 192.168.1.32"),
) if (ZEEK / name).exists()]


def handshake(*args: str | Path, stdin: bytes | None = None
              ) -> subprocess.CompletedProcess[bytes]:
    res = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], input=stdin,
                         capture_output=True, cwd=ROOT, timeout=120)
    assert b"Traceback" not in res.stderr, res.stderr.decode()
    return res


def packet_rows(cap: analyzer.Capture) -> list[tuple[Any, ...]]:
    frame = cap.packets
    return list(zip(frame["packet"], frame["time"], frame["seq"], frame["ack"],
                    frame["flags"], frame["payload_len"]))


def without_numbers(records: Any) -> list[dict[str, Any]]:
    out = json.loads(json.dumps(list(records)))
    for rec in out:
        del rec["first_packet"], rec["last_packet"]
        rec["unexpected"] = [{k: v for k, v in u.items() if k != "packet"}
                             for u in rec["unexpected"]]
    return out


@needs_tcpdump
@pytest.mark.parametrize("path, expr", CASES, ids=lambda v: getattr(v, "name", v))
def test_bpf_filter_keeps_what_tcpdump_keeps(path: Path, expr: str, tmp_path: Path) -> None:
    ref = tmp_path / "ref.pcap"
    subprocess.run(["tcpdump", "-r", str(path), "-w", str(ref), expr], check=True,
                   capture_output=True)
    ours = analyzer.read(str(path), bpf=expr, record=-2)
    theirs = analyzer.read(str(ref), record=-2)
    assert ours.stats["tcp"] == theirs.stats["tcp"] > 0
    # The same packets, and ours keep their numbers in the original file.
    everything = {row[0]: row[1:] for row in packet_rows(analyzer.read(str(path), record=-2))}
    assert [everything[row[0]] for row in packet_rows(ours)] == \
        [row[1:] for row in packet_rows(theirs)]
    assert without_numbers(ours.records()) == without_numbers(theirs.records())
    left_out = ours.stats["filtered"] + ours.stats["filter_inapplicable"]
    assert left_out == ours.stats["frames"] - theirs.stats["frames"]


@needs_tcpdump
@pytest.mark.parametrize("count, expr", [(1, None), (20, None), (57, None), (5, "host ::1"),
                                         (10**6, None)])
def test_count_reads_the_first_n_packets_like_tcpdump_c(count: int, expr: str | None,
                                                        tmp_path: Path) -> None:
    ref = tmp_path / "ref.pcap"
    subprocess.run(["tcpdump", "-r", str(ECHO), "-c", str(count), "-w", str(ref),
                    *([expr] if expr else [])], check=True, capture_output=True)
    ours = analyzer.read(str(ECHO), count=count, bpf=expr)
    theirs = analyzer.read(str(ref))
    assert not ours.warnings and ours.error is None  # stopping early is no truncation
    assert ours.stats["tcp"] == theirs.stats["tcp"] == min(count, 131 if not expr else 11)
    assert without_numbers(ours.records()) == without_numbers(theirs.records())


def test_filters_work_on_piped_input() -> None:
    args = ["read", "-", "-f", "tcp port 9502", "-c", "40", "--close", "four_way,reset",
            "--format", "jsonl"]
    piped = handshake(*args, stdin=ECHO.read_bytes())
    from_file = handshake(*[str(ECHO) if a == "-" else a for a in args])
    assert piped.returncode == from_file.returncode == 0
    assert piped.stdout == from_file.stdout and piped.stdout.count(b"\n") >= 2


def test_show_takes_the_same_filter() -> None:
    listed = handshake("read", ECHO, "-f", "host ::1", "--format", "jsonl")
    rec = json.loads(listed.stdout.splitlines()[0])
    shown = handshake("show", ECHO, str(rec["id"]), "-f", "host ::1")
    assert shown.returncode == 0 and f"client {rec['client']}" in shown.stdout.decode()


# ---- connection filters ---------------------------------------------------------------

EVERYTHING = [json.loads(line) for line in
              subprocess.run([sys.executable, "-m", "analyzer", "read", str(ECHO), "--format",
                              "jsonl"], capture_output=True, text=True, cwd=ROOT,
                             check=True).stdout.splitlines()]

SELECTIONS = [
    (["--state", "REJ,S0"], lambda r: r["conn_state"] in ("REJ", "S0")),
    (["--close", "reset"], lambda r: r["close"]["kind"] == "reset"),
    (["--close", "three_way,simultaneous"],
     lambda r: r["close"]["kind"] in ("three_way", "simultaneous")),
    (["--where", "irtt > 0.0002"],
     lambda r: r["handshake"]["irtt"] is not None and r["handshake"]["irtt"] > 0.0002),
    (["--where", "client_addr == '::1' or close.kind == 'refused'"],
     lambda r: r["client"].startswith("[::1]") or r["close"]["kind"] == "refused"),
    (["--where", "packets_client + packets_server >= 11 and not close_half_close"],
     lambda r: sum(r["packets"].values()) >= 11 and not r["close"]["half_close"]),
    (["--state", "SF", "--where", "0.00005 < irtt < 0.0001"],
     lambda r: r["conn_state"] == "SF" and r["handshake"]["irtt"] is not None
     and 0.00005 < r["handshake"]["irtt"] < 0.0001),
    (["--where", "server_port in (9503, 9509)"],
     lambda r: r["server"].rsplit(":", 1)[1] in ("9503", "9509")),
]


def ids_in(fmt: str, text: str) -> list[int]:
    if fmt == "jsonl":
        return [json.loads(line)["id"] for line in text.splitlines()]
    if fmt == "json":
        doc = json.loads(text)
        assert doc["summary"]["connections"] == len(doc["connections"])
        return [c["id"] for c in doc["connections"]]
    if fmt == "csv":
        return [int(row["id"]) for row in csv.DictReader(io.StringIO(text))]
    if fmt == "zeek":  # no id column: one row per connection, matched by the client port
        ports = [line.split("\t")[3] for line in text.splitlines() if not line.startswith("#")]
        by_port = {r["client"].rsplit(":", 1)[1]: r["id"] for r in EVERYTHING}
        return [by_port[p] for p in ports]
    lines = text.splitlines()
    return [int(line.split()[0]) for line in lines[1:-1]]  # table: header, rows, footer


@pytest.mark.parametrize("fmt", ["table", "jsonl", "json", "csv", "zeek"])
@pytest.mark.parametrize("args, keep", SELECTIONS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else "")
def test_connection_filters_in_every_format(fmt: str, args: list[str], keep: Any) -> None:
    expected = [r["id"] for r in EVERYTHING if keep(r)]
    assert 0 < len(expected) < len(EVERYTHING)
    res = handshake("read", ECHO, *args, "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert ids_in(fmt, res.stdout.decode()) == expected
    if fmt == "table":
        assert f"{len(expected)} of {len(EVERYTHING)} connections" in res.stdout.decode()


def test_library_filters_keep_the_file_ids() -> None:
    cap = analyzer.read(str(ECHO), close="reset", where="server_port == 9502")
    expected = [r["id"] for r in EVERYTHING if r["close"]["kind"] == "reset"
                and r["server"].endswith(":9502")]
    assert list(cap.ids()) == [r["id"] for r in cap.records()] == expected
    assert cap.connections.index.tolist() == expected
    assert set(cap.packets["conn_id"]) == set(expected)
    assert set(cap.transitions["conn_id"]) == set(expected)
    assert cap.record(expected[0])["close"]["kind"] == "reset"
    assert len(cap) == len(EVERYTHING)  # the file's connections are all still there
    # a callable-free, text condition: the same object the CLI uses
    rec = EVERYTHING[0]
    assert Where("history == 'ShADadFf' and packets == 11")(record_fields(rec))


@pytest.mark.parametrize("cond, message", [
    ("irtt >", "ends too early"),
    ("irtt = 3", "compare with =="),
    ("conn_state == SF", "unknown field 'SF' (quote text"),
    ("rtt > 1", "unknown field 'rtt' (did you mean"),
    ("__import__('os').system('true')", "is not part of a condition"),
    ("().__class__", "is not a field name"),
    ("[c for c in client]", "is not part of a condition"),
    ("lambda: 1", "is not part of a condition"),
    ("irtt ** 2 > 1", "only + - * / are allowed"),
    ("conn_state > 3", "compares text with a number"),
])
def test_bad_conditions_are_one_line(cond: str, message: str) -> None:
    res = handshake("read", ECHO, "--where", cond)
    assert res.returncode == 2 and res.stdout == b""
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"handshake: error: --where {cond!r}: ")
    assert message in lines[0], lines[0]


@pytest.mark.parametrize("args, message", [
    (["--state", "XX"], "--state: XX is not one of S0, S1, SF"),
    (["--close", "rst"], "--close: rst is not one of open, four_way"),
    (["-f", "tcp and bogus"], "bad filter 'tcp and bogus': syntax error"),
    (["-c", "0"], "argument -c/--count: '0' is not a positive whole number"),
])
def test_bad_filters_are_one_line(args: list[str], message: str) -> None:
    res = handshake("read", ECHO, *args)
    assert res.returncode == 2 and res.stdout == b""
    assert message in res.stderr.decode().splitlines()[-1], res.stderr


def test_library_rejects_bad_filters_before_reading() -> None:
    with pytest.raises(UsageError, match="bad filter"):
        analyzer.read("/nonexistent.pcap", bpf="port")
    with pytest.raises(UsageError, match="--state"):
        analyzer.read("/nonexistent.pcap", state="nope")


@needs_tcpdump
@pytest.mark.skipif(not shutil.which("mergecap"), reason="needs mergecap")
@pytest.mark.parametrize("count", [None, 15])
def test_filters_on_merged_files_as_tcpdump_then_mergecap(count: int | None,
                                                          tmp_path: Path) -> None:
    """--merge -f X -c N: each file filtered as tcpdump does, merged in time order as
    mergecap does, then the first N packets."""
    parts = []
    for path in (ECHO, ANY):
        part = tmp_path / f"{path.stem}.pcap"
        subprocess.run(["tcpdump", "-r", str(path), "-w", str(part), "host ::1"], check=True,
                       capture_output=True)
        parts.append(str(part))
    subprocess.run(["mergecap", "-w", str(tmp_path / "merged.pcapng"), *parts], check=True)
    ours = analyzer.read([str(ECHO), str(ANY)], merge=True, bpf="host ::1", count=count)
    theirs = analyzer.read(str(tmp_path / "merged.pcapng"), count=count)
    assert ours.stats["tcp"] == theirs.stats["tcp"] == (count or 22)
    assert without_numbers(ours.records()) == without_numbers(theirs.records())
