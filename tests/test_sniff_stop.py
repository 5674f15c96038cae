"""Ctrl-C or SIGTERM must not lose the last packets (issue 12, item 7).

``handshake sniff`` with the default engine (dumpcap) and a parallel ``tcpdump`` capture
the same steady loopback traffic on a port of their own; both get the signal at the same
moment. Every packet tcpdump saved with a time before the signal must be in our ``-w``
file and counted by our engine. Before the fix dumpcap's last 28-218 ms were lost: it
exits on SIGINT without the TPACKET_V3 block the kernel had not yet handed over.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.root, pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("dumpcap") or not shutil.which("tcpdump"),
    reason="needs root, dumpcap and tcpdump")]


def pcap_packets(path: Path) -> list[tuple[int, bytes]]:
    """(time in microseconds, frame bytes) of every record of a classic pcap file."""
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data)[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, pos)
        out.append((sec * 1_000_000 + (frac // 1000 if nano else frac),
                    data[pos + 16:pos + 16 + caplen]))
        pos += 16 + caplen
    return out


class Traffic:
    """A server and clients on 127.0.0.1 exchanging small messages every millisecond."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        for _ in range(2):
            threading.Thread(target=self._client, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def _client(self) -> None:
        while not self.stop.is_set():
            with socket.create_connection(("127.0.0.1", self.port)) as c:
                for _ in range(200):
                    if self.stop.is_set():
                        break
                    c.sendall(b"ping")
                    c.recv(16)
                    time.sleep(0.001)

    def close(self) -> None:
        self.stop.set()
        self.server.close()


def wait_for_line(stream: object, what: str, timeout: float = 60) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()),  # type: ignore[attr-defined]
                              daemon=True)
    reader.start()
    reader.join(timeout)
    assert box and box[0], f"no {what} within {timeout} s"
    return box[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_keeps_every_packet_captured_before_it(tmp_path: Path, sig: int) -> None:
    traffic = Traffic()
    ref_path, ours_path = tmp_path / "tcpdump.pcap", tmp_path / "ours.pcap"
    ref = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-B",
                            "65536", "-w", str(ref_path), f"tcp port {traffic.port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ours = subprocess.Popen([sys.executable, "-m", "analyzer", "sniff", "-i", "lo", "--port",
                             str(traffic.port), "-w", str(ours_path), "--format", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert "listening on" in wait_for_line(ref.stderr, "tcpdump start")
        wait_for_line(ours.stdout, "event from the sniffer")  # it sees the traffic
        deadline = time.monotonic() + 30
        while len(pcap_packets(ref_path)) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling a file both capture into, not a fixed wait
        signalled_us = time.time_ns() // 1000
        ours.send_signal(sig)
        ref.send_signal(sig)
        _, err = ours.communicate(timeout=60)
        ref.communicate(timeout=60)
    finally:
        traffic.close()
        for p in (ours, ref):
            if p.poll() is None:
                p.kill()
    assert ours.returncode == 0, err
    saved_list = pcap_packets(ours_path)
    # Frames are matched by their bytes (ports, sequence numbers and TCP timestamps make
    # each unique): the two tools round the kernel's time to microseconds differently.
    saved = {frame for _, frame in saved_list}
    # tcpdump started first: compare from our first packet to the signal
    before = [p for p in pcap_packets(ref_path) if saved_list[0][0] <= p[0] < signalled_us]
    assert len(before) >= 100
    missing = [p for p in before if p[1] not in saved]
    assert not missing, (f"{len(missing)} of {len(before)} packets captured before the "
                         f"signal are missing, the last {(signalled_us - missing[0][0]) / 1000:.0f}"
                         " ms before it")
    # ... and the engine counted what was saved ("handshake: N packets ..." on stderr)
    import analyzer

    seen = int(err.split("handshake: ")[-1].split()[0])
    assert seen == analyzer.read(str(ours_path)).stats["packets_framed"] >= len(before)
