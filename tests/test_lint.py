"""The package type-checks with mypy --strict and passes ruff (pyproject.toml's settings)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)


def test_mypy_strict() -> None:
    pytest.importorskip("mypy")
    res = run(sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", "/dev/null",
              "analyzer")
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    res = run(ruff, "check", "analyzer")
    assert res.returncode == 0, res.stdout + res.stderr
