"""README.md as a newcomer reads it: the field table of "Connection records" names
exactly the keys the jsonl output has, for one file, several files and --merge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"


def documented_fields() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("### Connection records", 1)[1].split("\n\n", 2)[1]
    fields: set[str] = set()
    for row in table.splitlines()[2:]:
        first, meaning = row.split("|")[1:3]
        fields.update(re.findall(r"`([a-z_]+)`", first))
        # "`duration`: seconds" style: a field named at the start of a later clause
        fields.update(re.findall(r"; `([a-z_]+)`:", meaning))
    return fields


def jsonl_keys(*argv: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "analyzer", "read", "--format", "jsonl",
                          *argv], capture_output=True, text=True, check=True).stdout
    return {key for line in out.splitlines() for key in json.loads(line)}


def test_the_field_table_names_every_jsonl_key() -> None:
    one = jsonl_keys(str(CAPTURES / "echo-lo.pcap"))
    several = jsonl_keys(str(CAPTURES / "echo-lo.pcap"), str(CAPTURES / "echo.pcapng"))
    merged = jsonl_keys("--merge", str(CAPTURES / "echo-lo.pcap"),
                        str(CAPTURES / "echo.pcapng"))
    assert several - one == {"file"}
    assert one | several | merged == documented_fields()


def test_bad_input_in_the_library_is_as_the_readme_says(tmp_path: Path) -> None:
    import pytest

    import analyzer

    with pytest.raises(analyzer.CaptureError):
        analyzer.read(str(tmp_path / "missing.pcap"))
    good = (CAPTURES / "echo-lo.pcap").read_bytes()
    # packet 58's record header claims a 4 GiB capture length: a corrupt record
    cut = analyzer.read(str(CAPTURES / "echo-lo.pcap"), count=57).stats["bytes_framed"]
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(good[:cut + 8] + b"\xff" * 4 + good[cut + 12:])
    cap = analyzer.read(str(bad))
    assert cap.error is not None and (cap.error.offset, cap.error.packet) == (cut, 57)
    assert len(list(cap.records())) == 9 and cap.warnings == []
    short = tmp_path / "short.pcap"
    short.write_bytes(good[:cut + 20])  # mid-record: a capture being written
    cap = analyzer.read(str(short))
    assert cap.error is None and cap.warnings == [f"{short}: truncated at byte {cut} after "
                                                  "packet 57"]


def test_several_files_are_laid_out_as_the_readme_says() -> None:
    files = [str(CAPTURES / "echo-lo.pcap"), str(CAPTURES / "echo.pcapng")]

    def read(fmt: str) -> str:
        return subprocess.run([sys.executable, "-m", "analyzer", "read", "--format", fmt,
                               *files], capture_output=True, text=True, check=True).stdout

    assert [line[3:] for line in read("table").splitlines() if line.startswith("== ")] == files
    assert {json.loads(line)["file"] for line in read("jsonl").splitlines()} == set(files)
    assert read("csv").startswith("file,id,")
    assert [doc["file"] for doc in json.loads(read("json"))] == files
    assert read("zeek").count("#fields") == 1


def test_row_codes_are_named_by_the_tables_the_readme_gives() -> None:
    import analyzer
    from analyzer.records import CLOSE_KINDS, CONN_STATES, STATE_NAMES

    cap = analyzer.read(str(CAPTURES / "echo-lo.pcap"))
    for i, rec in enumerate(cap.records()):
        row = cap.row(i)
        assert CLOSE_KINDS[row.close_kind] == rec["close"]["kind"]
        assert CONN_STATES[row.conn_state] == rec["conn_state"]
        client = [STATE_NAMES[t.state] for t in cap.state_changes(i) if t.role == 0]
        assert client == [state for _, state in rec["states"]["client"]]
    assert cap.row(0).close_kind == 1 and CLOSE_KINDS[1] == "four_way"
