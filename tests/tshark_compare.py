"""Our connection records against tshark 4.0's TCP analysis, per tcp.stream (issue 10).

One ``tshark -T fields`` run per file gives every TCP packet's stream, endpoints, flags,
options and ``tcp.analysis.*`` flags; :func:`tshark_streams` folds them into one
:class:`Stream` per ``tcp.stream``. :func:`compare_file` maps our connections (from
``analyzer.read``, the records of ``handshake read --format jsonl``) onto those streams:
a connection belongs to the stream with the same 4-tuple whose frames it shares, and the
stream "agrees on connections" when exactly one connection covers exactly its first and
last frames. Every metric of :data:`METRICS` is then compared per stream; a stream no
connection covers disagrees on all of them.

Script mode prints the agreement table over every capture we have (captures/, the Zeek
corpus and the examples from other stacks in ../shared/corpus) for the README::

    python tests/tshark_compare.py [--diffs METRIC] [FILE...]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from analyzer.anomalies import TSHARK_FIELDS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"


def all_captures() -> list[Path]:
    """Every capture of the differential test: captures/, Zeek's traces, the examples."""
    files = sorted((ROOT / "captures").glob("*.pcap*"))
    files += sorted((SHARED / "zeek" / "traces").glob("*.pcap*"))
    files += sorted((SHARED / "examples").glob("*.pcap*"))
    return files


# Counted per stream, named as in a record's "anomalies" object (analyzer.anomalies).
ANOMALIES = ("retransmission", "ack_lost_segment", "lost_segment", "keep_alive",
             "out_of_order", "duplicate_ack", "zero_window", "window_full", "window_update")
OPTION_FIELDS = ("tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
                 "tcp.options.timestamp.tsval")
FIELDS = ("frame.number", "frame.protocols", "tcp.stream",
          "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
          "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len", "tcp.analysis.initial_rtt",
          *OPTION_FIELDS, "tcp.analysis.duplicate_ack_num",
          *sorted(set(TSHARK_FIELDS.values())))   # tests/test_anomalies.py reads them too
SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04

Endpoint = tuple[str, int]


def endpoint(text: str) -> Endpoint:
    """``ip:port`` / ``[v6]:port`` as a record writes it, normalised."""
    host, _, port = text.rpartition(":")
    return str(ipaddress.ip_address(host.strip("[]"))), int(port)


@dataclasses.dataclass
class Stream:
    """One tcp.stream as tshark sees it."""

    stream: int
    frames: list[int] = dataclasses.field(default_factory=list)
    senders: list[Endpoint] = dataclasses.field(default_factory=list)
    flags: list[int] = dataclasses.field(default_factory=list)
    seqs: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)  # seq ack len
    a: Endpoint = ("", 0)                       # sender of its first packet
    b: Endpoint = ("", 0)
    irtt: float | None = None
    irtt_end: int = 0          # flags of the segment ending tshark's iRTT (ACK, no SYN)
    syn_options: dict[str, Any] | None = None     # of the first SYN (no ACK)
    synack_options: dict[str, Any] | None = None  # of the first SYN-ACK
    anomalies: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(ANOMALIES, 0))

    @property
    def client(self) -> Endpoint | None:
        """The SYN sender, else the SYN-ACK's receiver; None when neither was seen."""
        for who, fl in zip(self.senders, self.flags):
            if fl & (SYN | ACK) == SYN:
                return who
        for who, fl in zip(self.senders, self.flags):
            if fl & (SYN | ACK) == SYN | ACK:
                return self.other(who)
        return None

    def other(self, who: Endpoint) -> Endpoint:
        return self.b if who == self.a else self.a

    def side(self, who: Endpoint, client: Endpoint) -> str:
        return "client" if who == client else "server"


def _options(row: dict[str, str]) -> dict[str, Any]:
    mss, shift = row["tcp.options.mss_val"], row["tcp.options.wscale.shift"]
    return {"mss": int(mss) if mss else None, "wscale": int(shift) if shift else None,
            "sack_permitted": bool(row["tcp.options.sack_perm"]),
            "timestamps": bool(row["tcp.options.timestamp.tsval"])}


def _addresses(row: dict[str, str]) -> tuple[str, str]:
    """The addresses of the innermost IP header before TCP (Teredo: the IPv6 one)."""
    layers = row["frame.protocols"].split(":")
    inner = [p for p in layers[:layers.index("tcp")] if p in ("ip", "ipv6")]
    v = inner[-1] if inner else "ip"
    return row[f"{v}.src"], row[f"{v}.dst"]


@functools.cache
def run_tshark(path: Path) -> list[dict[str, str]]:
    """One row per frame, fields by name (innermost occurrence): one tshark run per
    file and test session, shared by this module and tests/test_anomalies.py."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t",
           "-E", "occurrence=l"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(FIELDS, line.split("\t"))) for line in out.splitlines()]


def is_tcp(row: dict[str, str]) -> bool:
    """A TCP segment of its own (not TCP quoted in an ICMP error)."""
    layers = row["frame.protocols"].split(":")
    return "tcp" in layers and "icmp" not in layers and "icmpv6" not in layers


def tshark_streams(rows: Iterable[dict[str, str]]) -> dict[int, Stream]:
    streams: dict[int, Stream] = {}
    for row in rows:
        if not is_tcp(row):
            continue
        src, dst = _addresses(row)
        if not src or not row["tcp.stream"]:
            continue
        n = int(row["tcp.stream"])
        sender: Endpoint = (str(ipaddress.ip_address(src)), int(row["tcp.srcport"]))
        receiver: Endpoint = (str(ipaddress.ip_address(dst)), int(row["tcp.dstport"]))
        s = streams.get(n)
        if s is None:
            s = streams[n] = Stream(n, a=sender, b=receiver)
        fl = int(row["tcp.flags"], 16)
        s.frames.append(int(row["frame.number"]))
        s.senders.append(sender)
        s.flags.append(fl)
        s.seqs.append((int(row["tcp.seq_raw"]), int(row["tcp.ack_raw"]), int(row["tcp.len"])))
        if row["tcp.analysis.initial_rtt"] and s.irtt is None:
            s.irtt = float(row["tcp.analysis.initial_rtt"])
        if not s.irtt_end and fl & (SYN | ACK) == ACK and any(f & SYN for f in s.flags):
            s.irtt_end = fl
        if fl & (SYN | ACK) == SYN and s.syn_options is None:
            s.syn_options = _options(row)
        if fl & (SYN | ACK) == SYN | ACK and s.synack_options is None:
            s.synack_options = _options(row)
        for name in ANOMALIES:
            if row[f"tcp.analysis.{name}"]:
                s.anomalies[name] += 1
    return streams


# ---- the metrics ----------------------------------------------------------------------

Rec = dict[str, Any]
Metric = Callable[[Stream, Endpoint, Rec], bool | None]   # None: does not apply


def _per_side(s: Stream, client: Endpoint) -> dict[str, int]:
    n = {"client": 0, "server": 0}
    for who in s.senders:
        n[s.side(who, client)] += 1
    return n


def _first_fin(s: Stream, client: Endpoint) -> str | None:
    for who, fl in zip(s.senders, s.flags):
        if fl & FIN:
            return s.side(who, client)
    return None


def _fins_cross(s: Stream) -> bool:
    """Each side sent a FIN, and the second one does not acknowledge the first: a
    simultaneous close (RFC 9293 section 3.6, figure 13), where both sides initiate."""
    fins = [(who, seq, ack, n) for who, fl, (seq, ack, n) in zip(s.senders, s.flags, s.seqs)
            if fl & FIN]
    if not fins:
        return False
    first = fins[0]
    end = (first[1] + first[3] + 1) % 2**32
    return any(who != first[0] and (ack - end) % 2**32 >= 2**31 for who, _, ack, _ in fins)


def _initiator(s: Stream, client: Endpoint, r: Rec) -> bool | None:
    first = _first_fin(s, client)
    if first is None:
        return None
    ours: str | None = r["close"]["initiator"]
    if s.a == s.b:   # a socket connected to itself is one endpoint: it is both sides
        return ours == "both"
    return ours == first or (ours == "both" and _fins_cross(s))


def _complete(s: Stream, client: Endpoint) -> bool:
    """SYN, a SYN-ACK acknowledging it (data on the SYN too: RFC 7413), and the client's
    ACK of the SYN-ACK, in that order."""
    isn = synack = None
    one = s.a == s.b   # a socket connected to itself: both sides are the one endpoint
    for who, fl, (seq, ack, n) in zip(s.senders, s.flags, s.seqs):
        if who == client and fl & (SYN | ACK) == SYN:
            isn = (seq, n)
        elif (one or who != client) and fl & (SYN | ACK) == SYN | ACK and isn is not None \
                and 0 < (ack - isn[0]) % 2**32 <= isn[1] + 1:
            synack = seq
        elif who == client and fl & (SYN | ACK) == ACK and synack is not None \
                and ack == (synack + 1) % 2**32:
            return True
    return False


def _rst_senders(s: Stream, client: Endpoint) -> str | None:
    sides = {s.side(who, client) for who, fl in zip(s.senders, s.flags) if fl & RST}
    return "both" if len(sides) == 2 else next(iter(sides), None)


def _same_irtt(s: Stream, _: Endpoint, r: Rec) -> bool | None:
    if s.irtt_end & RST:
        return None   # tshark's iRTT ended on a RST: a refusal's time, no handshake's
    ours: float | None = r["handshake"]["irtt"]
    if s.irtt is None or ours is None:
        return s.irtt is None and ours is None
    return abs(ours - s.irtt) <= 2e-6      # both from microsecond timestamps


def _options_agree(s: Stream, _: Endpoint, r: Rec) -> bool:
    hs = r["handshake"]
    return bool(hs["client_options"] == s.syn_options
                and hs["server_options"] == s.synack_options)


def _anomaly(name: str) -> Metric:
    return lambda s, _, r: s.anomalies[name] == r.get("anomalies", {}).get(name, 0)


def _syn_retransmits(s: Stream, client: Endpoint) -> int:
    syns = sum(1 for who, fl in zip(s.senders, s.flags) if fl & (SYN | ACK) == SYN)
    return max(syns - 1, 0)


def _both_fins(s: Stream, client: Endpoint) -> bool:
    return {s.side(who, client) for who, fl in zip(s.senders, s.flags) if fl & FIN} \
        == {"client", "server"}


METRICS: dict[str, Metric] = {
    "packets per side": lambda s, c, r: _per_side(s, c) == r["packets"],
    "iRTT": _same_irtt,
    "SYN retransmits": lambda s, c, r: _syn_retransmits(s, c)
    == r["handshake"]["syn_retransmits"],
    # where tshark saw a FIN: its sender is the initiator ("both" when the FINs cross)
    "close initiator (first FIN)": _initiator,
    **{f"anomalies.{name}": _anomaly(name) for name in ANOMALIES},
    # the SYN sender (else the SYN-ACK's receiver) is the client; no SYN at all: moot
    "roles": lambda s, c, r: None if s.client is None
    else endpoint(r["client"]) == s.client,
    "handshake complete": lambda s, c, r: _complete(s, c) == r["handshake"]["complete"],
    "options": _options_agree,
    "both FINs": lambda s, c, r: _both_fins(s, c) == (
        "F" in r["history"] and "f" in r["history"]),
    "reset_by": lambda s, c, r: _rst_senders(s, c) == r["close"]["reset_by"],
}
CONNECTIONS = "number of connections (tcp.stream)"
NAMES = (CONNECTIONS, *METRICS)


@dataclasses.dataclass
class FileResult:
    """Per stream, per metric: True / False / None (does not apply)."""

    path: Path
    streams: int
    ours: int
    outcome: dict[int, dict[str, bool | None]]
    records: dict[int, list[Rec]]     # stream -> our connections on it
    unmatched: list[Rec]              # our connections on no tshark stream


def our_records(path: Path) -> list[Rec]:
    import analyzer
    return list(analyzer.read(str(path)).records())


def compare(path: Path, streams: dict[int, Stream], records: Sequence[Rec]) -> FileResult:
    by_tuple: dict[frozenset[Endpoint], list[Rec]] = {}
    for r in records:
        by_tuple.setdefault(frozenset((endpoint(r["client"]), endpoint(r["server"]))),
                            []).append(r)
    outcome: dict[int, dict[str, bool | None]] = {}
    mapped: dict[int, list[Rec]] = {}
    for n, s in streams.items():
        first, last = s.frames[0], s.frames[-1]
        frames = set(s.frames)
        mine = [r for r in by_tuple.get(frozenset((s.a, s.b)), [])
                if r["first_packet"] <= last and r["last_packet"] >= first
                and any(f in frames for f in range(r["first_packet"], r["last_packet"] + 1))]
        mapped[n] = mine
        ok = len(mine) == 1 and (mine[0]["first_packet"], mine[0]["last_packet"]) == (
            first, last)
        row: dict[str, bool | None] = {CONNECTIONS: ok}
        rec = next((r for r in mine if r["first_packet"] == first), mine[0] if mine else None)
        for name, metric in METRICS.items():
            if rec is None:
                row[name] = False
                continue
            client = endpoint(rec["client"])
            row[name] = metric(s, client, rec)
        outcome[n] = row
    seen = {id(r) for rs in mapped.values() for r in rs}
    return FileResult(path, len(streams), len(records), outcome, mapped,
                      [r for r in records if id(r) not in seen])


def compare_file(path: Path) -> FileResult:
    return compare(path, tshark_streams(run_tshark(path)), our_records(path))


def compare_files(paths: Sequence[Path], workers: int = 3) -> list[FileResult]:
    """tshark runs in parallel (it is a separate process); results in ``paths`` order."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as pool:
        rows = list(pool.map(run_tshark, paths))
    return [compare(p, tshark_streams(r), our_records(p)) for p, r in zip(paths, rows)]


@dataclasses.dataclass
class Table:
    """Agreement per metric over many files."""

    agree: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    total: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    streams: int = 0
    ours: int = 0
    files: int = 0

    def add(self, res: FileResult, skip: Callable[[str, int, str], bool] | None = None) -> None:
        """Count ``res``; ``skip(file, stream, metric)`` leaves a known difference out."""
        self.files += 1
        self.streams += res.streams
        self.ours += res.ours
        for n, row in res.outcome.items():
            for name, ok in row.items():
                if ok is None or (skip and not ok and skip(res.path.name, n, name)):
                    continue
                self.total[name] += 1
                self.agree[name] += bool(ok)

    def ratio(self, name: str) -> float:
        return self.agree[name] / self.total[name] if self.total[name] else 1.0

    def markdown(self) -> str:
        lines = ["| metric | streams compared | agree |", "| --- | ---: | ---: |"]
        for name in NAMES:
            label = name if name == CONNECTIONS else f"`{name}`" if "." in name else name
            extra = f" ({self.ours:,} reported for {self.streams:,} streams)" \
                if name == CONNECTIONS else ""
            lines.append(f"| {label} | {self.total[name]:,} | "
                         f"{100 * self.ratio(name):.1f}%{extra} |")
        return "\n".join(lines)


def differences(res: FileResult, metric: str) -> list[int]:
    return [n for n, row in res.outcome.items() if row.get(metric) is False]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--diffs", metavar="METRIC", help="list the streams that differ on it")
    args = ap.parse_args(argv)
    table = Table()
    for res in compare_files(args.files or all_captures()):
        path = res.path
        table.add(res)
        for r in res.unmatched:
            print(f"{path.name}: connection {r['id']} ({r['client']} -> {r['server']}, "
                  f"packets {r['first_packet']}-{r['last_packet']}) is on no tshark stream")
        if args.diffs:
            for n in differences(res, args.diffs):
                ours = [(r["id"], r["first_packet"], r["last_packet"]) for r in res.records[n]]
                print(f"{path.name} stream {n}: ours {ours}")
    print(f"{table.files} files, {table.streams:,} tshark streams, {table.ours:,} connections")
    print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
