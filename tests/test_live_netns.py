"""Real connections between two network namespaces, captured by tcpdump, analysed.

Needs root, iproute2 and tcpdump; skipped otherwise. Only the namespaces' own addresses
(192.0.2.0/24, a documentation range) carry traffic.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import capture_has_ended, wait_until

import analyzer

HERE = Path(__file__).parent
PEER = str(HERE / "netns_peer.py")
SERVER_ADDR, CLIENT_ADDR, PORT = "192.0.2.2", "192.0.2.1", 9502

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not shutil.which("ip") or not shutil.which("tcpdump"),
                       reason="needs iproute2 and tcpdump"),
]


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[str, str]]:
    tag = f"hs{os.getpid()}"
    cli, srv = f"{tag}c", f"{tag}s"
    sh("ip", "netns", "add", cli)
    sh("ip", "netns", "add", srv)
    try:
        sh("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        sh("ip", "link", "set", f"{tag}a", "netns", cli)
        sh("ip", "link", "set", f"{tag}b", "netns", srv)
        for ns, dev, addr in ((cli, f"{tag}a", CLIENT_ADDR), (srv, f"{tag}b", SERVER_ADDR)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield cli, srv
    finally:
        subprocess.run(["ip", "netns", "del", cli], capture_output=True)
        subprocess.run(["ip", "netns", "del", srv], capture_output=True)


@pytest.fixture(scope="module")
def live_capture(namespaces: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Path, dict[str, int]]:
    cli, srv = namespaces
    pcap = tmp_path_factory.mktemp("live") / "netns.pcap"
    dev = f"hs{os.getpid()}a"
    dump = subprocess.Popen(
        ["ip", "netns", "exec", cli, "tcpdump", "-i", dev, "-U", "-w", str(pcap), "-Z", "root",
         "--immediate-mode", "tcp"], stderr=subprocess.PIPE, text=True)
    server = subprocess.Popen(["ip", "netns", "exec", srv, sys.executable, PEER, "server",
                               SERVER_ADDR, str(PORT)], stdout=subprocess.PIPE, text=True)
    ports: dict[str, int] = {}
    try:
        assert dump.stderr is not None and server.stdout is not None
        assert "listening on" in dump.stderr.readline()
        assert server.stdout.readline().strip() == "ready"
        for scenario, port in (("normal", PORT), ("serverclose", PORT), ("halfclose", PORT),
                               ("rst", PORT), ("refused", PORT + 1)):
            out = subprocess.run(["ip", "netns", "exec", cli, sys.executable, PEER, "client",
                                  SERVER_ADDR, str(port), scenario],
                                 check=True, capture_output=True, text=True, timeout=20)
            ports[scenario] = int(out.stdout.split()[0])
        # tcpdump has written each session's last packet (not a fixed wait)
        wait_until(capture_has_ended(pcap, ports.values()), "every session's last packet")
    finally:
        server.kill()
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
    return pcap, ports


def by_client_port(pcap: Path) -> dict[int, dict]:
    cap = analyzer.read(str(pcap))
    assert cap.error is None and not cap.warnings
    return {int(r["client"].rsplit(":", 1)[1]): r for r in cap.records()}


def test_every_scenario_is_one_connection(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    recs = by_client_port(pcap)
    assert set(ports.values()) <= set(recs)
    for rec in recs.values():
        assert rec["client"].startswith(CLIENT_ADDR) and not rec["roles_guessed"]


def test_client_close(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    rec = by_client_port(pcap)[ports["normal"]]
    assert rec["conn_state"] == "SF"
    assert rec["handshake"]["complete"] and rec["handshake"]["irtt"] > 0
    assert rec["close"]["kind"] in ("four_way", "three_way")
    assert rec["close"]["initiator"] == "client" and rec["close"]["time_wait"] == "client"
    assert [s for _, s in rec["states"]["client"]] == [
        "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert [s for _, s in rec["states"]["server"]] == [
        "LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    opts = rec["handshake"]["client_options"]
    assert opts["mss"] == 1460 and opts["sack_permitted"] and opts["timestamps"]


def test_server_close(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    rec = by_client_port(pcap)[ports["serverclose"]]
    assert rec["conn_state"] == "SF"
    assert rec["close"]["initiator"] == "server" and rec["close"]["time_wait"] == "server"
    assert [s for _, s in rec["states"]["server"]][-1] == "TIME_WAIT"
    assert [s for _, s in rec["states"]["client"]][-1] == "CLOSED"


def test_half_close(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    rec = by_client_port(pcap)[ports["halfclose"]]
    assert rec["close"]["half_close"] is True
    assert rec["close"]["initiator"] == "client"
    assert rec["payload_bytes"]["server"] > len("halfclose\n")
    assert "CLOSE_WAIT" in [s for _, s in rec["states"]["server"]]


def test_rst_abort(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    rec = by_client_port(pcap)[ports["rst"]]
    assert rec["close"]["kind"] == "reset" and rec["close"]["reset_by"] == "client"
    assert rec["conn_state"] in ("RSTO", "RSTR")
    assert rec["states"]["client"][-1][1] == "CLOSED"


def test_refused(live_capture: tuple[Path, dict[str, int]]) -> None:
    pcap, ports = live_capture
    rec = by_client_port(pcap)[ports["refused"]]
    assert rec["close"]["kind"] == "refused" and rec["conn_state"] == "REJ"
    assert [s for _, s in rec["states"]["server"]] == ["CLOSED"]
    assert rec["history"] == "Sr"


def test_cli_matches_library(live_capture: tuple[Path, dict[str, int]]) -> None:
    import json

    pcap, _ = live_capture
    out = subprocess.run([sys.executable, "-m", "analyzer", "read", str(pcap), "--format",
                          "jsonl"], check=True, capture_output=True, text=True).stdout
    assert [json.loads(line) for line in out.splitlines()] == list(
        analyzer.read(str(pcap)).records())
