"""``handshake sniff`` / ``handshake demo`` / LiveSession on real traffic.

Everything runs in a network namespace this module creates (its own loopback): the echo
server of netns_peer.py and its scripted clients, the sniffer, the reference captures.
Needs root, iproute2, tcpdump and dumpcap; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from waiting import Lines, capture_has_ended, closed_events, wait_until

import analyzer

HERE = Path(__file__).parent
ROOT = HERE.parent
PEER = str(HERE / "netns_peer.py")
ADDR, PORT = "127.0.0.1", 9502
FILTER = f"tcp port {PORT} or tcp port {PORT + 1}"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("ip", "tcpdump", "dumpcap")),
                       reason="needs iproute2, tcpdump and dumpcap"),
]


@contextmanager
def namespace(name: str) -> Iterator[str]:
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    with namespace(f"hssn{os.getpid()}") as name:
        yield name


def in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *args]


def start_sniff(ns: str, *args: str) -> subprocess.Popen[str]:
    """``handshake sniff`` inside the namespace, returned once it captures."""
    proc = subprocess.Popen(in_ns(ns, sys.executable, "-m", "analyzer", "sniff", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "sniffing" in line, line + proc.stderr.read()
    return proc


def run_clients(ns: str, scenarios: list[tuple[str, int]]) -> dict[str, int]:
    ports = {}
    for scenario, port in scenarios:
        out = subprocess.run(in_ns(ns, sys.executable, PEER, "client", ADDR, str(port),
                                   scenario), check=True, capture_output=True, text=True,
                             timeout=20)
        ports[scenario] = int(out.stdout.split()[0])
    return ports


@pytest.fixture(scope="module")
def server(ns: str) -> Iterator[None]:
    proc = subprocess.Popen(in_ns(ns, sys.executable, PEER, "server", ADDR, str(PORT)),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield
    proc.kill()
    proc.wait()


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGINT, lines: Lines | None = None
         ) -> tuple[int, str, str]:
    """Signal the sniffer, wait for it; its stdout comes from ``lines`` when a Lines
    reader already consumes it."""
    proc.send_signal(sig)
    if lines is None:
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err
    proc.wait(timeout=30)
    assert proc.stderr is not None
    return proc.returncode, "\n".join(lines.close()), proc.stderr.read()


def jsonable(records: Any) -> Any:
    return json.loads(json.dumps(list(records)))


SCENARIOS = [("normal", PORT), ("serverclose", PORT), ("halfclose", PORT), ("rst", PORT),
             ("refused", PORT + 1)]


@pytest.fixture(scope="module")
def sniffed(ns: str, server: None, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[list[dict[str, Any]], Path, Path, dict[str, int], str, int]:
    """The scenarios sniffed by the default engine, with a reference tcpdump beside it."""
    tmp = tmp_path_factory.mktemp("sniff")
    out, ref = tmp / "live.pcap", tmp / "ref.pcap"
    # --immediate-mode: without it tcpdump drops the last, unfinished ring block at exit.
    dump = subprocess.Popen(in_ns(ns, "tcpdump", "-i", "lo", "--immediate-mode", "-U", "-w",
                                  str(ref), FILTER),
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None and "listening on" in dump.stderr.readline()
    sniff = start_sniff(ns, "-i", "lo", "-f", FILTER, "-w", str(out), "--format", "jsonl")
    assert sniff.stdout is not None
    lines = Lines(sniff.stdout)
    ports = run_clients(ns, SCENARIOS)
    # Stop once every session's last packet is in: the sniffer's closed events, and the
    # reference file holding every connection to its end.
    lines.wait_for(closed_events(ports.values()), "a closed event for every scenario")
    status, stdout, stderr = stop(sniff, lines=lines)
    wait_until(capture_has_ended(ref, ports.values()), "the reference capture's last packets")
    stop(dump)  # type: ignore[arg-type]
    events = [json.loads(line) for line in stdout.splitlines()]
    return events, out, ref, ports, stderr, status


def by_port(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(r["client"].rsplit(":", 1)[1]): r for r in records}


def test_live_records_equal_handshake_read_of_the_saved_file(sniffed: Any) -> None:
    events, out, ref, _, stderr, status = sniffed
    assert status == 0, stderr
    final = [e["record"] for e in events if e["event"] == "final"]
    saved = analyzer.read(str(out))
    assert saved.error is None and not saved.warnings
    assert final == jsonable(saved.records())
    cli = subprocess.run([sys.executable, "-m", "analyzer", "read", str(out), "--format",
                          "jsonl"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert final == [json.loads(line) for line in cli.stdout.splitlines()]
    # Every packet the reference tcpdump saw, the sniffer saw too.
    reference = analyzer.read(str(ref))
    assert saved.stats["tcp"] == reference.stats["tcp"] > 30
    assert f"{saved.stats['packets_framed']} packets" in stderr and "kernel drops: 0" in stderr


def test_live_records_match_the_scenarios(sniffed: Any) -> None:
    events, _, _, ports, _, _ = sniffed
    recs = by_port([e["record"] for e in events if e["event"] == "final"])
    normal, srv, half, rst, refused = (recs[ports[s]] for s, _ in SCENARIOS)
    assert normal["close"]["initiator"] == "client" and normal["close"]["time_wait"] == "client"
    assert normal["conn_state"] == "SF" and normal["handshake"]["irtt"] > 0
    assert srv["close"]["initiator"] == "server" and srv["close"]["time_wait"] == "server"
    assert half["close"]["half_close"] is True
    assert rst["close"]["kind"] == "reset" and rst["close"]["reset_by"] == "client"
    assert refused["close"]["kind"] == "refused" and refused["conn_state"] == "REJ"


def test_events_follow_each_connection(sniffed: Any) -> None:
    events, _, _, ports, _, _ = sniffed
    closed = {int(e["client"].rsplit(":", 1)[1]): e for e in events if e["event"] == "closed"}
    assert closed[ports["normal"]]["ended"] == "closed by client"
    assert closed[ports["serverclose"]]["ended"] == "closed by server"
    assert closed[ports["rst"]]["ended"] == "reset by client"
    assert closed[ports["refused"]]["ended"] == "refused"
    handshakes = {int(e["client"].rsplit(":", 1)[1]) for e in events
                  if e["event"] == "handshake"}
    assert handshakes == {ports[s] for s in ("normal", "serverclose", "halfclose", "rst")}
    # The state events of a connection replay its record's state history exactly.
    final = by_port([e["record"] for e in events if e["event"] == "final"])
    for port in ports.values():
        for who in ("client", "server"):
            seen = [[e["time"], e["to"]] for e in events if e["event"] == "state"
                    and e["client"].endswith(f":{port}") and e["endpoint"] == who
                    and e["how"] != "unexpected"]
            assert seen == final[port]["states"][who]
    # A closed event comes after the state change that closed it, never before.
    kinds = [e["event"] for e in events]
    assert kinds.index("closed") > kinds.index("handshake") > kinds.index("state")
    assert kinds[-len(final):] == ["final"] * len(final)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("engine", ["default", "tcpdump"])
def test_signal_mid_capture_leaves_every_packet_in_a_valid_pcap(
        ns: str, server: None, tmp_path: Path, sig: int, engine: str) -> None:
    out = tmp_path / "cut.pcap"
    sniff = start_sniff(ns, "-i", "lo", "--port", str(PORT), "-w", str(out), "--engine",
                        engine, "--format", "jsonl")
    assert sniff.stdout is not None
    lines = Lines(sniff.stdout)
    clients = [subprocess.Popen(in_ns(ns, sys.executable, PEER, "client", ADDR, str(PORT),
                                      "normal"), stdout=subprocess.DEVNULL)
               for _ in range(6)]
    # Stop while the clients are mid-session, once the sniffer has seen a packet (its
    # first state event), however long the loaded machine takes to get there.
    lines.wait_for(bool, "the sniffer's first event")
    status, _, stderr = stop(sniff, sig, lines)
    for client in clients:
        client.wait(timeout=20)
    assert status == 0 and "Traceback" not in stderr
    saved = analyzer.read(str(out))
    assert saved.error is None and not saved.warnings
    seen = int(stderr.split("handshake: ")[-1].split()[0])
    assert seen == saved.stats["packets_framed"] > 0
    if shutil.which("tshark"):
        tshark = subprocess.run(["tshark", "-r", str(out)], capture_output=True, text=True)
        assert tshark.returncode == 0 and len(tshark.stdout.splitlines()) == seen


def test_count_stops_after_exactly_n_packets(ns: str, server: None, tmp_path: Path) -> None:
    out = tmp_path / "count.pcap"
    sniff = start_sniff(ns, "-i", "lo", "--port", str(PORT), "-c", "5", "-w", str(out))
    run_clients(ns, [("normal", PORT)])
    _, err = sniff.communicate(timeout=30)
    assert sniff.returncode == 0, err
    assert analyzer.read(str(out)).stats["packets_framed"] == 5


def test_duration_ends_the_capture(ns: str, tmp_path: Path) -> None:
    started = time.monotonic()
    sniff = start_sniff(ns, "-i", "lo", "--duration", "1", "-w", str(tmp_path / "d.pcap"))
    _, err = sniff.communicate(timeout=30)
    assert sniff.returncode == 0 and "0 packets" in err
    assert 1 <= time.monotonic() - started < 10


@pytest.mark.parametrize("engine", ["scapy", "pyshark"])
def test_other_engines_track_the_same_connections(ns: str, server: None, tmp_path: Path,
                                                  engine: str) -> None:
    pytest.importorskip(engine)
    out = tmp_path / f"{engine}.pcap"
    sniff = start_sniff(ns, "-i", "lo", "-f", FILTER, "-w", str(out), "--engine", engine,
                        "--format", "jsonl")
    assert sniff.stdout is not None
    lines = Lines(sniff.stdout)
    ports = run_clients(ns, [("normal", PORT), ("rst", PORT), ("refused", PORT + 1)])
    if engine == "pyshark":  # pyshark hands over a packet only once the next one arrives
        run_clients(ns, [("refused", PORT + 1)])
    lines.wait_for(closed_events(ports.values()), "a closed event for every scenario")
    status, stdout, stderr = stop(sniff, lines=lines)
    assert status == 0, stderr
    final = [json.loads(line)["record"] for line in stdout.splitlines()
             if '"event": "final"' in line]
    assert final == jsonable(analyzer.read(str(out)).records())
    recs = by_port(final)
    assert recs[ports["normal"]]["close"]["initiator"] == "client"
    assert recs[ports["rst"]]["close"]["kind"] == "reset"
    assert recs[ports["refused"]]["close"]["kind"] == "refused"
    # Loopback shows each packet once, as libpcap does: 2 packets for a refusal.
    assert sum(recs[ports["refused"]]["packets"].values()) == 2


def test_library_session_in_the_namespace(ns: str, server: None, tmp_path: Path) -> None:
    """LiveSession as the notebooks use it: start, events while running, stop, records."""
    script = f"""
import json, subprocess, sys, time
from analyzer.live import LiveSession
s = LiveSession("lo", port={PORT}, write={str(tmp_path / 'lib.pcap')!r})
s.start()
assert s.running
subprocess.run([sys.executable, {PEER!r}, "client", "{ADDR}", "{PORT}", "normal"], check=True,
               capture_output=True)
early = []
end = time.monotonic() + 60
while "closed" not in [e["event"] for e in early]:  # the event this waits for, not a time
    assert time.monotonic() < end, early
    s.wait(0.05)
    early += s.events()
with s.lock:
    during = len(s.capture)
s.stop()
assert s.wait(30) and not s.running
print(json.dumps({{"during": during, "early": [e["event"] for e in early],
                   "late": [e["event"] for e in s.events()], "stats": s.stats(),
                   "records": list(s.capture.records())}}))
"""
    out = subprocess.run(in_ns(ns, sys.executable, "-c", script), capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["during"] == 1 and "closed" in result["early"] and "handshake" in result["early"]
    assert result["late"] == ["final"]
    assert result["stats"]["kernel_drops"] == 0 and result["stats"]["packets"] >= 10
    assert result["records"] == jsonable(analyzer.read(str(tmp_path / "lib.pcap")).records())


def test_demo_sessions_in_the_namespace(tmp_path: Path) -> None:
    out = tmp_path / "demo.pcap"
    with namespace(f"hsdm{os.getpid()}") as ns:  # its own: the demo serves port 9502 itself
        demo = subprocess.run(in_ns(ns, sys.executable, "-m", "analyzer", "demo", "-w",
                                    str(out), "--format", "live"), capture_output=True,
                              text=True, timeout=90, cwd=ROOT)
    assert demo.returncode == 0, demo.stderr
    assert f"saved to {out}" in demo.stderr
    assert "client SYN_SENT -> ESTABLISHED" in demo.stdout  # the log, on a non-terminal
    recs = list(analyzer.read(str(out)).records())
    kinds = [r["close"]["kind"] for r in recs]
    assert kinds[0] == "refused" and "reset" in kinds and "three_way" in kinds
    assert any(r["close"]["half_close"] for r in recs)
    assert len(recs) == 5 + 6 and all(r["server"] == f"{ADDR}:{PORT}" for r in recs)
    assert sum(r["handshake"]["syn_retransmits"] for r in recs[5:]) > 0  # backlog overflow


def test_interface_going_down_stops_cleanly_and_keeps_the_file(ns: str, tmp_path: Path
                                                                ) -> None:
    tag = f"hsd{os.getpid() % 100000}"
    subprocess.run(["ip", "-n", ns, "link", "add", f"{tag}a", "type", "veth", "peer", "name",
                    f"{tag}b"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", f"{tag}a", "up"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", f"{tag}b", "up"], check=True)
    out = tmp_path / "down.pcap"
    sniff = start_sniff(ns, "-i", f"{tag}a", "-w", str(out))  # returns once it captures
    subprocess.run(["ip", "-n", ns, "link", "del", f"{tag}a"], check=True)
    _, err = sniff.communicate(timeout=30)
    assert sniff.returncode == 1, err
    assert "capture ended" in err and "Traceback" not in err
    assert analyzer.read(str(out)).error is None


def run_cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "analyzer", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


NO_CAPS = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
@pytest.mark.parametrize("engine", ["default", "tcpdump", "scapy"])
def test_without_cap_net_raw_one_line_with_the_fixes(engine: str) -> None:
    res = run_cli("sniff", "-i", "lo", "--engine", engine, prefix=NO_CAPS)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert "CAP_NET_RAW" in lines[0] and "sudo" in lines[0]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_demo_without_privileges_offers_the_replay() -> None:
    res = run_cli("demo", prefix=NO_CAPS)
    assert res.returncode == 2 and "CAP_NET_RAW" in res.stderr
    assert "handshake demo --replay" in res.stderr


def test_unknown_interface_lists_the_real_ones() -> None:
    res = run_cli("sniff", "-i", "nosuch0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no interface 'nosuch0'" in res.stderr and "lo" in res.stderr


@pytest.mark.parametrize("engine", ["default", "tcpdump"])
def test_bad_filter_reports_the_compiler_message(engine: str) -> None:
    res = run_cli("sniff", "-i", "lo", "-f", "tcp and bogus", "--engine", engine)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "bad capture filter" in res.stderr and "syntax error" in res.stderr
