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
