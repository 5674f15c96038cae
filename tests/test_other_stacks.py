"""Right on other stacks (issue 10): what Windows, macOS, middleboxes and scanners do that a
Linux-to-Linux capture never shows, each shown twice:

* on the real capture from another stack where it was found (``../shared/corpus/examples``,
  skipped when absent), checked against what tshark makes of it;
* on a purpose-made case where a real Linux stack does the same (``stack_cases.py``, run in
  a private network namespace: needs root and ``unshare``), or, where Linux never sends
  that packet, with that one packet hand-made and every answer from Linux.

Where Zeek and tshark disagree (Zeek splits a 4-tuple on its timers and on a repeated
SYN after a close), the default follows TCP (RFC 9293) and tshark; ``zeek_timers=True``
keeps Zeek's answer, and the tests below check both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import analyzer

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "shared" / "corpus" / "examples"
CASES = HERE / "stack_cases.py"

Record = dict[str, Any]
LinuxCase = Callable[[str], tuple[Path, dict[str, int]]]



def example(name: str) -> Path:
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"../shared/corpus/examples/{name} is not here")
    return path


def read(path: Path, **options: Any) -> list[Record]:
    cap = analyzer.read(str(path), **options)
    assert cap.error is None and not cap.warnings
    return list(cap.records())


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def by_client_port(recs: list[Record], port: int) -> list[Record]:
    return [r for r in recs if port_of(r["client"]) == port]


def states(rec: Record, who: str) -> list[str]:
    return [s for _, s in rec["states"][who]]


def tshark_streams(path: Path, port: int) -> int:
    """How many TCP conversations tshark makes of the packets with this port."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", f"tcp.port == {port}",
                          "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout
    return len(set(out.split()))


needs_tshark = pytest.mark.skipif(not shutil.which("tshark"), reason="needs tshark")


@pytest.fixture(scope="module")
def linux(tmp_path_factory: pytest.TempPathFactory) -> LinuxCase:
    """Run one case of stack_cases.py in a new network namespace (once per module)."""
    done: dict[str, tuple[Path, dict[str, int]]] = {}

    def run(case: str) -> tuple[Path, dict[str, int]]:
        if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
            pytest.skip("needs root, unshare and iproute2 for a network namespace")
        if case not in done:
            out = tmp_path_factory.mktemp(case) / f"{case}.pcap"
            proc = subprocess.run(["unshare", "-n", sys.executable, str(CASES), case, str(out)],
                                  check=False, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, proc.stderr
            done[case] = out, json.loads(proc.stdout.splitlines()[-1])
        return done[case]
    return run


# ---- 1. a SYN with the same ISN after a refusal is the same attempt -------------------------


def test_windows_refused_syn_retries_are_one_attempt() -> None:
    """Windows answers a refusal by sending the identical SYN 0.5 s later, twice."""
    path = example("cs__nowebaccess2.pcapng")
    [rec] = read(path)
    assert rec["close"]["kind"] == "refused" and rec["conn_state"] == "REJ"
    assert rec["handshake"]["syn_retransmits"] == 2
    assert rec["packets"] == {"client": 3, "server": 3} and rec["history"] == "Sr"
    assert states(rec, "client") == ["SYN_SENT", "CLOSED"] * 3
    # Zeek's answer (IsReuse: any SYN after a reset is a new connection) behind the flag
    zeek = read(path, zeek_timers=True)
    assert [r["handshake"]["syn_retransmits"] for r in zeek] == [0, 0, 0]


@needs_tshark
def test_windows_refused_syn_retries_agree_with_tshark() -> None:
    path = example("cs__nowebaccess2.pcapng")
    assert len(read(path)) == tshark_streams(path, 1074) == 1


@pytest.mark.root
@pytest.mark.parametrize("zeek_timers", [False, True])
def test_refused_syn_repeated_to_linux(linux: LinuxCase, zeek_timers: bool) -> None:
    """The same SYN three times (hand-made: Linux never retries a refused SYN) to a closed
    Linux port: three RSTs from Linux, one refused attempt."""
    path, facts = linux("refused_retry")
    recs = by_client_port(read(path, zeek_timers=zeek_timers), facts["client_port"])
    if zeek_timers:
        assert len(recs) == 3
        return
    [rec] = recs
    assert rec["close"]["kind"] == "refused" and rec["close"]["reset_by"] == "server"
    assert rec["handshake"]["syn_retransmits"] == 2 and rec["packets"]["server"] == 3


# ---- 3. no idle split: TCP has no idle timeout -----------------------------------------------


def test_keep_alives_hours_apart_stay_one_connection() -> None:
    """nd__avast.pcap, client port 64903: keep-alives every 357 s."""
    path = example("nd__avast.pcap")
    [rec] = by_client_port(read(path), 64903)
    assert rec["packets"] == {"client": 8, "server": 7}
    assert rec["anomalies"].get("keep_alive") == 3
    assert rec["anomalies"].get("keep_alive_ack") == 3
    assert rec["handshake"]["complete"] and rec["close"]["kind"] == "open"
    # Zeek's tcp_inactivity_timeout (5 min) splits it at each of its four gaps (357, 357,
    # 357 and 315 s), behind the flag
    assert len(by_client_port(read(path, zeek_timers=True), 64903)) == 5


@pytest.mark.root
@pytest.mark.parametrize("zeek_timers", [False, True])
def test_linux_keep_alives_and_a_late_rst(linux: LinuxCase, zeek_timers: bool) -> None:
    """Linux keep-alives from both ends around a half-close, then an abort, the gaps
    stretched beyond five minutes: one connection; the RST long after the FIN is its end."""
    path, facts = linux("keepalive")
    recs = by_client_port(read(path, zeek_timers=zeek_timers), facts["client_port"])
    if zeek_timers:
        assert len(recs) > 1
        return
    [rec] = recs
    assert rec["anomalies"].get("keep_alive") == 3 and rec["anomalies"].get("keep_alive_ack") == 3
    assert rec["close"]["kind"] == "reset" and rec["close"]["reset_by"] == "server"
    assert rec["close"]["initiator"] == "client"  # its FIN came first (cause 4)
    assert states(rec, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                     "CLOSED"]
    assert states(rec, "server")[-2:] == ["CLOSE_WAIT", "CLOSED"]
    assert rec["duration"] > 3 * 300


# ---- 8. scanner probes ---------------------------------------------------------------------


@pytest.mark.root
def test_nmap_probes_repeated_with_the_same_isn(linux: LinuxCase) -> None:
    """nmap's SYN+FIN+PSH+URG probe sent twice with one ISN (hand-made; the answers are
    Linux's): one connection per port; a probe with no flags still leaves a history."""
    path, facts = linux("nmap_probes")
    recs = read(path)
    [open_port] = by_client_port(recs, facts["open"])
    assert open_port["handshake"]["syn_retransmits"] == 1 and open_port["history"] == "Q"
    assert open_port["close"]["kind"] == "unanswered"  # Linux drops SYN+FIN in LISTEN
    [closed_port] = by_client_port(recs, facts["closed"])
    assert closed_port["packets"] == {"client": 2, "server": 2}
    assert closed_port["close"]["kind"] == "refused"
    [null] = by_client_port(recs, facts["null"])
    assert null["history"] == "I" and null["packets"]["client"] == 2
    assert all(r["history"] for r in recs)


# ---- 2. a RST from SYN-SENT answering a stale ACK does not end the attempt ------------------


def test_stale_ack_reset_keeps_the_attempt() -> None:
    """sv__base64-decode-5885~input.pcap, client port 57558: the server answers the SYN
    with an ACK of a connection it still holds, the client resets that with
    <SEQ=SEG.ACK><RST> (RFC 9293 3.10.7.3) and its SYN retransmission completes."""
    path = example("sv__base64-decode-5885~input.pcap")
    [rec] = by_client_port(read(path), 57558)
    hs = rec["handshake"]
    assert hs["complete"] and hs["syn_retransmits"] == 1 and hs["server_options"]
    assert hs["server_rtt"] is not None and hs["server_rtt"] < 0.1  # from the SYN answered
    assert states(rec, "client")[:2] == ["SYN_SENT", "ESTABLISHED"]
    assert states(rec, "server")[:3] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]
    assert rec["unexpected"] == [] and rec["first_packet"] == 191
    assert rec["close"]["reset_by"] == "server"  # the client's RST reset the old one
    assert rec["conn_state"] == "SF"  # Zeek's view of the attempt that went on


@needs_tshark
def test_stale_ack_reset_agrees_with_tshark() -> None:
    path = example("sv__base64-decode-5885~input.pcap")
    assert len(by_client_port(read(path), 57558)) == tshark_streams(path, 57558) == 1


@pytest.mark.root
def test_linux_stale_ack_reset(linux: LinuxCase) -> None:
    """Linux: a socket vanishes without a word (TCP_REPAIR), a new one binds its port and
    connects; the server's socket for the old connection answers the SYN with a
    challenge ACK, Linux in SYN-SENT resets it and retransmits its SYN."""
    path, facts = linux("stale_ack")
    old, new = by_client_port(read(path), facts["client_port"])
    assert old["close"]["kind"] == "open" and old["handshake"]["complete"]
    assert new["handshake"]["complete"] and new["handshake"]["syn_retransmits"] == 1
    assert new["unexpected"] == []
    assert states(new, "client") == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                     "TIME_WAIT"]
    assert states(new, "server") == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT",
                                     "LAST_ACK", "CLOSED"]
    assert new["close"]["kind"] == "three_way" and new["close"]["reset_by"] is None
    assert new["conn_state"] == "SF"
    assert len(read(path, zeek_timers=True)) == 3  # Zeek splits at the SYN after the RST


# ---- 4. who started the close, and who is left in TIME-WAIT --------------------------------


def test_first_fin_starts_the_close_even_when_a_rst_ends_it() -> None:
    """sv__output-eve-ftp-data~input.pcap, 192.168.0.1:2330 -> 192.168.0.13:2869: the
    server's FIN comes first, the FINs cross, the client then sends two RSTs."""
    path = example("sv__output-eve-ftp-data~input.pcap")
    [rec] = by_client_port(read(path), 2330)
    assert rec["history"] == "ShADfFaRR"
    assert rec["close"]["kind"] == "reset" and rec["close"]["reset_by"] == "client"
    assert rec["close"]["initiator"] == "server"
    # the client's RST came after it reached TIME-WAIT: its TCB is gone, nobody waits
    assert rec["close"]["time_wait"] is None
    assert states(rec, "client")[-2:] == ["TIME_WAIT", "CLOSED"]


@needs_tshark
def test_first_fin_sender_agrees_with_tshark() -> None:
    path = example("sv__output-eve-ftp-data~input.pcap")
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y",
                          "tcp.port == 2330 && tcp.flags.fin == 1", "-T", "fields", "-e",
                          "tcp.srcport"], capture_output=True, text=True, check=True).stdout
    first_fin_port = int(out.split()[0])
    [rec] = by_client_port(read(path), 2330)
    assert rec["close"]["initiator"] == ("client" if first_fin_port == 2330 else "server")


@pytest.mark.root
def test_linux_fin_then_abort(linux: LinuxCase) -> None:
    """Linux: the server closes, the client answers with an abort (SO_LINGER 0)."""
    path, facts = linux("fin_then_abort")
    [rec] = by_client_port(read(path), facts["client_port"])
    assert rec["close"] == {"kind": "reset", "initiator": "server", "reset_by": "client",
                            "half_close": False, "time_wait": None}
    assert states(rec, "client")[-2:] == ["CLOSE_WAIT", "CLOSED"]


@pytest.mark.root
def test_linux_orphan_answers_data_with_rst(linux: LinuxCase) -> None:
    """Linux: the client closes; the server's late data reaches the orphaned socket (a
    TIME-WAIT mini-socket in its FIN-WAIT-2 substate), which answers RST and is gone."""
    path, facts = linux("orphan_rst")
    [rec] = by_client_port(read(path), facts["client_port"])
    assert rec["close"]["kind"] == "reset" and rec["close"]["initiator"] == "client"
    assert rec["close"]["reset_by"] == "client" and rec["close"]["time_wait"] is None
    assert rec["close"]["half_close"] is True
    assert states(rec, "client")[-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "CLOSED"]


# ---- 7. TCP Fast Open -----------------------------------------------------------------------


def test_fast_open_handshake() -> None:
    """sv__tcp-fastopen-01~tfo.pcap: a cookie request, then a SYN carrying 86 octets that
    the SYN-ACK acknowledges (RFC 7413): a valid handshake."""
    path = example("sv__tcp-fastopen-01~tfo.pcap")
    cookie, tfo = read(path)
    assert cookie["handshake"]["fast_open"] is False and cookie["handshake"]["complete"]
    hs = tfo["handshake"]
    assert hs["fast_open"] is True and hs["complete"] and hs["server_options"]
    assert hs["irtt"] == pytest.approx(0.000258)  # tshark's tcp.analysis.initial_rtt
    assert tfo["unexpected"] == [] and tfo["close"]["kind"] == "three_way"
    assert states(tfo, "client") == ["SYN_SENT", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                                     "CLOSED"]


@pytest.mark.root
def test_linux_fast_open(linux: LinuxCase) -> None:
    """Linux with net.ipv4.tcp_fastopen=3: the first connection gets a cookie, the second
    sends its request in the SYN (MSG_FASTOPEN)."""
    path, facts = linux("fast_open")
    recs = read(path)
    [first] = by_client_port(recs, facts["port1"])
    [second] = by_client_port(recs, facts["port2"])
    assert first["handshake"]["fast_open"] is False
    assert second["handshake"]["fast_open"] is True
    for rec in (first, second):
        assert rec["handshake"]["complete"] and rec["handshake"]["irtt"] is not None
        assert rec["unexpected"] == [] and rec["close"]["kind"] in ("three_way", "four_way")
        assert states(rec, "client")[:2] == ["SYN_SENT", "ESTABLISHED"]
    assert second["payload_bytes"]["client"] == len("request 2\n")
    # every output says so
    cap = analyzer.read(str(path))
    assert list(cap.connections["fast_open"]) == [False, True]


# ---- 6. captures missing a direction ---------------------------------------------------------

INFERRED = 1  # Engine.transitions' "how" code (analyzer.frames.HOW)


def how_of(cap: analyzer.Capture, conn_id: int, role: int, state: str) -> int:
    """How the endpoint (0 client, 1 server) reached ``state``: seen or inferred."""
    from analyzer.fsm import TcpState
    [how] = [h for r, st, _ts, _pkt, h, _inp in cap.state_changes(conn_id)
             if r == role and st == TcpState[state]]
    return int(how)


def test_one_direction_capture_infers_the_handshake() -> None:
    """nd__whatsapp.pcap holds only the client's packets: every client that sends the
    handshake ACK is ESTABLISHED (inferred), and the iRTT is SYN -> ACK as tshark's."""
    path = example("nd__whatsapp.pcap")
    cap = analyzer.read(str(path))
    recs = list(cap.records())
    assert all(r["packets"]["server"] == 0 for r in recs)
    for rec in recs:
        assert states(rec, "client")[:2] == ["SYN_SENT", "ESTABLISHED"], rec["client"]
        assert states(rec, "server")[:3] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]
        assert how_of(cap, rec["id"], 0, "ESTABLISHED") == INFERRED
        assert rec["close"]["kind"] != "unanswered" and rec["unexpected"] == []
        assert rec["handshake"]["irtt"] is not None and not rec["handshake"]["complete"]
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.analysis.initial_rtt",
                              "-T", "fields", "-e", "tcp.srcport", "-e",
                              "tcp.analysis.initial_rtt"],
                             capture_output=True, text=True, check=True).stdout
        tshark = {int(p): float(v) for p, v in (line.split() for line in out.splitlines())}
        ours = {port_of(r["client"]): r["handshake"]["irtt"] for r in recs}
        assert ours == pytest.approx(tshark, abs=1e-9)


@pytest.mark.root
def test_linux_connection_seen_from_one_side(linux: LinuxCase) -> None:
    """A real Linux connection, and the same packets with only the client's kept (as a
    one-direction tap sees it): the same iRTT, the client ESTABLISHED (inferred) at its
    handshake ACK, the server's handshake completed by that ACK."""
    path, facts = linux("one_direction")
    [full] = read(path)
    one_way = path.with_name(path.name.replace(".pcap", "-client.pcap"))
    cap = analyzer.read(str(one_way))
    [rec] = by_client_port(list(cap.records()), facts["client_port"])
    assert rec["packets"] == {"client": full["packets"]["client"], "server": 0}
    assert rec["handshake"]["irtt"] == full["handshake"]["irtt"]
    assert rec["handshake"]["client_rtt"] is None and rec["handshake"]["server_rtt"] is None
    assert states(rec, "client")[:3] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1"]
    assert states(rec, "server")[:3] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]
    assert rec["states"]["client"][1][0] == rec["states"]["server"][2][0]  # at its ACK
    assert how_of(cap, 0, 0, "ESTABLISHED") == INFERRED
    assert rec["close"]["initiator"] == "client" and rec["unexpected"] == []


@pytest.mark.root
def test_linux_connection_seen_from_the_server_side(linux: LinuxCase) -> None:
    """The same connection with only the server's packets: its data proves it got the
    ACK of its SYN-ACK (ESTABLISHED, inferred), not SYN_RECEIVED to the end."""
    path, facts = linux("one_direction")
    cap = analyzer.read(str(path.with_name(path.name.replace(".pcap", "-server.pcap"))))
    [rec] = by_client_port(list(cap.records()), facts["client_port"])
    assert rec["packets"]["client"] == 0 and rec["roles_guessed"]  # no SYN seen
    # (the client's FIN is not in this file, so the close is not inferred: its data and
    # FIN cannot be told apart from the server's ACKs alone)
    assert states(rec, "server")[:3] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]
    assert how_of(cap, 0, 1, "ESTABLISHED") == INFERRED
    assert states(rec, "client")[:2] == ["SYN_SENT", "ESTABLISHED"]
