"""``handshake plot`` and ``handshake report``: files written, bad requests rejected in one
line with status 2, and the HTML report looked at in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
ECHO = str(ROOT / "captures" / "echo-lo.pcap")
MAGIC = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}


def handshake(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize(("kind", "ext"), [("ladder", ".svg"), ("sequence", ".pdf"),
                                           ("overview", ".png"), ("fsm", ".png")])
def test_plot_writes_the_format_asked(kind: str, ext: str, tmp_path: Path) -> None:
    out = tmp_path / f"out{ext}"
    args = ["plot", ECHO, "--kind", kind, "--conn", "2", "-o", str(out)]
    res = handshake(*args)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes().startswith(MAGIC[ext])
    if ext == ".svg":
        svg = out.read_text()
        assert "FIN_WAIT_2" in svg and "CLOSE_WAIT" in svg


@pytest.mark.parametrize(("args", "message"), [
    (["plot", ECHO, "--kind", "ladder", "--conn", "99", "-o", "x.png"], "no connection 99"),
    (["plot", ECHO, "--kind", "ladder", "-o", "x.png"], "needs --conn"),
    (["plot", ECHO, "--conn", "1", "-o", "x.gif"], "unknown image format .gif"),
    (["plot", "/nonexistent.pcap", "--conn", "1", "-o", "x.png"], "/nonexistent.pcap"),
    (["report", "/nonexistent.pcap", "-o", "x.html"], "/nonexistent.pcap"),
    (["report", ECHO, "-o", "/nonexistent-dir/r.html"], "cannot write"),
])
def test_bad_requests_are_one_line_and_status_2(args: list[str], message: str,
                                                tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    res = handshake("report", ECHO, "-o", str(out), "--limit", "5")
    assert res.returncode == 0, res.stderr
    return out


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    # No fetches: every image is inline, no scripts, no external links.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page
    images = re.findall(r'<img id="([^"]+)"[^>]* src="data:image/png;base64,', page)
    assert images[0] == "overview-0"
    # --limit 5 of 13: the reset (3), the refused SYN (4), the two connections whose SYNs
    # were retransmitted when the listen backlog overflowed (7, 8), the slowest handshake (0).
    picked = [0, 3, 4, 7, 8]
    assert [i for i in images if i.startswith("ladder")] == [f"ladder-0-{i}" for i in picked]
    assert [i for i in images if i.startswith("sequence")] == [
        f"sequence-0-{i}" for i in picked]
    assert page.count("<tr>") >= 13 + 1  # every connection is in the table
    assert "Diagrams for 5 of 13 connections, the most telling ones" in page
    assert "reset by client" in page and "2 retransmissions (2 of the handshake)" in page
    # Only the drawn connections' ids are links.
    assert sorted(int(i) for i in re.findall(r"<a href='#conn-0-(\d+)'>", page)) == picked


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="needs Debian's chromium for the headless screenshot")
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    import numpy as np
    from matplotlib.image import imread

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    subprocess.run([str(browser), "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1280,2600",
                    f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (2600, 1280)
    # The inline images were decoded: the overview's green "four way" bars and the
    # ladder's blue client arrows are on screen, not only text on white.
    def near(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels * 255 - np.array(rgb)).max(axis=2) < 12).sum())
    assert near((0x2C, 0xA0, 0x2C)) > 500  # four_way bars in the overview
    assert near((0x1F, 0x5F, 0xBF)) > 200  # client arrows / data bars


def test_report_on_a_port_filtered_capture(tmp_path: Path) -> None:
    """A Capture read with --port is read again with the same filter for its rows."""
    import analyzer
    from analyzer.report import write_html_report

    cap = analyzer.read(str(ROOT / "captures" / "echo-lo.pcap"), port=9503)
    out = tmp_path / "r.html"
    write_html_report(cap, str(out))
    text = out.read_text()
    assert len(cap) == 6
    assert len(re.findall(r"<section class='conn' id='conn-0-\d+'>", text)) == 6
    assert ":9502" not in text and text.count(":9503") >= 6
