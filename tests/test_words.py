"""Counts in words: "1 segment", never "1 segments", in every output that counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from analyzer.words import plural

ROOT = Path(__file__).resolve().parent.parent


def test_plural() -> None:
    assert plural(1, "segment") == "1 segment"
    assert plural(0, "segment") == "0 segments"
    assert plural(12_345, "packet") == "12,345 packets"
    assert plural(12_345, "packet", grouped=False) == "12345 packets"
    assert plural(2, "child", "children") == "2 children"


def test_read_footer_of_one_connection(tmp_path: Path) -> None:
    """The footer of a one-connection capture (Zeek-style one-connection traces and -c)."""
    res = subprocess.run([sys.executable, "-m", "analyzer", "read",
                          str(ROOT / "captures" / "echo-lo.pcap"), "-c", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    footer = res.stdout.strip().splitlines()[-1]
    assert footer.startswith("1 connection (") and footer.endswith("; 1 TCP packet"), footer
