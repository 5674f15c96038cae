"""``handshake demo --replay`` after a real, non-editable install: the capture it plays is
package data, so it works from any directory, without the source tree."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import analyzer
from analyzer.live.demo import BUNDLED_NAME, bundled, bundled_path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_COPY = ROOT / "captures" / "echo-lo.pcap"  # the README's capture: the same bytes


def test_the_bundled_capture_is_package_data() -> None:
    assert bundled().is_file() and bundled().name == BUNDLED_NAME
    assert bundled().read_bytes() == SOURCE_COPY.read_bytes()
    with bundled_path() as path:
        assert analyzer.read(str(path)).stats["tcp"] == 131


def final_records(jsonl: str) -> list[dict[str, object]]:
    return [ev["record"] for ev in map(json.loads, jsonl.splitlines())
            if ev["event"] == "final"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the package installed from a built wheel (what
    ``pip install .`` does), outside the source tree. Returns its ``handshake`` script."""
    tmp = tmp_path_factory.mktemp("install")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp / "dist"), str(ROOT)], check=False, capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp / "dist").glob("handshake_analyzer-*.whl")
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    # --no-deps: rich (the only dependency) is not needed by the jsonl output.
    inst = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--no-deps", str(wheel)], check=False, capture_output=True, text=True,
                          timeout=600)
    assert inst.returncode == 0, inst.stderr
    return env_dir / "bin" / "handshake"


def test_demo_replay_after_pip_install_from_another_directory(installed: Path,
                                                              tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    res = subprocess.run([str(installed), "demo", "--replay", "--format", "jsonl"],
                         check=False, capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "replaying the bundled capture echo-lo.pcap" in res.stderr
    expected = json.loads(json.dumps(list(analyzer.read(str(SOURCE_COPY)).records())))
    assert final_records(res.stdout) == expected
    # and it is the installed package that ran, not this source tree
    where = subprocess.run([str(installed.parent / "python"), "-c",
                            "import analyzer; print(analyzer.__file__)"], capture_output=True,
                           text=True, cwd=tmp_path, env=env, check=True).stdout
    assert where.startswith(str(installed.parent.parent)) and str(ROOT) not in where


@pytest.mark.parametrize("command", ["read", "show"])
def test_help_examples_run_after_pip_install_from_another_directory(installed: Path,
                                                                    tmp_path: Path,
                                                                    command: str) -> None:
    # captures/ is not installed: the example must name the capture the install has.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    helped = subprocess.run([str(installed), command, "--help"], check=True,
                            capture_output=True, text=True, cwd=tmp_path, env=env).stdout
    line = helped.split("\nexample:\n", 1)[1].splitlines()[0]
    argv = shlex.split(line)
    assert argv[:2] == ["handshake", command]
    res = subprocess.run([str(installed), *argv[1:]], check=False, capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=120)
    assert res.returncode == 0 and res.stderr == "", (line, res.stderr)
    assert str(ROOT) not in line  # the installed copy, not this source tree's
    if command == "read":  # --port 9502 --format jsonl: the 9502 connections
        assert [json.loads(r)["client"] for r in res.stdout.splitlines()] == [
            r["client"] for r in analyzer.read(str(SOURCE_COPY), port=9502).records()]
    else:
        assert res.stdout.startswith("connection 0: client 127.0.0.1:34835")
