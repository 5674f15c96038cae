"""The pyshark engine: tshark's dissectors decode, the compiled tracker tracks.

Every frame is dissected by tshark; each TCP segment goes to a fresh ``_engine.Engine``
through ``Engine.feed_segment``, so handshake, states, close and Zeek's rules are the
same code as with the native engine. This reads what the native decoder does not:
tunnels (GRE, GTP-U, VXLAN, IP-in-IP, Teredo), other link types and file formats.

pyshark finds tshark (its config.ini, then PATH) and checks its version; the fields are
then read with ``tshark -T fields``, not through pyshark's packet objects. Measured on
a 50,000-packet loopback capture (2 shared cores): ``FileCapture(use_json=True,
keep_packets=False)`` reading 13 of the fields took 11.9 s, ``tshark -T fields`` with
all 25 took 1.3 s. Both run the same dissectors; only the JSON round trip differs.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from typing import IO, Any, Final, NamedTuple

from ..errors import CaptureError, UsageError
from ..options import ProgressFn, ReadOptions, capture_stats, time_warnings

INSTALL_PYSHARK: Final = "pip install 'handshake-analyzer[pyshark]'"
INSTALL_TSHARK: Final = "apt-get install tshark"

FIELDS: Final = (
    "frame.number", "frame.time_epoch", "frame.protocols", "frame.cap_len",
    "ip.src", "ip.dst", "ip.flags.mf", "ip.frag_offset", "ip.len", "ip.hdr_len",
    "ipv6.src", "ipv6.dst", "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.plen",
    "tcp.srcport", "tcp.dstport", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
    "tcp.hdr_len", "tcp.window_size_value", "tcp.checksum.status",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval", "frame.len",
)
(NUMBER, TIME, PROTOCOLS, CAP_LEN, IP_SRC, IP_DST, IP_MF, IP_FRAG, IP_LEN, IP_HDR_LEN,
 IP6_SRC, IP6_DST, IP6_FRAG, IP6_MORE, IP6_PLEN, SPORT, DPORT, FLAGS, SEQ, ACK, LEN,
 HDR_LEN, WIN, CSUM, MSS, WSCALE, SACK, TSVAL, FRAME_LEN) = range(len(FIELDS))

# Like the native decoder: no IP reassembly (fragments are counted, not tracked), and no
# TCP analysis we do not use (it only costs time).
PREFS: Final = {
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
    "tcp.desegment_tcp_streams": "FALSE",
    "tcp.analyze_sequence_numbers": "FALSE",
    "tcp.calculate_timestamps": "FALSE",
}
QUOTING_PROTOCOLS: Final = frozenset({"icmp", "icmpv6"})  # they quote headers of others
TRUE_WORDS: Final = frozenset({"1", "True", "true"})
F_SYN: Final = 0x02
CHECKSUM_BAD: Final = frozenset({"0", "Bad"})  # Wireshark's PROTO_CHECKSUM_E_BAD


def find_tshark() -> str:
    """tshark's path, found the way pyshark finds it; a one-line error when pyshark or
    tshark is missing."""
    try:
        from pyshark.tshark import tshark as pyshark_tshark
    except ImportError:
        raise UsageError(f"--engine pyshark needs the pyshark module: {INSTALL_PYSHARK}"
                         ) from None
    try:
        return str(pyshark_tshark.get_process_path())
    except pyshark_tshark.TSharkNotFoundException:
        raise UsageError("--engine pyshark needs tshark, which is not installed or not on "
                         f"PATH: {INSTALL_TSHARK}") from None


def tshark_command(tshark: str, path: str, verify_checksums: bool) -> list[str]:
    # -n: never resolve names (no DNS lookups while reading a file).
    cmd = [tshark, "-n", "-r", path, "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-E", "separator=/t"]
    prefs = {**PREFS, "tcp.check_checksum": "TRUE" if verify_checksums else "FALSE"}
    for name, value in prefs.items():
        cmd += ["-o", f"{name}:{value}"]
    # Teredo on any port, as the native decoder (and Zeek) find it; tshark's own
    # detection is off by default and otherwise only looks at port 3544.
    cmd += ["--enable-heuristic", "teredo_udp"]
    for name in FIELDS:
        cmd += ["-e", name]
    return cmd


def track(path: str, options: ReadOptions, progress: ProgressFn | None = None
          ) -> tuple[Any, dict[str, int], list[str], CaptureError | None, Any]:
    """Like :func:`analyzer.results.read_file`, with tshark decoding the packets: the
    finished tracker, its counters, warnings, the error that stopped the reading and the
    spool of a piped input (None for a file)."""
    from ..source import spool_if_stream

    tshark = find_tshark()
    spool = spool_if_stream(path)  # tshark reads a pipe, but we need the file twice
    source = spool.path if spool else path
    size = _check_file(source, path)
    verify_checksums = options.verify_checksums
    engine = options.new_engine()
    feeder = _Feeder(engine, verify_checksums)
    with tempfile.TemporaryFile() as errors:  # a file, so a chatty tshark cannot block
        proc = subprocess.Popen(tshark_command(tshark, source, verify_checksums),
                                stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL,
                                text=True, encoding="utf-8", errors="replace")
        try:
            assert proc.stdout is not None
            feeder.feed_lines(proc.stdout, progress, size)
        finally:
            if proc.poll() is None and feeder.lines_left:
                proc.kill()
            status = proc.wait()
        errors.seek(0)
        message = _tshark_message(errors)
    warnings: list[str] = []
    error: CaptureError | None = None
    if "cut short in the middle of a packet" in message:
        warnings.append(f"{path}: truncated after packet {feeder.frames}")
    elif status != 0:
        error = CaptureError(path, f"tshark: {message or f'exit status {status}'} "
                                   f"(after packet {feeder.frames})", packet=feeder.frames)
    engine.finish()
    stats = feeder.stats(_format_code(source))
    warnings += time_warnings(path, stats)
    return engine, stats, warnings, error, spool


class _Feeder:
    """Feeds one engine with ``feed_segment``, giving each segment its packet number in
    the file, its IP length, a bad checksum (when verified) and a payload the capture
    cut, so numbers, Zeek's byte counts and its 'C' and 'g' letters are as natively."""

    def __init__(self, engine: Any, verify_checksums: bool) -> None:
        self.engine = engine
        self.verify = verify_checksums
        self.frames = 0
        self.skipped = {"not_ip": 0, "not_tcp": 0, "fragments": 0, "short": 0}
        self.tunnelled = 0  # segments inside a second IP header (native skips them)
        self.bytes_seen = 0
        self.lines_left = True

    def feed_lines(self, lines: IO[str], progress: ProgressFn | None, size: int) -> None:
        for line in lines:
            cols = line.rstrip("\n").split("\t")
            if len(cols) != len(FIELDS) or not cols[NUMBER].isdigit():
                continue  # not a frame line (tshark writes nothing else on stdout)
            number = int(cols[NUMBER])
            while self.frames + 1 < number:  # should not happen; keeps numbering exact
                self._skip("not_ip")
            decoded = decode(cols)
            if isinstance(decoded, str):
                self._skip(decoded)
                try:  # its time is checked as the native framer checks every packet's
                    self.engine.note_time(epoch_ns(cols[TIME]), number)
                except ValueError:
                    pass
            else:
                self.tunnelled += decoded.tunnelled
                self.engine.feed_segment(*decoded.segment, pkt_no=number,
                                         ip_len=decoded.ip_len,
                                         csum_bad=self.verify and decoded.checksum_bad,
                                         payload_cut=decoded.payload_cut)
                self.frames += 1
            if cols[CAP_LEN].isdigit():  # about the file's bytes (a pcap record header)
                self.bytes_seen += int(cols[CAP_LEN]) + 16
            if progress:
                progress(min(self.bytes_seen, size), size, self.frames,
                         self.engine.conn_count())
        self.lines_left = False

    def _skip(self, reason: str) -> None:
        self.skipped[reason] += 1
        self.frames += 1

    def stats(self, file_format: int) -> dict[str, int]:
        stats = capture_stats(self.engine)
        stats.update(self.skipped, frames=self.frames, packets_framed=self.frames,
                     bytes_framed=self.bytes_seen,
                     format=file_format, tunnelled=self.tunnelled)
        return stats


Segment = tuple[int, bytes, bytes, int, int, int, int, int, int, int, int, int, bool, bool]


class Decoded(NamedTuple):
    segment: Segment  # feed_segment's arguments
    tunnelled: bool  # inside a second IP header (GRE, GTP-U, Teredo, VXLAN, IP-in-IP)
    checksum_bad: bool  # tshark found the TCP checksum wrong over the whole segment
    payload_cut: bool  # the frame holds less than the whole payload (Zeek's content gap)
    ip_len: int  # the IP packet's length (header and payload), for Zeek's ip_bytes


def decode(cols: list[str]) -> Decoded | str:
    """One frame's fields as a segment, or why it is not one: not_ip, not_tcp, fragments
    or short (the native decoder's counters).

    The segment is the first TCP layer that ICMP does not quote, with the last IP header
    before it (the innermost one in a tunnel)."""
    layers = cols[PROTOCOLS].split(":")
    ip_layers = [i for i, name in enumerate(layers) if name in ("ip", "ipv6")]
    if not ip_layers:
        return "not_ip"
    if "tcp" not in layers:
        return "not_tcp"
    tcp_at = layers.index("tcp")
    ips = [i for i in ip_layers if i < tcp_at]
    if not ips or QUOTING_PROTOCOLS.intersection(layers[:tcp_at]):
        return "not_tcp"
    ip_at = ips[-1]
    family = layers[ip_at]
    nth = layers[:ip_at].count(family)  # this header's occurrence among its family
    try:
        if family == "ip":
            if _nth(cols[IP_MF], nth) in TRUE_WORDS or _nth(cols[IP_FRAG], nth) not in ("", "0"):
                return "fragments"
            src, dst, af = _nth(cols[IP_SRC], nth), _nth(cols[IP_DST], nth), socket.AF_INET
            ip_hdr = int(_nth(cols[IP_HDR_LEN], nth))
            ip_payload = int(_nth(cols[IP_LEN], nth)) - ip_hdr
            total_given = _nth(cols[IP_LEN], nth) != "0"  # 0: TSO, tshark uses the frame
        else:
            extensions = layers[ip_at + 1:tcp_at]
            if "ipv6.fraghdr" in extensions:
                frag = layers[:tcp_at].count("ipv6.fraghdr") - 1
                if (_nth(cols[IP6_MORE], frag) in TRUE_WORDS
                        or _nth(cols[IP6_FRAG], frag) not in ("", "0")):
                    return "fragments"
            src, dst, af = _nth(cols[IP6_SRC], nth), _nth(cols[IP6_DST], nth), socket.AF_INET6
            ip_payload = int(_nth(cols[IP6_PLEN], nth))
            ip_hdr = 40
            # The TCP header's offset is known only without extension headers.
            total_given = ip_payload != 0 and not extensions
        src_bytes, dst_bytes = socket.inet_pton(af, src), socket.inet_pton(af, dst)
        sport, dport = int(_nth(cols[SPORT], 0)), int(_nth(cols[DPORT], 0))
        flags = int(_nth(cols[FLAGS], 0), 16) & 0xFF  # the byte the native decoder reads
        seq, ack = int(_nth(cols[SEQ], 0)), int(_nth(cols[ACK], 0))
        hdr_len, in_frame = int(_nth(cols[HDR_LEN], 0)), int(_nth(cols[LEN], 0))
        win = int(_nth(cols[WIN], 0))
        ts_ns = epoch_ns(cols[TIME])
    except (OSError, ValueError):
        return "short"  # a header tshark could not read whole
    if hdr_len < 20:
        return "short"
    # Payload from the IP length, as the native decoder counts it: tshark's tcp.len stops
    # at the end of the bytes it has (a first fragment of a tunnelled datagram, a PPPoE
    # length shorter than the IP packet), and neither is taken for missing data.
    payload = ip_payload - hdr_len if total_given and ip_payload >= hdr_len else in_frame
    mss = wscale = -1
    sack = ts_ok = False
    if flags & F_SYN:  # like the native decoder, options are read from SYNs only
        last = -1 if layers.count("tcp") == 1 else 0  # later option of a kind wins
        mss = int(_nth(cols[MSS], last) or -1)
        wscale = int(_nth(cols[WSCALE], last) or -1)
        sack = bool(cols[SACK])
        ts_ok = bool(cols[TSVAL])
    segment = (ts_ns, src_bytes, dst_bytes, sport, dport, flags, seq, ack, payload, win, mss,
               wscale, sack, ts_ok)
    # A checksum over part of a segment says nothing; the native decoder skips those too.
    checksum_bad = cols[CSUM] in CHECKSUM_BAD and in_frame == payload
    # Cut by the tunnel (tcp.len short of the IP length) or by the snap length.
    snapped = cols[FRAME_LEN].isdigit() and int(cols[FRAME_LEN]) > int(cols[CAP_LEN] or 0)
    payload_cut = payload > 0 and (in_frame < payload or snapped)
    ip_len = ip_hdr + (ip_payload if total_given else hdr_len + payload)
    return Decoded(segment, len(ips) > 1, checksum_bad, payload_cut, ip_len)


def _nth(value: str, index: int) -> str:
    parts = value.split(",") if value else []
    try:
        return parts[index]
    except IndexError:
        return ""


INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def epoch_ns(text: str) -> int:
    """tshark's ``frame.time_epoch`` (``1795316556.416492000``) as integer nanoseconds,
    without going through a float, saturated to an int64: the engine then clamps a time
    out of its range and counts it, as for the native decoder (options.time_warnings)."""
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    ns = int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9])
    return max(INT64_MIN, -ns) if negative else min(INT64_MAX, ns)


def _check_file(path: str, name: str) -> int:
    """The native engine's one-line errors (naming ``name``, the input as given) for a
    file that cannot be read at all; tshark judges the rest (it reads more formats than
    pcap and pcapng). Returns the size."""
    from ..source import open_capture_file

    f, size = open_capture_file(path)
    with f:
        try:
            empty = not f.read(1)
        except OSError as exc:
            raise CaptureError(name, exc.strerror or str(exc)) from None
    if empty:
        raise CaptureError(name, "empty file, not a capture", offset=0, packet=0)
    return size


def _format_code(path: str) -> int:
    """The native framer's format code (0 other, 1 pcap, 2 pcapng), for the counters."""
    from ..source import PCAP_MAGICS, PCAPNG_MAGIC

    with open(path, "rb") as f:
        head = f.read(4)
    return 1 if head in PCAP_MAGICS else 2 if head == PCAPNG_MAGIC else 0


def _tshark_message(errors: IO[bytes]) -> str:
    """tshark's complaint on one line, without its banner about running as root."""
    lines = [line.strip() for line in errors.read().decode("utf-8", "replace").splitlines()]
    kept = [line.removeprefix("tshark: ") for line in lines
            if line and not line.startswith("Running as user")]
    return " ".join(kept)
