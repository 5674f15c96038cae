"""Packet sources for live capture. Each one yields a pcap or pcapng *byte stream*, so the
same compiled engine (``Engine.feed``) tracks live packets and files alike.

* ``ChildSource``: tcpdump (default) or dumpcap writing the stream to a pipe.
* ``ScapySource``: scapy's AsyncSniffer; frames are re-wrapped as pcap records.
* ``PysharkSource``: pyshark's LiveCapture (tshark) with the raw frame bytes.
* ``ReplaySource``: a capture file played back at its own pace (the demo without root).

A source's ``read(timeout)`` returns new bytes (``b""`` when none came in time) and
``None`` once the stream has ended; ``stop()`` asks it to end, keeping what was seen.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import queue
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .errors import CaptureStartError, PrivilegeError, check_interface, interfaces

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20  # the largest pipe an unprivileged process may ask for by default
KERNEL_BUFFER_MIB = 64  # -B: the kernel ring; dumpcap's packs ~400 k small packets in it
STARTUP_TIMEOUT = 10.0
# dumpcap reads libpcap's TPACKET_V3 ring, where the kernel hands a block of packets over
# when it is full or when its timer (dumpcap's 250 ms read timeout) retires it; dumpcap
# exits on SIGINT without the block still open, losing up to that much traffic. So a stop
# is held back until the stream shows a packet captured after the stop (blocks come in
# order: every packet before it was delivered) or, when no traffic follows, until the last
# block has surely retired and been written.
DUMPCAP_DRAIN_MAX = 1.0


class Source(Protocol):
    name: str
    kernel_drops: int | None  # known once the source has ended
    ended_by: str | None  # why the source ended on its own (interface down, ...)

    def start(self) -> None: ...
    def read(self, timeout: float) -> bytes | None: ...
    def stop(self) -> None: ...


# ---- tcpdump / dumpcap child ----------------------------------------------------------------


def tcpdump_command(iface: str, bpf: str, count: int | None) -> list[str]:
    # -U: write each packet as it arrives; --immediate-mode: hand each packet over at
    # once (no 1 s block timeout); -B: a large ring so bursts wait instead of dropping.
    cmd = ["tcpdump", "-i", iface, "-U", "-w", "-", "-n", "--immediate-mode",
           "-B", str(KERNEL_BUFFER_MIB * 1024), "--time-stamp-precision=nano"]
    if count:
        cmd += ["-c", str(count)]
    return cmd + [bpf]


def dumpcap_command(iface: str, bpf: str, count: int | None) -> list[str]:
    # -P: classic pcap. dumpcap keeps libpcap's packed TPACKET_V3 ring and hands blocks
    # over every ~100 ms: no loss where tcpdump --immediate-mode (one snaplen-sized slot
    # per packet) drops, and a tenth of tcpdump's 1 s delay without immediate mode.
    cmd = ["dumpcap", "-i", iface, "-f", bpf, "-w", "-", "-P", "-B", str(KERNEL_BUFFER_MIB)]
    if count:
        cmd += ["-c", str(count)]
    return cmd


class ChildSource:
    """tcpdump or dumpcap streaming pcap(ng) to our pipe; we parse it incrementally."""

    def __init__(self, tool: str, iface: str, bpf: str, count: int | None) -> None:
        if shutil.which(tool) is None:
            raise CaptureStartError(f"{tool} not found in PATH (apt-get install {tool})")
        self.name = tool
        self.cmd = (tcpdump_command if tool == "tcpdump" else dumpcap_command)(iface, bpf, count)
        self.iface, self.count = iface, count
        self.kernel_drops: int | None = None
        self.ended_by: str | None = None
        self.stderr_lines: list[str] = []
        self._ready = threading.Event()
        self._stopping = False
        self._stop_at_ns: int | None = None  # dumpcap: stop asked, SIGINT not sent yet
        self._stop_deadline = 0.0
        self._clock = PcapClock()
        self._signal_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_done = threading.Event()

    def start(self) -> None:
        # A session of its own: the terminal's Ctrl-C reaches us, and we stop the child
        # ourselves, so it always flushes its last packets into the pipe first.
        self._proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
        assert self._proc.stdout is not None
        try:
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # a smaller pipe only means more, smaller reads
        threading.Thread(target=self._read_stderr, daemon=True).start()
        ready = self._ready.wait(STARTUP_TIMEOUT)
        if self._stderr_done.is_set():  # stderr closed before or at "listening": exiting
            try:
                self._proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        if ready and self.name == "dumpcap":
            # dumpcap says "Capturing on" before its filter is set and packets flow: a
            # connection made at once is missed, every time (a fixed 0.3 s pause was not
            # enough under load). It writes the file header to our pipe once it captures,
            # so wait until the pipe has something to read, without taking it.
            # dumpcap also prints "Capturing on" before it finds the filter invalid and
            # exits: readable with nothing to read is that end of file, so wait for the exit.
            select.select([self._proc.stdout], [], [], STARTUP_TIMEOUT)
            pending = array.array("i", [0])
            fcntl.ioctl(self._proc.stdout.fileno(), termios.FIONREAD, pending)
            if pending[0] == 0:
                try:
                    self._proc.wait(STARTUP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
        if self._proc.poll() is not None or not ready:
            self._stderr_done.wait(2)
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            raise self._start_error()

    def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        marker = "listening on" if self.name == "tcpdump" else "Capturing on"
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(line)
            if marker in line:
                self._ready.set()
        self._stderr_done.set()  # first: start() reads it once _ready is set
        self._ready.set()

    def _start_error(self) -> CaptureStartError:
        text = " ".join(self.stderr_lines)
        lowered = text.lower()
        if "permission" in lowered or "not permitted" in lowered:
            return PrivilegeError(self.name, f"{self.name}: {_first_error(self.stderr_lines)}")
        if "no such device" in lowered or "doesn't exist" in lowered:
            check_interface(self.iface)  # raises with the list of interfaces
        if "syntax error" in lowered or "filter" in lowered:
            detail = _first_error(self.stderr_lines)
            why = [line.strip() for line in self.stderr_lines
                   if "syntax error" in line and line.strip() not in detail]
            return CaptureStartError(f"bad capture filter: {detail}"
                                     + (f" {why[0]}" if why else ""))
        return CaptureStartError(f"{self.name} did not start: {_first_error(self.stderr_lines)}")

    def read(self, timeout: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            self._drain_check()
            return b""
        data = os.read(fd, READ_SIZE)
        if data:
            if self.name == "dumpcap":
                self._clock.feed(data)
                self._drain_check()
            return data
        self._finish()
        return None

    def stop(self) -> None:
        """SIGINT: the child flushes what it has, prints its statistics and exits; read()
        keeps returning the rest until the end of the stream. For dumpcap the signal waits
        until what the kernel captured before this call has come through (see
        DUMPCAP_DRAIN_MAX): read() sends it."""
        if self._proc is None or self._proc.poll() is not None or self._stopping:
            return
        if self.name == "dumpcap" and self._stop_at_ns is None:
            self._stop_deadline = time.monotonic() + DUMPCAP_DRAIN_MAX
            self._stop_at_ns = time.time_ns()  # packet times are the kernel's wall clock
            # read() signals as soon as the stream passes the stop; this thread makes sure
            # of it by the deadline even if nobody reads any more
            threading.Thread(target=self._drain_watch, daemon=True).start()
            return
        self._signal_stop()

    def _drain_watch(self) -> None:
        while not self._stopping:
            self._drain_check()
            time.sleep(0.02)

    def _drain_check(self) -> None:
        if self._stop_at_ns is not None and not self._stopping and (
                self._clock.latest_ns >= self._stop_at_ns
                or time.monotonic() >= self._stop_deadline):
            self._signal_stop()

    def _signal_stop(self) -> None:
        assert self._proc is not None
        with self._signal_lock:
            if self._proc.poll() is None and not self._stopping:
                self._proc.send_signal(signal.SIGINT)
                threading.Timer(10.0, self._kill_if_stuck).start()
            self._stopping = True

    def _kill_if_stuck(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()

    def _finish(self) -> None:
        assert self._proc is not None
        status = self._proc.wait()
        self._stderr_done.wait(5)
        self.kernel_drops = parse_drops(self.stderr_lines)
        if not self._stopping and (status not in (0, -signal.SIGINT) or not self.count):
            # Ended on its own before its count: the interface went down or disappeared.
            self.ended_by = f"{self.name}: {_first_error(self.stderr_lines)}"


class PcapClock:
    """The latest packet time in a classic pcap byte stream, followed as it passes (only
    the record headers are looked at)."""

    def __init__(self) -> None:
        self.latest_ns = 0
        self._head = bytearray()
        self._skip = 0
        self._record: struct.Struct | None = None  # known once the file header is read
        self._frac_ns = 1000

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            need = 24 if self._record is None else 16
            take = need - len(self._head)
            self._head += view[:take]
            view = view[take:]
            if len(self._head) < need:
                return
            if self._record is None:
                magic = struct.unpack("<I", self._head[:4])[0]
                little = magic in (0xA1B2C3D4, 0xA1B23C4D)  # as written by this machine
                self._frac_ns = 1 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1000
                self._record = struct.Struct(("<" if little else ">") + "IIII")
            else:
                sec, frac, caplen, _ = self._record.unpack(self._head)
                self.latest_ns = max(self.latest_ns, sec * 1_000_000_000 + frac * self._frac_ns)
                self._skip = caplen
            self._head.clear()


def _first_error(lines: list[str]) -> str:
    for line in lines:
        text = line.strip()
        if text.startswith(("tcpdump: ", "dumpcap: ")) and "listening on" not in text:
            return text.split(": ", 1)[1]
    useful = [line for line in lines if line.strip() and "listening on" not in line]
    return useful[0].strip() if useful else "no message"


def parse_drops(lines: list[str]) -> int | None:
    """Kernel drops from tcpdump's or dumpcap's closing statistics."""
    for line in lines:
        m = re.search(r"(\d+) packets? dropped by kernel", line)
        if m:
            return int(m.group(1))
    total, found = 0, False
    for line in lines:  # dumpcap: received/dropped on interface 'lo': 131/0 (pcap:0/...)
        m = re.search(r"received/dropped on interface .*?: \d+/(\d+)", line)
        if m:
            total, found = total + int(m.group(1)), True
    return total if found else None


# ---- frames re-wrapped as a pcap stream (scapy, pyshark) ------------------------------------

PCAP_NS_MAGIC = 0xA1B23C4D
RECORD = struct.Struct("<IIII")


def pcap_header(linktype: int) -> bytes:
    return struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, 262144, linktype)


def pcap_record(ts_ns: int, frame: bytes) -> bytes:
    sec, nsec = divmod(ts_ns, 1_000_000_000)
    return RECORD.pack(sec, nsec, len(frame), len(frame)) + frame


class FrameQueueSource:
    """Common part of the in-process sniffers: a thread puts (linktype, ts_ns, frame)
    tuples in a queue; read() turns them into one pcap stream of the first link type."""

    name = "frames"

    def __init__(self) -> None:
        self.kernel_drops: int | None = None
        self.ended_by: str | None = None
        self.other_linktype = 0  # frames skipped: a pcap stream has one link type
        self._queue: queue.SimpleQueue[tuple[int, int, bytes] | None] = queue.SimpleQueue()
        self._linktype: int | None = None
        self._ended = False

    def put(self, linktype: int, ts_ns: int, frame: bytes) -> None:
        self._queue.put((linktype, ts_ns, frame))

    def end(self) -> None:
        self._queue.put(None)

    def announce(self, linktype: int) -> None:
        """The stream's link type is known before any packet: the pcap header goes out at
        once, so a capture stopped before its first packet still leaves a valid file."""
        self._queue.put((linktype, -1, b""))

    def read(self, timeout: float) -> bytes | None:
        if self._ended:
            return None
        parts: list[bytes] = []
        try:
            item = self._queue.get(timeout=timeout)
            while True:
                if item is None:
                    self._ended = True
                    break
                linktype, ts_ns, frame = item
                if self._linktype is None:
                    self._linktype = linktype
                    parts.append(pcap_header(linktype))
                if ts_ns < 0:
                    pass  # announce(): the file header alone, before any packet
                elif linktype == self._linktype:
                    parts.append(pcap_record(ts_ns, frame))
                else:
                    self.other_linktype += 1
                item = self._queue.get_nowait()
        except queue.Empty:
            pass
        if not parts and self._ended:
            return None
        return b"".join(parts)


# scapy layer class name -> pcap link type
SCAPY_LINKTYPES = {"Ether": 1, "CookedLinux": 113, "CookedLinuxV2": 276, "IP": 228,
                   "IPv6": 229, "Loopback": 0}


class ScapySource(FrameQueueSource):
    """scapy's AsyncSniffer with a per-packet callback (the user's named capture package).
    Python handles every packet, so it loses packets at rates tcpdump keeps up with."""

    name = "scapy"

    def __init__(self, iface: str, bpf: str, count: int | None) -> None:
        super().__init__()
        self.iface, self.bpf, self.count = iface, bpf, count
        self._sniffer: Any = None

    def start(self) -> None:
        from scapy.config import conf
        from scapy.sendrecv import AsyncSniffer

        def on_packet(pkt: Any) -> None:
            linktype = conf.l2types.layer2num.get(type(pkt))
            if linktype is None:
                linktype = SCAPY_LINKTYPES.get(type(pkt).__name__)
            if linktype is None:  # scapy did not know the device type (loopback, 772)
                linktype = iface_linktype(getattr(pkt, "sniffed_on", None) or self.iface)
            self.put(linktype, int(pkt.time * 1_000_000_000), bytes(pkt))

        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # "Unable to guess type"
        opened = threading.Event()
        try:
            sockets = self._open_sockets()
        except PermissionError as exc:
            raise _scapy_error(exc) from None
        except Exception as exc:  # noqa: BLE001 - scapy's filter errors are plain exceptions
            raise _scapy_error(exc) from None
        self._sniffer = AsyncSniffer(opened_socket=sockets, prn=on_packet, store=False,
                                     count=self.count or 0, started_callback=opened.set)
        self._sniffer.start()
        thread = self._sniffer.thread
        while not opened.wait(0.05) and thread.is_alive():
            pass
        if not opened.is_set():  # the sniffer thread failed before its socket was open
            raise _scapy_error(self._sniffer.exception or RuntimeError("sniffer ended"))
        threading.Thread(target=self._watch, daemon=True).start()

    def _open_sockets(self) -> dict[Any, str]:
        """One socket per interface ("any" = every one). On loopback each packet passes
        twice (outgoing, then incoming): like libpcap, keep the incoming copy only."""
        from scapy.arch.linux import L2ListenSocket, L2Socket

        names = [n for n in interfaces() if iface_up(n)] if self.iface == "any" else [self.iface]
        sockets: dict[Any, str] = {}
        try:
            for name in names:
                loopback = iface_arphrd(name) == 772
                kind = L2Socket if loopback else L2ListenSocket
                sockets[kind(iface=name, filter=self.bpf)] = name
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets

    def _watch(self) -> None:
        try:
            self._sniffer.join()
        except Exception as exc:  # noqa: BLE001 - scapy re-raises its thread's error here
            self.ended_by = f"scapy: {exc}"
        self.end()

    def stop(self) -> None:
        if self._sniffer is not None and self._sniffer.thread.is_alive():
            try:
                self._sniffer.stop(join=False)
            except Exception:  # noqa: BLE001, S110 - scapy raises if it has just ended by itself
                pass


def iface_arphrd(iface: str) -> int:
    try:
        return int(Path(f"/sys/class/net/{iface}/type").read_text())
    except (OSError, ValueError):
        return -1


def iface_up(iface: str) -> bool:
    try:
        return bool(int(Path(f"/sys/class/net/{iface}/flags").read_text(), 16) & 1)
    except (OSError, ValueError):
        return False


def iface_linktype(iface: str) -> int:
    """The pcap link type of a Linux interface's frames, from its ARPHRD type."""
    return {65534: 101, 776: 101}.get(iface_arphrd(iface), 1)  # loopback frames are Ethernet


def _scapy_error(exc: BaseException) -> CaptureStartError:
    text = str(exc)
    if isinstance(exc, PermissionError) or "permitted" in text:
        return PrivilegeError("scapy", f"scapy: {text}")
    if "filter" in text.lower():
        return CaptureStartError(f"bad capture filter: {text}")
    return CaptureStartError(f"scapy could not start: {text}")


# Wireshark's name of the first layer -> pcap link type.
PYSHARK_LINKTYPES = {"eth": 1, "sll": 113, "ip": 228, "ipv6": 229, "null": 0}
# The data link names ``dumpcap -L`` prints -> pcap link type.
DLT_LINKTYPES = {"EN10MB": 1, "LINUX_SLL": 113, "LINUX_SLL2": 276, "RAW": 101, "IPV4": 228,
                 "IPV6": 229, "NULL": 0, "LOOP": 108}
# A stop signals pyshark's dumpcap once its last ring block has retired (see
# DUMPCAP_DRAIN_MAX: dumpcap's 250 ms read timeout), then gives tshark this long to hand
# over what it still holds.
PYSHARK_DRAIN = 0.35
PYSHARK_KILL_AFTER = 0.5


class PysharkSource(FrameQueueSource):
    """pyshark's LiveCapture: dumpcap captures, tshark dissects every packet to JSON, and
    we keep the raw frame bytes of each (``include_raw``).

    pyshark 0.6 alone does not stop or fail cleanly: it keeps both ends of the pipe
    between dumpcap and tshark open in our process (tshark never sees the end of the
    stream), starts both in our process group (the terminal's Ctrl-C kills tshark before
    it hands over its last packets), ignores dumpcap's errors (a permission error ends in
    a silent empty capture) and lists every interface with ``tshark -D`` first. So the
    two children are started here (``_live_capture``), each in a session of its own, with
    the pipe's ends closed on our side; dumpcap's stderr tells when it captures or why it
    cannot; a stop is SIGINT to dumpcap (it flushes and exits, tshark reads to the end
    of the stream and exits), and both are killed if they are still there after
    ``PYSHARK_KILL_AFTER`` seconds. ``dumpcap -L`` checks the rights and gives the link
    type up front, so the pcap header is written before the first packet.
    """

    name = "pyshark"

    def __init__(self, iface: str, bpf: str, count: int | None) -> None:
        super().__init__()
        self.iface, self.bpf, self.count = iface, bpf, count
        self.stderr_lines: list[str] = []  # dumpcap's
        self.tshark_lines: list[str] = []
        self._ready = threading.Event()  # dumpcap captures, or will never
        self._tshark_ready = threading.Event()  # tshark reads its stream, or will never
        self._capturing = False
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._procs: dict[str, Any] = {}  # "dumpcap"/"tshark" -> asyncio Process
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import pyshark  # noqa: F401 - fail here, clearly, if it is missing
        except ImportError:
            raise CaptureStartError("the pyshark engine needs pyshark: pip install "
                                    "'handshake-analyzer[pyshark]'") from None
        for tool in ("dumpcap", "tshark"):
            if shutil.which(tool) is None:
                raise CaptureStartError(f"{tool} not found in PATH (apt-get install tshark)")
        linktype = self._probe()
        if linktype is not None:
            self.announce(linktype)
        self._thread = threading.Thread(target=self._run, name="pyshark", daemon=True)
        self._thread.start()
        try:
            if not self._ready.wait(STARTUP_TIMEOUT):
                raise CaptureStartError(f"pyshark: dumpcap did not start capturing on "
                                        f"{self.iface} within {STARTUP_TIMEOUT:.0f} s")
            if not self._capturing:
                raise self._start_error()
            # Started = packets are being dissected: --duration counts from here, and a
            # stop hands over what was captured instead of killing a tshark still loading.
            if not self._tshark_ready.wait(STARTUP_TIMEOUT) or self._error is not None or (
                    "tshark" in self._procs and self._procs["tshark"].returncode is not None):
                detail = next((ln for ln in self.tshark_lines if ln.startswith("tshark")),
                              str(self._error or "no message"))
                raise CaptureStartError(f"pyshark: tshark did not start: {detail}")
        except BaseException:  # an error, or Ctrl-C while starting: leave no child behind
            self.stop()
            self._thread.join(STARTUP_TIMEOUT)
            raise

    def _probe(self) -> int | None:
        """``dumpcap -L``: opens the interface as the capture will (so it fails as fast
        and as clearly without the rights) and names its default link type."""
        try:
            probe = subprocess.run(["dumpcap", "-L", "-i", self.iface], capture_output=True,
                                   text=True, timeout=STARTUP_TIMEOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, check=False)
        except subprocess.TimeoutExpired:
            raise CaptureStartError(f"dumpcap -L -i {self.iface} did not answer") from None
        if probe.returncode != 0:
            self.stderr_lines = probe.stderr.splitlines()
            raise self._start_error()
        for line in probe.stdout.splitlines()[1:]:
            name = line.split()[0] if line.strip() else ""
            if name:
                return DLT_LINKTYPES.get(name)
        return None

    def _start_error(self) -> CaptureStartError:
        lines = [line.strip() for line in self.stderr_lines if line.strip()]
        first = next((line for line in lines if line.startswith("dumpcap: ")),
                     lines[0] if lines else str(self._error or "no message"))
        text = " ".join(lines).lower()
        if "permission" in text or "not permitted" in text:
            return PrivilegeError("dumpcap", first if first.startswith("dumpcap")
                                  else f"dumpcap: {first}")
        if "filter" in text:
            return CaptureStartError(f"bad capture filter: {first}")
        return CaptureStartError(f"pyshark could not start: {first}")

    def _run(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # asyncio's child watcher logs "Unknown child process pid N" when a child we
        # stopped was reaped before it looked: nothing the user can act on.
        logging.getLogger("asyncio").setLevel(logging.ERROR)
        capture: Any = None
        try:
            capture = _live_capture(self, loop)
            for pkt in capture.sniff_continuously(packet_count=self.count or None):
                layer = pkt.layers[0].layer_name if pkt.layers else ""
                linktype = PYSHARK_LINKTYPES.get(layer, -1)
                if layer == "sll" and hasattr(pkt.layers[0], "ifindex"):
                    linktype = 276
                stamp = str(pkt.sniff_timestamp)
                whole, _, frac = stamp.partition(".")
                self.put(linktype, int(whole) * 10**9 + int(frac.ljust(9, "0")[:9] or 0),
                         pkt.get_raw_packet())
        except Exception as exc:  # noqa: BLE001 - reported by start() or as the end reason
            self._error = exc
            if self._capturing and not self._stop.is_set():
                self.ended_by = f"pyshark: {str(exc).strip().splitlines()[0]}"
        finally:
            self._close(loop, capture)
            dumpcap = self._procs.get("dumpcap")
            if self._capturing and not self._stop.is_set() and not self.ended_by and (
                    dumpcap is not None and dumpcap.returncode not in (0, None)):
                self.ended_by = f"dumpcap: {_first_error(self.stderr_lines)}"
            self._ready.set()
            self._tshark_ready.set()
            self.end()

    def _close(self, loop: Any, capture: Any) -> None:
        """End what is left in our own loop, before closing it (pyshark's own close would
        run after the loop is gone: "RuntimeError: Event loop is closed")."""
        import asyncio

        async def finish() -> None:
            for proc in self._procs.values():
                if proc.returncode is None:
                    try:
                        proc.kill()
                    except ProcessLookupError:
                        pass
                try:
                    await asyncio.wait_for(proc.wait(), 2)
                except (TimeoutError, ProcessLookupError):
                    pass
            tasks = list(getattr(capture, "_stderr_handling_tasks", []))
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            loop.run_until_complete(finish())
        finally:
            if capture is not None:
                capture._running_processes.clear()  # nothing for its __del__ to close
                capture._stderr_handling_tasks = []
            for proc in self._procs.values():
                transport = getattr(proc, "_transport", None)
                if transport is not None:
                    transport.close()
            loop.close()

    async def watch_dumpcap(self, stderr: Any) -> None:
        """dumpcap's stderr: "Capturing on ..." once it captures, else why it cannot."""
        while True:
            raw = await stderr.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            self.stderr_lines.append(line)
            if "Capturing on" in line:
                self._capturing = True
                self._ready.set()
        self._ready.set()  # ended without capturing: start() reports why

    async def watch_tshark(self, stderr: Any) -> None:
        """tshark's stderr: "Capturing on '-'" once it reads dumpcap's stream (it loads
        every dissector first: seconds on a busy machine, while dumpcap buffers)."""
        while True:
            raw = await stderr.readline()
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            self.tshark_lines.append(line)
            if "Capturing on" in line:
                self._tshark_ready.set()
        self._tshark_ready.set()

    def started(self, name: str, proc: Any) -> None:
        """A child is running; a stop that came while it was starting applies now."""
        self._procs[name] = proc
        if self._stop.is_set():  # stopped while starting: nothing to drain yet
            self._signal_dumpcap()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        # dumpcap gets SIGINT once the ring block open at the stop has been written;
        # tshark hands over what it has once dumpcap's stream ends. If it cannot keep up
        # (a flood, a loaded machine), the stop still happens, with what was handed over.
        threading.Timer(PYSHARK_DRAIN, self._signal_dumpcap).start()
        threading.Timer(PYSHARK_DRAIN + PYSHARK_KILL_AFTER, self._kill).start()

    def _signal_dumpcap(self) -> None:
        dumpcap = self._procs.get("dumpcap")
        if dumpcap is not None and dumpcap.returncode is None:
            try:
                os.kill(dumpcap.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def _kill(self) -> None:
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _live_capture(source: PysharkSource, loop: Any) -> Any:
    """pyshark's LiveCapture for ``source``, with the children started our way."""
    import asyncio

    from pyshark.capture.capture import Capture
    from pyshark.capture.live_capture import LiveCapture
    from pyshark.tshark.tshark import tshark_supports_duplicate_keys

    class Live(LiveCapture):  # type: ignore[misc]
        def __init__(self) -> None:
            # Not LiveCapture.__init__: it runs tshark -D to list every interface (a
            # second or more under load); the interface was checked already.
            Capture.__init__(self, use_json=True, include_raw=True, eventloop=loop)
            self.bpf_filter, self.monitor_mode = source.bpf, False
            self.interfaces = [source.iface]

        def _verify_capture_parameters(self) -> None:
            pass

        async def _get_tshark_process(self, packet_count: int | None = None,
                                      stdin: Any = None) -> Any:
            read_end, write_end = os.pipe()
            try:
                dumpcap = await asyncio.create_subprocess_exec(
                    "dumpcap", *self._get_dumpcap_parameters(), stdin=subprocess.DEVNULL,
                    stdout=write_end, stderr=subprocess.PIPE, start_new_session=True)
            finally:
                os.close(write_end)  # only dumpcap writes: tshark sees the end of stream
            self._stderr_handling_tasks.append(
                asyncio.ensure_future(source.watch_dumpcap(dumpcap.stderr)))
            self._running_processes.add(dumpcap)
            source.started("dumpcap", dumpcap)
            version = self._get_tshark_version()
            extra = ["--no-duplicate-keys"] if tshark_supports_duplicate_keys(version) else []
            try:
                tshark = await asyncio.create_subprocess_exec(
                    self._get_tshark_path(), "-l", "-n", "-T", "json",
                    *self.get_parameters(packet_count=packet_count), *extra, stdin=read_end,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            finally:
                os.close(read_end)
            self._stderr_handling_tasks.append(
                asyncio.ensure_future(source.watch_tshark(tshark.stderr)))
            self._running_processes.add(tshark)
            source.started("tshark", tshark)
            return tshark

    return Live()


# ---- a capture file played back at its own pace ---------------------------------------------


class ReplaySource:
    """Plays a classic pcap file record by record at its recorded pace (gaps capped at
    ``max_gap`` seconds), so the live view can be shown without capture privileges.
    pcapng files are fed whole."""

    name = "replay"

    def __init__(self, path: str, speed: float = 1.0, max_gap: float = 0.5) -> None:
        self.path, self.speed, self.max_gap = path, speed, max_gap
        self.kernel_drops: int | None = 0
        self.ended_by: str | None = None
        self._data = b""
        self._pos = 0
        self._stop = False
        self._last_ts: float | None = None

    def start(self) -> None:
        from ..source import open_source

        source = open_source(self.path)  # the same checks and errors as handshake read
        self._data = b"".join(chunk.data for chunk in source.chunks())
        magic = self._data[:4]
        self._endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
                        b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
        self._frac = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6

    def read(self, timeout: float) -> bytes | None:
        if self._stop or self._pos >= len(self._data):
            return None
        if self._endian is None:  # pcapng: everything at once
            self._pos = len(self._data)
            return self._data
        if self._pos == 0:
            self._pos = 24
            return self._data[:24]
        if self._pos + 16 > len(self._data):
            rest, self._pos = self._data[self._pos:], len(self._data)
            return rest
        sec, frac, incl = struct.unpack_from(self._endian + "IIi", self._data, self._pos)
        ts = sec + frac * self._frac
        if self._last_ts is not None:
            time.sleep(min(max(ts - self._last_ts, 0.0) / self.speed, self.max_gap))
        self._last_ts = ts
        end = self._pos + 16 + max(incl, 0)
        record, self._pos = self._data[self._pos:end], end
        return record

    def stop(self) -> None:
        self._stop = True


ENGINES = ("default", "tcpdump", "dumpcap", "scapy", "pyshark")


def make_source(engine: str, iface: str, bpf: str, count: int | None) -> Source:
    """``default`` is dumpcap (tcpdump if dumpcap is missing): measured lossless at the
    rates in benchmarks/README.md, where tcpdump --immediate-mode and the in-process
    Python sniffers lose packets."""
    if engine not in ENGINES:
        raise CaptureStartError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    check_interface(iface)
    if engine == "default":
        engine = "dumpcap" if shutil.which("dumpcap") or not shutil.which("tcpdump") \
            else "tcpdump"
    if engine in ("tcpdump", "dumpcap"):
        return ChildSource(engine, iface, bpf, count)
    if engine == "scapy":
        return ScapySource(iface, bpf, count)
    return PysharkSource(iface, bpf, count)
