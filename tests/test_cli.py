"""The ``handshake`` command line as a new user meets it: --version, help with an example
per subcommand, clear messages for bad option values, several files where one is
missing, and a --help that imports nothing heavy."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import analyzer

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "captures" / "echo-lo.pcap"
COMMANDS = ("read", "show", "plot", "report", "sniff", "demo")


def handshake(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)],
                         capture_output=True, text=True, cwd=cwd, timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def test_version() -> None:
    res = handshake("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"handshake {analyzer.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_has_an_example(command: str) -> None:
    res = handshake(command, "--help")
    assert res.returncode == 0
    example = res.stdout.split("example", 1)[1].splitlines()[1:]
    assert any(f"handshake {command}" in line for line in example), res.stdout


def examples(help_text: str) -> list[list[str]]:
    """The example command lines of a --help, as argv lists (comments dropped)."""
    lines = help_text.split("\nexample", 1)[1].splitlines()[1:]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("  ")]


@pytest.mark.parametrize("command", ["read", "show", "plot", "report", "demo"])
def test_each_example_runs_as_written_from_any_directory(command: str, tmp_path: Path) -> None:
    # A new user copies the example from wherever they are: captures/ exists only in
    # the source tree, so the help names the installed sample capture there.
    if command in ("plot", "report"):
        pytest.importorskip("matplotlib")
    res = handshake(command, "--help", cwd=tmp_path)
    ran = 0
    for argv in examples(res.stdout):
        if argv[0] == "sudo":  # needs capture rights: test_sniff's business
            continue
        assert argv[:2] == ["handshake", command], argv
        run = handshake(*argv[1:], cwd=tmp_path)
        assert run.returncode == 0, (argv, run.stderr)
        ran += 1
    assert ran >= 1, res.stdout


@pytest.mark.parametrize("command", ["read", "show", "report"])
def test_file_is_explained(command: str) -> None:
    res = handshake(command, "--help")
    assert "FILE " in res.stdout and "pcap or pcapng capture" in res.stdout


def test_conn_id_is_explained() -> None:
    res = handshake("show", "--help")
    text = " ".join(res.stdout.split())
    assert "CONN_ID the connection's id: the first column of 'handshake read FILE'" in text


@pytest.mark.parametrize("argv, message", [
    (["read", str(ECHO), "--port", "abc"], "argument --port: 'abc' is not a port number"),
    (["read", str(ECHO), "--port", "65536"], "'65536' is not a port number (0-65535)"),
    (["show", str(ECHO), "x"], "argument CONN_ID: 'x' is not a whole number"),
    (["report", str(ECHO), "-o", "r.html", "--limit", "-1"],
     "argument --limit: '-1' is not a whole number >= 0"),
    (["sniff", "--linger", "-3"], "argument --linger: '-3' is not a number of seconds >= 0"),
    (["sniff", "--linger", "nan"], "argument --linger: 'nan' is not a number of seconds"),
    (["sniff", "--duration", "0"], "argument --duration: '0' is not a positive number"),
    (["sniff", "-c", "zero"], "argument -c/--count: 'zero' is not a positive whole number"),
    (["plot", str(ECHO), "--conn", "one", "-o", "x.png"], "argument --conn: 'one' is not"),
])
def test_bad_values_say_what_was_expected(argv: list[str], message: str) -> None:
    res = handshake(*argv)
    assert res.returncode == 2 and res.stdout == ""
    assert message in res.stderr.splitlines()[-1], res.stderr
    assert "invalid" not in res.stderr  # argparse's "invalid _port value"


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv", "zeek", "json"])
def test_missing_file_among_several_keeps_the_good_results(tmp_path: Path, fmt: str) -> None:
    missing = tmp_path / "missing.pcap"
    alone = handshake("read", ECHO, "--format", fmt)
    res = handshake("read", ECHO, missing, "--format", fmt)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"handshake: error: {missing}: no such file"]
    if fmt == "jsonl":  # one file read: the same lines as alone
        assert res.stdout == alone.stdout and len(res.stdout.splitlines()) == 13
    elif fmt == "json":
        assert json.loads(res.stdout) == json.loads(alone.stdout)
    elif fmt != "zeek":  # (the zeek header has the time it was written)
        assert res.stdout == alone.stdout
    else:
        assert len(res.stdout.splitlines()) == len(alone.stdout.splitlines())


def test_missing_file_first_then_a_good_one(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    res = handshake("read", missing, ECHO, "--format", "jsonl")
    assert res.returncode == 2 and len(res.stdout.splitlines()) == 13
    assert res.stderr == f"handshake: error: {missing}: no such file\n"


def test_only_missing_files_print_nothing_but_the_errors(tmp_path: Path) -> None:
    res = handshake("read", tmp_path / "a.pcap", tmp_path / "b.pcap", "--format", "json")
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 2


def test_help_imports_nothing_heavy() -> None:
    # Only what analyzer.cli itself adds counts: the interpreter's start-up may import
    # some of these already (a .pth file of certifi imports tempfile, for one).
    code = ("import sys; before = set(sys.modules); "
            "from analyzer.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'pandas', 'matplotlib', 'scapy', 'pyshark', "
            "'pyarrow', 'rich', 'analyzer._engine', 'tempfile') "
            "if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_read_help_says_how_several_files_are_read() -> None:
    # They are read in parallel (-j defaults to the cores) and reported in order.
    text = " ".join(handshake("read", "--help").stdout.split())
    assert "several are reported one after the other, each on its own (see -j and --merge)" \
        in text


def test_show_leaves_no_trailing_spaces() -> None:
    # Copied into a ticket or diffed, padded lines are noise (the header and every row
    # without a Wireshark tag used to end in spaces).
    import io

    from analyzer.show import show

    for conn_id in range(len(analyzer.read(str(ECHO)))):
        out = io.StringIO()
        show(str(ECHO), conn_id, out)
        assert [line for line in out.getvalue().splitlines() if line != line.rstrip()] == []
