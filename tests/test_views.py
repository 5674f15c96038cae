"""Views that fit a terminal (issue 13 item 6): the ``read`` table and the live view are
laid out for 80 columns first and tested at 80, 120 and 200, with IPv4 and long IPv6
endpoints (analyzer.fit): nothing cut at random, every row and its id and ending kept."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import analyzer
from analyzer.fit import elide_endpoint
from analyzer.formats import write_table
from analyzer.live import LiveSession
from analyzer.live.view import LiveModel, render

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "captures" / "echo-lo.pcap"
IPV6 = ROOT.parent / "shared" / "corpus" / "zeek" / "traces" / "ipv6.pcap"
FILES = [ECHO] + ([IPV6] if IPV6.exists() else [])
WIDTHS = (80, 120, 200)


def table(path: Path, width: int) -> list[str]:
    out = io.StringIO()
    write_table([analyzer.read(str(path))], out, width=width)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_read_table_fits_and_keeps_every_row(path: Path, width: int) -> None:
    lines = table(path, width)
    assert max(map(len, lines)) <= width
    recs = list(analyzer.read(str(path)).records())
    rows = lines[1:1 + len(recs)]
    assert [int(row.split()[0]) for row in rows] == [r["id"] for r in recs]
    for row, rec in zip(rows, recs):
        ports = [rec[who].rsplit(":", 1)[1] for who in ("client", "server")]
        assert all(f":{port} " in row for port in ports)  # a port is never cut
        assert rec["close"]["kind"] in row
    assert "connections" in " ".join(lines[1 + len(recs):])  # the footer, wrapped to fit


def test_read_table_columns_at_each_width() -> None:
    """What the README promises: at 80 the seven columns (IPv4 endpoints whole), at 120
    also zeek, duration, bytes and history."""
    assert table(ECHO, 80)[0].split() == ["id", "client", "server", "c/s", "close", "iRTT",
                                          "pkts"]
    wide = table(ECHO, 120)
    assert wide[0].split() == ["id", "client", "server", "c/s", "close", "iRTT", "pkts",
                               "zeek", "duration", "bytes", "c/s", "history"]
    assert "127.0.0.1:34835" in wide[1] and "ShADadFf" in wide[1] and " SF " in wide[1]


@pytest.mark.skipif(not IPV6.exists(), reason="needs ../shared/corpus/zeek")
def test_ipv6_endpoints_are_elided_at_80_and_whole_at_200() -> None:
    recs = list(analyzer.read(str(IPV6)).records())
    narrow, full = table(IPV6, 80), table(IPV6, 200)
    assert narrow[0].split()[:7] == ["id", "client", "server", "c/s", "close", "iRTT", "pkts"]
    assert all("…" in row and "]:" in row for row in narrow[1:1 + len(recs)])
    for row, rec in zip(full[1:], recs):
        assert rec["client"] in row and rec["server"] in row
    # the end of the address (the host) stays: [2001:...:aa7c:2e3e]:49185
    assert elide_endpoint(recs[0]["client"], 21) == "[…94:aa7c:2e3e]:49185"


def test_the_cli_table_follows_the_terminal_width() -> None:
    for width in WIDTHS:
        env = {**os.environ, "COLUMNS": str(width)}
        out = subprocess.run([sys.executable, "-m", "analyzer", "read", str(FILES[-1])],
                             capture_output=True, text=True, check=True, cwd=ROOT, env=env)
        assert out.stdout.splitlines() == table(FILES[-1], width)


def replay(path: Path) -> tuple[LiveSession, LiveModel, list[Any]]:
    """The capture through a LiveSession, as ``handshake demo --replay`` plays it."""
    session = LiveSession("lo", replay=str(path), replay_speed=1e6)
    session.start()
    assert session.wait(60)
    model = LiveModel()
    model.apply(session.events())
    return session, model, list(analyzer.read(str(path)).records())


@pytest.fixture(scope="module", params=FILES, ids=lambda p: p.name)
def live(request: pytest.FixtureRequest) -> tuple[LiveSession, LiveModel, list[Any]]:
    return replay(request.param)


def shown(session: LiveSession, model: LiveModel, width: int) -> list[str]:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, height=60).print(render(model, session, 60, width))
    return buf.getvalue().splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_live_view_fits_and_keeps_id_and_ending(live: Any, width: int) -> None:
    session, model, recs = live
    lines = shown(session, model, width)
    assert max(map(len, lines)) <= width
    header = lines[1].split()
    assert header[:3] == ["id", "client", "server"] and header[-1] == "ended"
    rows = [line for line in lines[2:] if line.split() and line.split()[0].isdigit()][
        :len(model.rows)]
    assert [int(r.split()[0]) for r in rows] == list(model.rows)[-len(rows):]
    for row in rows:
        ended = model.rows[int(row.split()[0])].ended
        how = ended.split(" by ")[0]
        assert how in row  # "closed", "reset", "refused": never cut away
    if width == 80:
        assert "c/s" in header and "pkts" not in header
    else:  # both states in full, and the counts
        assert "state" in header and "pkts" in header
    if width == 200:
        assert "bytes" in header


def test_live_view_at_80_columns_on_the_bundled_capture() -> None:
    session, model, _ = replay(ECHO)
    lines = shown(session, model, 80)
    row = next(line for line in lines if line.startswith(" 0 "))
    assert row.split() == ["0", "127.0.0.1:34835", "127.0.0.1:9502", "TW/CL", "0.34ms",
                           "closed", "by", "client"]
