"""The report and the overview at scale: diagrams for the most telling connections only,
progress on a terminal only, the overview aggregated from per-connection arrays.

Times are measured by benchmarks/bench_report.py, not asserted here.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import analyzer
from analyzer.report import overview, overview_plot
from analyzer.report._data import connection_arrays
from analyzer.report.html import pick_diagrams

ROOT = Path(__file__).resolve().parent.parent
MANY = str(ROOT / "captures" / "many-clients.pcap")
SAMPLES = sorted(str(p) for p in (ROOT / "captures").iterdir() if ".pcap" in p.name)
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"


def handshake(*args: str, stderr: int | None = subprocess.PIPE
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], stdout=subprocess.PIPE,
                          stderr=stderr, text=True, cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def many_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("many") / "many.html"
    res = handshake("report", MANY, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # not a terminal: no progress
    return out.read_text()


def test_default_report_draws_twenty_telling_connections(many_report: str) -> None:
    recs = list(analyzer.read(MANY).records())
    assert len(recs) == 160
    drawn = [int(i) for i in re.findall(r"<section class='conn' id='conn-0-(\d+)'>",
                                        many_report)]
    assert len(drawn) == 20
    kinds = {recs[i]["close"]["kind"] for i in drawn}
    assert {"reset", "refused"} <= kinds  # each kind of trouble is shown...
    # ... and the slowest handshake of the capture too.
    slowest = max((r for r in recs if r["handshake"]["irtt"] is not None),
                  key=lambda r: r["handshake"]["irtt"])
    assert slowest["id"] in drawn
    # Every connection is still in the table, the others without a link.
    assert len(re.findall(r"<tr><td class='n'>", many_report)) == 160
    assert "Diagrams for 20 of 160 connections" in many_report
    # 41 images (overview + 2 x 20) as palette PNGs: about 1 MB (it was 30 MB).
    assert len(many_report) < 2_500_000


def test_limit_changes_how_many_are_drawn(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = handshake("report", MANY, "-o", str(out), "--limit", "0")
    assert res.returncode == 0, res.stderr
    page = out.read_text()
    assert "<section class='conn'" not in page and "Diagrams for 0 of 160" in page
    assert len(re.findall(r'<img id="', page)) == 1  # the overview only


def test_pick_order_round_robin_over_kinds_of_trouble() -> None:
    recs = list(analyzer.read(MANY).records())
    picked = pick_diagrams(recs, 6)
    kinds = sorted(recs[i]["close"]["kind"] for i in picked)
    # Two rounds over resets, failed handshakes and slowest handshakes (no retransmission
    # in this capture): two of each.
    assert kinds.count("reset") == 2 and kinds.count("refused") == 2
    slow = sorted((r for r in recs if r["handshake"]["irtt"] is not None),
                  key=lambda r: -r["handshake"]["irtt"])
    assert {r["id"] for r in slow[:2] if r["close"]["kind"] not in ("reset",)} <= set(picked)
    assert pick_diagrams(recs, None).keys() == {r["id"] for r in recs}
    assert list(pick_diagrams(recs, 6)) == sorted(picked)  # drawn in id order


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        res = handshake("report", MANY, "-o", str(tmp_path / "r.html"), "--limit", "3",
                        stderr=follower)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert res.returncode == 0
    text = shown.decode()
    assert "drawing diagrams: 1/3 connections" in text and "3/3" in text
    assert text.endswith("\r\x1b[K")  # erased at the end


@pytest.mark.parametrize("path", SAMPLES + (sorted(str(p) for p in CORPUS.iterdir())
                                            if CORPUS.is_dir() else []),
                         ids=lambda p: Path(p).name)
def test_overview_syn_counts_without_rows_match_the_rows(path: str) -> None:
    """``plot --kind overview`` reads no packet rows (5 M packets would not fit in 1 GB):
    the SYNs per port from the connections equal those counted packet by packet."""
    with_rows = analyzer.read(path, record=-2)
    without = analyzer.read(path)
    if with_rows.error:
        pytest.skip(str(with_rows.error))
    exact = overview.syn_times(with_rows, connection_arrays(with_rows))
    counted = overview.syn_times(without, connection_arrays(without))
    assert {p: len(t) for p, t in counted.items()} == {p: len(t) for p, t in exact.items()}
    conns = connection_arrays(without)
    near = set(conns["first_ns"].tolist()) | set(conns["last_ns"].tolist())
    for port, times in exact.items():  # a SYN's own time, or its connection's first/last
        assert set(counted[port].tolist()) <= set(times.tolist()) | near


def test_timeline_image_puts_each_connection_in_its_cell(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """Above TIMELINE_LINES connections the timeline is an image of binned spans: every
    reset and refusal of the real capture shows in its own colour where it happened."""
    import numpy as np
    from matplotlib.colors import to_rgb
    from matplotlib.image import AxesImage

    monkeypatch.setattr(overview, "TIMELINE_LINES", 100)
    monkeypatch.setattr(overview, "RASTER", (160, 400))  # one row per connection
    cap = analyzer.read(MANY)
    fig = overview_plot(cap)
    timeline = [ax for ax in fig.axes if ax.get_title(loc="left").startswith("every")][0]
    image = [im for im in timeline.get_children() if isinstance(im, AxesImage)][0]
    pixels = np.asarray(image.get_array())
    conns = connection_arrays(cap)
    t0, last = conns["first_ns"].min(), conns["last_ns"].max() - conns["first_ns"].min()
    for rec in cap.records():
        col = min(int((conns["first_ns"][rec["id"]] - t0) / last * 400), 399)
        colour = overview.CLOSE_COLOURS[rec["close"]["kind"]]
        assert tuple(pixels[rec["id"], col]) == pytest.approx(to_rgb(colour)), rec["id"]
    assert "160 binned into 160 rows" in timeline.get_title(loc="left")


def test_counts_have_integer_ticks() -> None:
    fig = overview_plot(analyzer.read(str(ROOT / "captures" / "echo-lo.pcap")))
    for ax in fig.axes:
        title = ax.get_title(loc="left")
        if title.startswith(("handshake", "per")):
            ticks = ax.get_yticks()
            assert all(float(t).is_integer() for t in ticks), (title, ticks)
