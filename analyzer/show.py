"""``handshake show``: one connection packet by packet, the ladder in text."""

from __future__ import annotations

from typing import TextIO

from .anomalies import tags
from .capture import read
from .errors import UsageError
from .records import STATE_NAMES
from .relative import relative, seq_bases

FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
                (0x40, "E"), (0x80, "W"))


def flags_text(flags: int) -> str:
    """tcpdump's notation: [S], [S.], [P.], [F.], [R] ..."""
    return "[" + "".join(ch for bit, ch in FLAG_LETTERS if flags & bit) + "]"


def _state(code: int) -> str:
    return "-" if code < 0 else STATE_NAMES[code]


def show(path: str, conn_id: int, out: TextIO, *, port: int | None = None,
         verify_checksums: bool = False, bpf: str | None = None,
         idle_timeout: float | None = None, zeek_timers: bool = False) -> None:
    cap = read(path, port=port, record=conn_id, verify_checksums=verify_checksums, bpf=bpf,
               idle_timeout=idle_timeout, zeek_timers=zeek_timers)
    rec = cap.record(conn_id)  # raises UsageError for an unknown id
    rows = cap.packet_rows()
    if not rows:
        raise UsageError(f"{path}: connection {conn_id} has no packets")
    client, server = rec["client"], rec["server"]
    hs = rec["handshake"]
    out.write(f"connection {conn_id}: client {client} -> server {server}"
              f"{'  (roles guessed: no SYN seen)' if rec['roles_guessed'] else ''}\n")
    out.write(f"conn_state {rec['conn_state']}  history {rec['history']}  close "
              f"{rec['close']['kind']}\n\n")
    out.write(f"{'pkt':>6} {'time(s)':>10}  {'dir':<3} {'flags':<6} {'seq':>10} {'ack':>10} "
              f"{'len':>5} {'win':>6}  {'client state':<13} {'server state'}\n")
    start = rows[0][1]
    # one rule for relative numbers (analyzer.relative), the same as the plots and frames
    bases = seq_bases(hs["client_isn"], hs["server_isn"], (row[3:7] for row in rows))
    prev = (-1, -1)
    unexpected = {(u["packet"]) for u in rec["unexpected"]}
    for row in rows:
        pkt, ts, _conn, from_client, flags, seq, ack, length, win, cst, sst = row[:11]
        anomalies, dup_ack_num = row[12], row[13]
        rseq = relative(seq, bases[0 if from_client else 1])
        rack = relative(ack, bases[1 if from_client else 0]) if flags & 0x10 else ""
        arrow = "->" if from_client else "<-"
        c_txt = _state(cst) + ("*" if cst != prev[0] else "")
        s_txt = _state(sst) + ("*" if sst != prev[1] else "")
        prev = (cst, sst)
        marks = tags(anomalies, dup_ack_num) + (["unexpected"] if pkt in unexpected else [])
        note = "  " + " ".join(marks) if marks else ""
        line = (f"{pkt:>6} {(ts - start) / 1e9:>10.6f}  {arrow:<3} {flags_text(flags):<6} "
                f"{rseq:>10} {rack:>10} {length:>5} {win:>6}  "
                f"{c_txt:<13} {s_txt:<13}{note}")
        out.write(line.rstrip() + "\n")  # no padding left at the end of a line
    out.write("\n-> client to server, <- server to client; * marks a state change;\n"
              "seq/ack relative to each side's ISN"
              + (" (no SYN seen: to its first number - 1, as Wireshark)"
                 if None in (hs["client_isn"], hs["server_isn"]) else "")
              + ";\n[...] are Wireshark's analysis flags (tshark's Info column)\n")
