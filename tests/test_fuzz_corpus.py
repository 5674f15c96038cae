"""The fuzzer's regression corpus and seeds (fuzz/), replayed through fuzz/harness.py with
the normal build on every run: each file of fuzz/regressions/ once found a defect (its
name says which; see fuzz/README.md). The same files run under ASan and UBSan in
tests/test_sanitized.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))
import harness

INPUTS = sorted(p for d in ("regressions", "seeds") for p in (FUZZ / d).iterdir()
                if p.is_file() and not p.name.startswith(("README", ".")))


@pytest.mark.parametrize("path", INPUTS, ids=[f"{p.parent.name}/{p.name}" for p in INPUTS])
def test_corpus_input(path: Path) -> None:
    harness.one_input(path.read_bytes())


def test_the_corpus_is_there() -> None:
    assert len([p for p in INPUTS if p.parent.name == "regressions"]) >= 6
    assert {p.name.split("-")[0] for p in INPUTS if p.parent.name == "seeds"} == {
        "file", "live", "segments"}
