"""The engine's JSON lines (rendered from the columns) and ConnBatch.records agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import analyzer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "zeek" / "traces"
FILES = sorted(CORPUS.glob("*.pcap*")) + sorted((ROOT / "captures").glob("*.pcap*"))


@pytest.mark.skipif(not FILES, reason="no captures here")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_engine_json_equals_python_records(path: Path) -> None:
    cap = analyzer.read(str(path))
    lines = cap.batch().render("jsonl").decode().splitlines()
    assert len(lines) == len(cap)
    for line, rec in zip(lines, cap.records()):
        assert json.loads(line) == rec
