"""DataFrames of a capture (analyzer.frames, Capture.connections/.packets/.transitions),
Connection objects, HTML reprs and exports, on the real loopback captures."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

pd = pytest.importorskip("pandas")

import analyzer  # noqa: E402
from analyzer.errors import UsageError  # noqa: E402

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
FILES = ["echo-lo.pcap", "echo-any.pcap", "echo.pcapng", "many-clients.pcap"]

CONNECTION_DTYPES = {
    "id": "int64", "client": "string", "server": "string", "first_packet": "int64",
    "last_packet": "int64", "start": "datetime64[ns, UTC]", "end": "datetime64[ns, UTC]",
    "duration": "timedelta64[ns]", "packets_client": "int64", "packets_server": "int64",
    "payload_bytes_client": "int64", "payload_bytes_server": "int64", "conn_state": "category",
    "history": "string", "handshake_complete": "bool", "simultaneous_open": "bool",
    "fast_open": "bool",
    "syn_retransmits": "int64", "synack_retransmits": "int64", "client_isn": "UInt32",
    "server_isn": "UInt32", "irtt": "timedelta64[ns]", "client_rtt": "timedelta64[ns]",
    "server_rtt": "timedelta64[ns]", "client_mss": "Int64", "client_wscale": "Int64",
    "client_sack_permitted": "boolean", "client_timestamps": "boolean", "server_mss": "Int64",
    "server_wscale": "Int64", "server_sack_permitted": "boolean",
    "server_timestamps": "boolean", "close_kind": "category", "close_initiator": "category",
    "close_reset_by": "category", "close_half_close": "bool", "close_time_wait": "category",
    "client_states": "string", "server_states": "string", "client_state": "category",
    "server_state": "category", "roles_guessed": "bool", "unexpected": "int64",
}
PACKET_DTYPES = {
    "packet": "int64", "time": "datetime64[ns, UTC]", "conn_id": "int64",
    "from_client": "bool", "direction": "category", "flags": "uint8", "flags_text": "string",
    "flag_fin": "bool", "flag_syn": "bool", "flag_rst": "bool", "flag_psh": "bool",
    "flag_ack": "bool", "flag_urg": "bool", "flag_ece": "bool", "flag_cwr": "bool",
    "seq": "uint32", "ack": "uint32", "rel_seq": "Int64", "rel_ack": "Int64",
    "payload_len": "int64", "window": "int64", "client_state": "category",
    "server_state": "category", "unexpected": "bool",
}
STATES = ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
          "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT"]


def cli_jsonl(path: Path, *extra: str) -> list[dict[str, Any]]:
    """What ``handshake read --format jsonl`` prints, numbers kept exact (Decimal)."""
    out = subprocess.run([sys.executable, "-m", "analyzer", "read", "--format", "jsonl",
                          *extra, str(path)], capture_output=True, text=True, check=True).stdout
    return [json.loads(line, parse_float=Decimal) for line in out.splitlines()]


def ns(seconds: Decimal | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000_000)


def td_ns(value: Any) -> int | None:
    return None if pd.isna(value) else int(value.value)


def opt(value: Any) -> Any:
    return None if pd.isna(value) else value


@pytest.fixture(scope="module")
def lo() -> analyzer.Capture:
    return analyzer.read(str(CAPTURES / "echo-lo.pcap"))


def test_import_analyzer_does_not_import_pandas() -> None:
    code = ("import sys, analyzer; analyzer.read; analyzer.sniff; analyzer.Connection; "
            "print(sorted(m for m in ('pandas', 'numpy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_connections_schema(lo: analyzer.Capture) -> None:
    frame = lo.connections
    assert {c: str(t) for c, t in frame.dtypes.items()} == CONNECTION_DTYPES
    assert list(frame.index) == list(range(len(lo)))
    assert frame.index.name == "conn_id"
    assert list(frame["conn_state"].cat.categories) == [
        "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
        "OTH"]
    assert list(frame["close_kind"].cat.categories) == [
        "open", "four_way", "three_way", "simultaneous", "reset", "refused", "unanswered",
        "incomplete"]
    assert list(frame["client_state"].cat.categories) == STATES


@pytest.mark.parametrize("name", FILES)
def test_connections_equal_cli_jsonl(name: str) -> None:
    path = CAPTURES / name
    frame = analyzer.read(str(path)).connections
    records = cli_jsonl(path)
    assert len(frame) == len(records) > 0
    for rec in records:
        row = frame.loc[rec["id"]]
        hs, close = rec["handshake"], rec["close"]
        assert (row["client"], row["server"]) == (rec["client"], rec["server"])
        assert (row["first_packet"], row["last_packet"]) == (rec["first_packet"],
                                                             rec["last_packet"])
        assert row["start"].value == ns(rec["start"])
        assert row["end"].value == ns(rec["end"])
        assert row["duration"].value == ns(rec["duration"])
        for side in ("client", "server"):
            assert row[f"packets_{side}"] == rec["packets"][side]
            assert row[f"payload_bytes_{side}"] == rec["payload_bytes"][side]
            options = hs[f"{side}_options"] or {}
            for key in ("mss", "wscale", "sack_permitted", "timestamps"):
                assert opt(row[f"{side}_{key}"]) == options.get(key), (rec["id"], side, key)
            assert row[f"{side}_states"] == " ".join(s for _, s in rec["states"][side])
            final = rec["states"][side][-1][1] if rec["states"][side] else None
            assert opt(row[f"{side}_state"]) == final
        assert (row["conn_state"], row["history"]) == (rec["conn_state"], rec["history"])
        assert row["handshake_complete"] == hs["complete"]
        for key in ("simultaneous_open", "fast_open", "syn_retransmits", "synack_retransmits"):
            assert row[key] == hs[key]
        for key in ("client_isn", "server_isn"):
            assert opt(row[key]) == hs[key]
        for key in ("irtt", "client_rtt", "server_rtt"):
            assert td_ns(row[key]) == ns(hs[key]), (rec["id"], key)
        assert row["close_kind"] == close["kind"]
        for key in ("initiator", "reset_by", "time_wait"):
            assert opt(row[f"close_{key}"]) == close[key]
        assert row["close_half_close"] == close["half_close"]
        assert row["roles_guessed"] == rec["roles_guessed"]
        assert row["unexpected"] == len(rec["unexpected"])


def test_transitions_equal_cli_jsonl_states_and_unexpected() -> None:
    path = CAPTURES / "echo.pcapng"  # two interfaces out of order: has unexpected inputs
    frame = analyzer.read(str(path)).transitions
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "conn_id": "int64", "endpoint": "category", "time": "datetime64[ns, UTC]",
        "state": "category", "packet": "int64", "how": "category", "input": "category"}
    records = cli_jsonl(path)
    assert sum(len(r["unexpected"]) for r in records) > 0
    for rec in records:
        mine = frame[frame["conn_id"] == rec["id"]]
        changes = mine[mine["how"] != "unexpected"]
        for side in ("client", "server"):
            got = changes[changes["endpoint"] == side]
            assert [(t.value, s) for t, s in zip(got["time"], got["state"], strict=True)] == [
                (ns(t), s) for t, s in rec["states"][side]]
        odd = mine[mine["how"] == "unexpected"]
        assert [{"packet": p, "endpoint": e, "state": s, "input": i} for p, e, s, i in
                zip(odd["packet"], odd["endpoint"], odd["state"], odd["input"], strict=True)] \
            == rec["unexpected"]


def test_packets_schema_and_content(lo: analyzer.Capture) -> None:
    frame = lo.packets
    assert {c: str(t) for c, t in list(frame.dtypes.items())[:len(PACKET_DTYPES)]} \
        == PACKET_DTYPES
    assert len(frame) == lo.stats["tcp"] == 131
    assert list(frame["packet"]) == list(range(1, 132))
    conns = lo.connections
    per_conn = frame.groupby("conn_id").size()
    assert per_conn.to_dict() == (conns["packets_client"] + conns["packets_server"]).to_dict()
    # Every handshake starts at relative sequence 0; the SYN-ACK acknowledges relative 1.
    syn = frame[frame["flag_syn"] & ~frame["flag_ack"]]
    assert (syn["rel_seq"] == 0).all() and syn["rel_ack"].isna().all()
    synack = frame[frame["flag_syn"] & frame["flag_ack"]]
    assert (synack["rel_ack"] == 1).all()
    self_connect = conns.index[conns["client"] == conns["server"]]  # scenario 7: one socket
    assert list(self_connect) == [11]
    two_sided = synack[~synack["conn_id"].isin(self_connect)]
    assert len(two_sided) == 11 and (two_sided["direction"] == "server->client").all()
    assert (frame["direction"] == "client->server").equals(frame["from_client"])
    # The state after a connection's last packet is its final state.
    last = frame.groupby("conn_id").tail(1).set_index("conn_id")
    for side in ("client", "server"):
        assert last[f"{side}_state"].astype(object).where(last[f"{side}_state"].notna()) \
            .to_dict() == conns[f"{side}_state"].astype(object) \
            .where(conns[f"{side}_state"].notna()).to_dict()
    # Scenario 3 (half-close): the server sends 3 x 28 bytes after the client's FIN.
    half = frame[frame["conn_id"] == 2]
    fin = half[half["flag_fin"] & half["from_client"]]["packet"].iloc[0]
    after = half[(half["packet"] > fin) & ~half["from_client"] & (half["payload_len"] > 0)]
    assert list(after["payload_len"]) == [28, 28, 28]
    assert set(after["client_state"]) == {"FIN_WAIT_2"}
    assert set(after["server_state"]) == {"CLOSE_WAIT"}


def test_packets_gain_anomaly_columns_when_the_engine_has_them(lo: analyzer.Capture) -> None:
    width = len(analyzer.read(str(CAPTURES / "echo-lo.pcap"), record=-2).packet_rows()[0])
    frame = lo.packets
    if width == 12:
        assert "anomalies" not in frame
        pytest.skip("the engine's packet rows have no anomaly columns yet")
    assert str(frame["anomalies"].dtype) == "int64"
    assert str(frame["dup_ack"].dtype) == "int64"
    from analyzer.anomalies import Anomaly

    for flag in Anomaly:
        column = frame[f"anomaly_{str(flag.name).lower()}"]
        assert column.dtype == bool
        assert column.equals((frame["anomalies"] & int(flag)) != 0)


def test_packets_of_a_port_filtered_read_use_the_same_filter() -> None:
    cap = analyzer.read(str(CAPTURES / "echo-lo.pcap"), port=9503)
    assert len(cap) == 6
    frame = cap.packets
    assert set(frame["conn_id"]) == set(range(6))
    assert len(frame) == cap.stats["tcp"] - cap.stats["skipped_port"] == 68
    # Scenario 6: four clients' SYNs were dropped by the full backlog and retransmitted.
    retx = cap.connections["syn_retransmits"]
    assert sorted(retx) == [0, 0, 2, 2, 2, 2]
    syns = frame[frame["flag_syn"] & ~frame["flag_ack"]].groupby("conn_id").size()
    assert (syns == retx + 1).all()


def test_connection_object(lo: analyzer.Capture) -> None:
    conn = lo[3]  # scenario 4: abort with RST by the client
    assert isinstance(conn, analyzer.Connection)
    assert conn.record == lo.record(3)
    assert conn.summary["close_kind"] == "reset"
    states = conn.states
    assert list(states.columns) == ["endpoint", "time", "state", "packet", "how", "input"]
    assert list(states[states["endpoint"] == "client"]["state"]) == [
        "SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert list(states["input"].astype(object).where(states["input"].notna()))[-2:] == [
        "SEND_RST", "RECV_RST"]
    packets = conn.packets
    whole = lo.packets
    assert packets.equals(whole[whole["conn_id"] == 3].reset_index(drop=True))
    assert packets["flags_text"].iloc[-1] == "R."
    assert [c.id for c in lo] == list(range(len(lo)))
    assert "RSTO reset" in repr(conn)
    with pytest.raises(UsageError, match="no connection 99"):
        lo[99]


def test_connection_packets_without_the_whole_table() -> None:
    cap = analyzer.read(str(CAPTURES / "many-clients.pcap"))
    packets = cap[5].packets  # read again for this one connection only
    assert "_frames" not in cap.__dict__
    assert set(packets["conn_id"]) == {5}
    assert packets.equals(cap.packets[cap.packets["conn_id"] == 5].reset_index(drop=True))


def _report_has(name: str) -> bool:
    try:
        import analyzer.report as report

        getattr(report, name)
    except (ImportError, AttributeError):
        return False
    return True


def test_connection_html(lo: analyzer.Capture) -> None:
    if not _report_has("ladder_plot"):
        pytest.skip("analyzer.report.ladder_plot is not there yet")
    page = lo[0]._repr_html_()
    for part in ("connection 0", "127.0.0.1:34835", "127.0.0.1:9502", "four_way by client",
                 "TIME_WAIT", "SYN_SENT → ESTABLISHED → FIN_WAIT_1 → FIN_WAIT_2 → TIME_WAIT",
                 "ShADadFf", "<svg"):
        assert part in page, part
    assert "<?xml" not in page


def test_capture_html(lo: analyzer.Capture) -> None:
    if not _report_has("overview_plot"):
        pytest.skip("analyzer.report.overview_plot is not there yet")
    page = lo._repr_html_()
    for part in ("13 TCP connections", "131 TCP packets", "close kind", "conn_state",
                 "<td style='text-align:left'>7</td>", "RSTO", "REJ", "<svg",
                 "127.0.0.1:43323"):
        assert part in page, part


def test_exports(lo: analyzer.Capture, tmp_path: Path) -> None:
    written = lo.to_parquet(str(tmp_path / "pq"))
    assert [Path(p).name for p in written] == ["connections.parquet", "packets.parquet",
                                               "transitions.parquet"]
    back = pd.read_parquet(written[0])
    assert back.equals(lo.connections.reset_index(drop=True))
    assert pd.read_parquet(written[1]).equals(lo.packets)
    assert pd.read_parquet(written[2]).equals(lo.transitions)

    lo.to_json(str(tmp_path / "conns.jsonl"))
    cli = subprocess.run([sys.executable, "-m", "analyzer", "read", "--format", "jsonl",
                          lo.path], capture_output=True, text=True, check=True).stdout
    assert (tmp_path / "conns.jsonl").read_text() == cli

    lo.to_zeek(str(tmp_path / "conn.log"))
    rows = [line.split("\t") for line in (tmp_path / "conn.log").read_text().splitlines()
            if not line.startswith("#")]
    assert len(rows) == len(lo)
    assert [r[11] for r in rows] == list(lo.connections["conn_state"].astype(str))


def test_many_clients_capture_matches_its_plan() -> None:
    """captures/make_many.py wrote what each client meant to do; the table agrees."""
    plan = json.loads((CAPTURES / "many-clients.json").read_text())["endings_by_client_port"]
    frame = analyzer.read(str(CAPTURES / "many-clients.pcap")).connections
    assert len(frame) == len(plan) == 160
    port = frame["client"].str.rsplit(":", n=1).str[1]
    ending = port.map(plan)
    expect = {"client_close": ("client", {"three_way", "four_way"}),
              "server_close": ("server", {"three_way", "four_way"}),
              "abort": ("client", {"reset"}), "refused": ("server", {"refused"})}
    for (kind, who), group in frame.groupby([ending, "close_initiator"], observed=True):
        assert expect[kind][0] == who, kind
        assert set(group["close_kind"]) <= expect[kind][1], kind
    assert set(ending) == set(expect)
