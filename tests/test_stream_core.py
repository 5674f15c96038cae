"""The streaming core (csrc/track.c, ``Engine(stream=True)``) against the in-memory engine,
with the paths that only big captures reach on the normal schedule (a sweep needs 4096
packets and 1 s of capture time) forced on small inputs by the test hook
``Engine(sweep_every=1)``: a sweep before every packet, so connections are written out
during the read, removed from the flow table (backward-shift deletion), their Conn slots
and transitions reused, and bare SYNs (Pends) replayed when their second packet comes or
when they are taken. The inputs are fed in 300-byte pieces with ``take()`` after each, so
the reuse happens while the file is still being read.

* Every sample capture, Zeek corpus trace and capture of other stacks, default and
  ``zeek_timers``, ``idle_ns`` 0, 1 ns and 2 s, id and end order: the same records (same
  ids, same fields; end order: the same set) as the in-memory engine with the same
  options. A file whose times step back further after something was written out is the
  documented exception (``time_back_late``).
* Hand-made segments for each rule of ``conn_over``: a closed connection and a late
  packet 59 s vs 61 s later, an unanswered SYN repeated at 170 s vs 190 s, an open
  connection quiet longer than ``idle_ns``; a SYN flood (every attempt S0, ``open``
  bounded); a 4-tuple reused while its old connection waits in the queue; enough
  connections that the flow table rehashes while entries are deleted; a seeded random
  differential over few 4-tuples.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import analyzer.records  # noqa: F401  (hands the names to the engine)
from analyzer import _engine
from analyzer.fsm import table_bytes
from analyzer.results import ConnBatch
from analyzer.source import open_source

from segments import ACK, FA, FIN, PA, RA, RST, SA, SYN, packed  # tests/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpus"
FILES = (sorted((ROOT / "captures").glob("*.pcap*"))
         + sorted((SHARED / "zeek" / "traces").glob("*.pcap*"))
         + sorted(p for p in (SHARED / "examples").glob("*") if p.suffix in (".pcap", ".pcapng")))
MS = 1_000_000
S = 1000 * MS

Record = dict[str, Any]


def engine(stream: bool, sweep_every: int = 1, **options: Any) -> _engine.Engine:
    if stream:
        options.update(stream=True, sweep_every=sweep_every)
    return _engine.Engine(table_bytes(), **options)


def take(e: _engine.Engine, limit: int, final: bool = False) -> list[Record]:
    return list(ConnBatch(e.take(limit, final)).records())


def take_rest(e: _engine.Engine) -> list[Record]:
    e.finish()
    out: list[Record] = []
    while batch := take(e, 5, True):
        out += batch
    return out


def everything(e: _engine.Engine) -> list[Record]:
    e.finish()
    return list(ConnBatch(e.columns(0, e.conn_count())).records())


def by_id(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r["id"])


# ---- every capture ---------------------------------------------------------------------


def capture_bytes(path: Path) -> bytes:
    return b"".join(chunk.data for chunk in open_source(str(path)).chunks())


def feed_pieces(e: _engine.Engine, data: bytes, stream: bool) -> list[Record]:
    """``data`` fed 300 bytes at a time (the unframed rest kept, as a live capture does),
    a few connections taken after each piece."""
    out: list[Record] = []
    pending = bytearray()
    for k in range(0, len(data), 300):
        pending += data[k:k + 300]
        try:
            used = e.feed(pending)
        except _engine.FormatError:
            break
        del pending[:used]
        if stream:
            out += take(e, 7)
    return out


@pytest.mark.parametrize("zeek_timers", [False, True], ids=["default", "zeek_timers"])
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_streamed_records_are_the_in_memory_records(path: Path, zeek_timers: bool) -> None:
    data = capture_bytes(path)
    for idle_ns in (0, 1, 2 * S):
        mem = engine(False, idle_ns=idle_ns, zeek_timers=zeek_timers)
        feed_pieces(mem, data, False)
        want = everything(mem)
        for order_end in (False, True):
            e = engine(True, idle_ns=idle_ns, zeek_timers=zeek_timers, order_end=order_end)
            during = feed_pieces(e, data, True)
            got = during + take_rest(e)
            stats = e.stats()
            assert stats["written"] == len(got) == stats["connections"]
            assert stats["open"] == 0
            if stats["time_back_late"]:
                # times stepped back further after a write-out (echo.pcapng with idle_ns
                # 1 ns): a connection may have gone out early, as the read warns
                continue
            assert (by_id(got) if order_end else got) == want, (idle_ns, order_end)
            if idle_ns == 1 and not zeek_timers and len(want) > 1:  # Zeek: its own timers
                assert during, "nothing was written out during the read"


# ---- hand-made segments ----------------------------------------------------------------

# (time in ms, sender "ip:port", receiver "ip:port", flags, seq, ack, payload length)
Seg = tuple[int, str, str, int, int, int, int]


def endpoint(text: str) -> tuple[bytes, int]:
    host, port = text.rsplit(":", 1)
    return packed(host), int(port)


def feed_segments(e: _engine.Engine, segs: Iterable[Seg], stream: bool,
                  take_every: int = 1) -> list[Record]:
    out: list[Record] = []
    for k, (t_ms, src, dst, flags, seq, ack, length) in enumerate(segs):
        (a, sport), (b, dport) = endpoint(src), endpoint(dst)
        e.feed_segment(t_ms * MS, a, b, sport, dport, flags, seq % 2**32, ack % 2**32, length)
        if stream and k % take_every == 0:
            out += take(e, 3)
    return out


def both(segs: list[Seg], **options: Any) -> list[Record]:
    """The records of ``segs`` in memory; streamed (sweeps before every packet, by id and
    by end) they must be the same."""
    mem = engine(False, **options)
    feed_segments(mem, segs, False)
    want = everything(mem)
    for order_end in (False, True):
        e = engine(True, order_end=order_end, **options)
        got = feed_segments(e, segs, True) + take_rest(e)
        assert (by_id(got) if order_end else got) == want, order_end
    return want


C, SV = "10.0.0.1:40000", "10.0.0.2:80"


def closed(t: int, c: str = C, s: str = SV, isn: int = 100) -> list[Seg]:
    """A connection opened and closed by four-way handshake from ``t`` ms on."""
    return [(t, c, s, SYN, isn, 0, 0), (t + 1, s, c, SA, 5000, isn + 1, 0),
            (t + 2, c, s, ACK, isn + 1, 5001, 0), (t + 3, c, s, FA, isn + 1, 5001, 0),
            (t + 4, s, c, ACK, 5001, isn + 2, 0), (t + 5, s, c, FA, 5001, isn + 2, 0),
            (t + 6, c, s, ACK, isn + 2, 5002, 0)]


@pytest.mark.parametrize("late_s,connections", [(59, 1), (61, 2)])
def test_a_late_packet_after_a_close(late_s: int, connections: int) -> None:
    """Closed, then the client's last ACK again: within the 60 s linger (Linux's
    TIME-WAIT) it is the same connection; after it, a new one (mid-stream)."""
    segs = closed(0) + [(6 + late_s * 1000, C, SV, ACK, 102, 5002, 0)]
    recs = both(segs)
    assert len(recs) == connections
    assert recs[0]["close"]["kind"] == "four_way"
    assert recs[0]["packets"]["client"] == 4 + (connections == 1)
    if connections == 2:
        assert recs[1]["packets"] == {"client": 1, "server": 0}
        assert recs[1]["first_packet"] == 8


@pytest.mark.parametrize("again_s,connections", [(170, 1), (190, 2)])
def test_an_unanswered_syn_repeated(again_s: int, connections: int) -> None:
    """A bare SYN (kept as a Pend when streaming) sent again with the same ISN: within
    R2 (3 minutes, RFC 9293 3.8.3) a retransmission; after it, a new attempt."""
    recs = both([(0, C, SV, SYN, 7, 0, 0), (again_s * 1000, C, SV, SYN, 7, 0, 0)])
    assert len(recs) == connections
    assert all(r["conn_state"] == "S0" and r["close"]["kind"] == "unanswered" for r in recs)
    assert recs[0]["handshake"]["syn_retransmits"] == 2 - connections


@pytest.mark.parametrize("quiet_s,idle_s,connections", [(9, 10, 1), (11, 10, 2), (3600, 0, 1)])
def test_an_open_connection_quiet_longer_than_idle_ns(quiet_s: int, idle_s: int,
                                                      connections: int) -> None:
    segs = closed(0)[:3] + [(2 + quiet_s * 1000, C, SV, PA, 101, 5001, 10)]
    recs = both(segs, idle_ns=idle_s * S)
    assert len(recs) == connections
    assert recs[-1]["payload_bytes"]["client"] == 10


def flood(n: int, per_s: int) -> list[Seg]:
    """``n`` SYNs from distinct sources to one server, ``per_s`` a second, none answered."""
    return [(k * 1000 // per_s, f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}:{1024 + k % 60000}",
             "192.0.2.80:80", SYN, k * 2654435761, 0, 0) for k in range(n)]


def test_a_small_syn_flood_streams_as_in_memory() -> None:
    recs = both(flood(1500, 10))  # 150 s: the first ones expire (180 s) only at the end
    assert len(recs) == 1500
    recs = both(flood(600, 2))  # 300 s: expiring as it goes
    assert [r["id"] for r in recs] == list(range(600))
    assert {r["conn_state"] for r in recs} == {"S0"}


@pytest.mark.parametrize("order_end", [False, True], ids=["id", "end"])
def test_a_syn_flood_is_reported_and_open_stays_bounded(order_end: bool) -> None:
    """60,000 unanswered SYNs at 100/s on the normal sweep schedule: each is an S0 record
    (none lost, ids in order by id), and what the engine holds (``open``) stays near the
    attempts of the last 180 s (18,000) plus one sweep period, not the whole flood."""
    n, per_s = 60_000, 100
    e = engine(True, sweep_every=0, order_end=order_end)
    got: list[Record] = []
    peak = 0
    for k, seg in enumerate(flood(n, per_s)):
        feed_segments(e, [seg], False)
        if k % 500 == 0:
            peak = max(peak, e.stats()["open"])
            got += take(e, 4096)
    assert 0 < len(got) < n  # written out during the read
    got += take_rest(e)
    assert len(got) == n == e.stats()["written"]
    assert sorted(r["id"] for r in got) == list(range(n))
    if not order_end:
        assert [r["id"] for r in got] == list(range(n))
    assert {r["conn_state"] for r in got} == {"S0"}
    # 180 s of attempts, plus a sweep period (4096 packets + open / 2) and a take period
    assert 18_000 <= peak < 18_000 + 4096 + 18_000 // 2 + 3000 + 500


def test_the_write_out_queue_slides_down_while_it_is_taken() -> None:
    """One connection written out per packet (every SYN is over at the next, idle_ns 1 ns)
    and two taken every third packet: the queue's read position passes half its capacity
    while entries still wait, so it slides down (push_done) instead of growing."""
    segs = flood(3000, 1000)
    e = engine(True, idle_ns=1, order_end=True)
    got: list[Record] = []
    for k, seg in enumerate(segs):
        feed_segments(e, [seg], False)
        if k % 3 == 0:
            got += take(e, 2)
    assert 1900 < len(got) <= 2000
    got += take_rest(e)
    mem = engine(False, idle_ns=1)
    feed_segments(mem, segs, False)
    assert by_id(got) == everything(mem)
    assert [r["id"] for r in got] == list(range(3000))  # each over at the next packet


def test_a_four_tuple_reused_while_its_old_connection_waits() -> None:
    """By id, a connection left open (id 0) holds back the write-out of every later
    one. Meanwhile 4-tuple U is reset (id 2) and, before it is over, reused by a SYN with
    a new ISN (id 3: the Wireshark analysis goes on, reused_ports); 4-tuple T is closed
    (id 1), over 60 s later and reused (id 4). When id 0 is over, ids 1 to 3 go out and
    leave the flow table: the later connections of T and U must still be found by their
    next packets."""
    first, t_, u = "10.0.0.9:1234", "10.0.0.3:41000", "10.0.0.4:42000"
    segs = (closed(0, c=first)[:3]                                  # id 0, left open
            + closed(1000, c=t_)                                    # id 1 on T
            + [(2000, u, SV, SYN, 10, 0, 0), (2001, SV, u, SA, 900, 11, 0),
               (2002, u, SV, ACK, 11, 901, 0), (2003, u, SV, RA, 11, 901, 0)]  # id 2 on U
            + [(30_000, u, SV, SYN, 99, 0, 0), (30_001, SV, u, SA, 4000, 100, 0),
               (30_002, u, SV, ACK, 100, 4001, 0)]                  # id 3 on U
            + [(70_000, t_, SV, SYN, 777, 0, 0), (70_001, SV, t_, SA, 3000, 778, 0),
               (70_002, t_, SV, ACK, 778, 3001, 0)]                 # id 4 on T
            + [(200_000, first, SV, FA, 101, 5001, 0), (200_001, SV, first, FA, 5001, 102, 0),
               (200_002, first, SV, ACK, 102, 5002, 0)]             # id 0 closes
            + [(300_000, t_, SV, PA, 778, 3001, 5), (300_001, u, SV, PA, 100, 4001, 6)])
    recs = both(segs)
    assert [(r["id"], r["client"]) for r in recs] == [
        (0, first), (1, t_), (2, u), (3, u), (4, t_)]
    assert recs[4]["payload_bytes"]["client"] == 5 and recs[4]["last_packet"] == len(segs) - 1
    assert recs[3]["payload_bytes"]["client"] == 6 and recs[3]["last_packet"] == len(segs)
    assert recs[3]["anomalies"].get("reused_ports") == 1
    assert "reused_ports" not in recs[4]["anomalies"]  # T's old one was over: no carry


def test_the_flow_table_rehashes_while_entries_are_deleted() -> None:
    """20,000 connections, one every 10 ms, each reset at once and over 60 s later: about
    6,000 are in the flow table at a time, so it grows past its first 4,096 slots while
    write-outs delete from it; every packet still finds its own connection."""
    segs: list[Seg] = []
    for k in range(20_000):
        if k % 3:
            c, s = f"10.1.{k >> 8 & 255}.{k & 255}:{2000 + k % 50_000}", "192.0.2.7:443"
        else:  # IPv6 keys too
            c, s = f"2001:db8::{k:x}:{3000 + k % 50_000}", "2001:db8::7:443"
        t = k * 10
        segs += [(t, c, s, SYN, k, 0, 0), (t + 1, s, c, SA, 9, k + 1, 0),
                 (t + 2, c, s, ACK, k + 1, 10, 0), (t + 3, c, s, RA, k + 1, 10, 0)]
    mem = engine(False)
    feed_segments(mem, segs, False)
    want = everything(mem)
    e = engine(True, sweep_every=64)
    got = feed_segments(e, segs, True, take_every=64) + take_rest(e)
    assert got == want
    assert len(got) == 20_000
    assert all(r["packets"] == {"client": 3, "server": 1} for r in got)
    assert {r["close"]["kind"] for r in got} == {"reset"}


def test_a_sweep_does_not_move_zeeks_timers() -> None:
    """Under zeek_timers, a sweep at 120.5 s (a packet of another connection) asked
    zeek_expired about connection 0 and so re-armed its ExpireTimer from 120.5 s: the
    SYN at 128 s then found it over (no Wireshark carry: no reused_ports) where the
    in-memory read, asking at packets only, split it as a reused 4-tuple. Found by the
    random differential below."""
    c, s, other = "10.0.0.1:1001", "10.0.0.2:80", "10.0.0.1:1000"
    segs = [(97_500, c, s, ACK, 0, 100, 1), (106_000, s, c, FA, 1, 2, 1),
            (120_500, s, other, FIN, 2, 2, 0), (122_500, s, c, RST, 101, 0, 1),
            (128_000, c, s, SYN, 101, 101, 0)]
    recs = both(segs, zeek_timers=True)
    assert recs[2]["client"] == c and recs[2]["anomalies"] == {"reused_ports": 1}


FLAGS = [SYN, SA, ACK, PA, FA, RST, RA, FIN, SYN, SYN, ACK]


def random_segments(rng: random.Random) -> list[Seg]:
    """Few hosts and ports (so segments meet), odd flags, and gaps around every limit:
    Zeek's 5 s timers, 60 s linger, 180 s attempt."""
    t, out = 0, []
    for _ in range(rng.randint(1, 30)):
        t += rng.choice([0, 1, 100, 1000, 3000, 5500, 7000, 61_000, 200_000])
        a, b = (f"10.0.0.{rng.randint(1, 2)}:{rng.choice([1000, 80])}" for _ in range(2))
        out.append((t, a, b, rng.choice(FLAGS), rng.choice([0, 1, 2, 100, 101]),
                    rng.choice([0, 1, 2, 100, 101]), rng.choice([0, 0, 1])))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_segments_stream_as_in_memory(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(60):
        segs = random_segments(rng)
        for zeek_timers in (False, True):
            for idle_ns in (0, 4 * S):
                both(segs, zeek_timers=zeek_timers, idle_ns=idle_ns)


# ---- issue 12, item 6: memory under a SYN flood ---------------------------------------

FLOOD_CHILD = """
import sys
from analyzer.cli import main
status = main(["read", "--format", "jsonl", sys.argv[1]])
sys.stdout.flush()
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print("VmHWM", hwm.split()[1], file=sys.stderr)
sys.exit(status)
"""


def read_flood(path: Path) -> tuple[int, int, int]:
    """``handshake read --format jsonl`` of ``path`` in a child: (records, S0 records,
    the child's peak RSS in KiB). VmHWM, not ru_maxrss: ru_maxrss keeps the high-water
    mark of the pytest process the child was forked from. The lines are counted as they
    come, not kept."""
    p = subprocess.Popen([sys.executable, "-c", FLOOD_CHILD, str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert p.stdout is not None and p.stderr is not None
    records = s0 = 0
    rest = b""
    while chunk := p.stdout.read(1 << 20):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        records += len(lines)
        s0 += sum(b'"conn_state":"S0"' in line for line in lines)
    err = p.stderr.read().decode()
    assert p.wait() == 0 and rest == b"", err
    return records, s0, int(err.split("VmHWM")[1].split()[0])


def test_a_syn_flood_costs_a_pend_per_attempt_not_a_conn(tmp_path: Path) -> None:
    """Issue 12, item 6: SYNs from distinct sources to one server, 10,000 a second, none
    answered (benchmarks/bench_flood.py's capture), read by ``handshake read --format
    jsonl``. Every attempt is one S0 line, and what the 300,000 more SYNs of the bigger
    flood cost is far under a Conn each (1,208 bytes): a bare SYN waits as a Pend (about
    100 bytes, plus its flow-table slot and queue entry; arrays grow by doubling). Before
    streaming, 1 M SYNs took 1.27 GB: over 1,200 bytes each."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_flood

    peak = {}
    for n in (100_000, 400_000):
        path = tmp_path / f"flood-{n}.pcap"
        bench_flood.flood_pcap(path, n, 10_000)
        records, s0, peak[n] = read_flood(path)
        assert records == s0 == n
        path.unlink()
    per_syn = (peak[400_000] - peak[100_000]) * 1024 / 300_000
    assert per_syn < 400, f"{per_syn:.0f} bytes of peak memory per SYN"
