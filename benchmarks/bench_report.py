#!/usr/bin/env python3
"""Time ``handshake report`` and ``handshake plot --kind overview`` at scale.

    python3 benchmarks/bench_report.py                       # the 160-connection report
    python3 benchmarks/bench_report.py --overview benchmarks/.data/bench_5000000.pcap

The big capture is bench_read.py's (``bench_read.py --packets 5000000 --build-only``:
500,000 echo connections, 494 MiB). Each command runs as its own process under GNU time
(wall time, user+sys CPU, peak RSS of that process alone), ``--repeat`` times, best wall
time kept; ``tcptrace -n`` on the same file is timed beside it as the yardstick (the
ratio is our time over tcptrace's: how many tcptrace runs one report costs). On this
shared 2-core machine wall time depends on the other jobs; CPU time is steadier.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GNU_TIME = Path("/usr/bin/time")


def run(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, cpu s, peak RSS KiB) of one run of ``argv``."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
        start = time.perf_counter()
        subprocess.run([str(GNU_TIME), "-f", "%U %S %M", "-o", stats.name, "--", *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                       cwd=ROOT)
        wall = time.perf_counter() - start
        user, sys_, rss = stats.read().split()[-3:]
    return wall, float(user) + float(sys_), int(rss)


def best(argv: list[str], repeat: int) -> tuple[float, float, int]:
    runs = [run(argv) for _ in range(repeat)]
    wall = min(r[0] for r in runs)
    return wall, min(r[1] for r in runs), max(r[2] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", default=str(ROOT / "captures" / "many-clients.pcap"))
    ap.add_argument("--overview", metavar="PCAP", help="also time plot --kind overview on it")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--all", action="store_true",
                    help="also a report with diagrams of every connection (minutes)")
    args = ap.parse_args()
    if not GNU_TIME.exists():
        sys.exit("needs GNU time (/usr/bin/time, apt-get install time)")
    out = Path(tempfile.mkdtemp(prefix="bench_report."))
    handshake = [sys.executable, "-m", "analyzer"]
    rows = []
    for label, argv, target in [
        ("report (default: 20 diagrams)", handshake + ["report", args.capture, "-o",
                                                       str(out / "r.html")], out / "r.html"),
    ] + ([("report --limit 100000 (every one)",
            handshake + ["report", args.capture, "-o", str(out / "all.html"), "--limit",
                         "100000"], out / "all.html")] if args.all else []) + ([("plot --kind overview", handshake + ["plot", args.overview, "--kind", "overview",
                                                "-o", str(out / "o.png")], out / "o.png")]
         if args.overview else []):
        wall, cpu, rss = best(argv, args.repeat)
        rows.append((label, Path(argv[4]).name, wall, cpu, rss, target.stat().st_size))
    tcptrace = {}
    if shutil.which("tcptrace"):
        for path in {args.capture, *([args.overview] if args.overview else [])}:
            tcptrace[Path(path).name] = best(["tcptrace", "-n", path], args.repeat)[0]
    print("| command | file | wall (s) | CPU (s) | peak RSS (MB) | output (MB) | vs tcptrace -n |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, name, wall, cpu, rss, size in rows:
        # A yardstick only where tcptrace takes long enough to time.
        ratio = (f"{wall / tcptrace[name]:.2f}x its time"
                 if tcptrace.get(name, 0) > 0.5 else "")
        print(f"| {label} | {name} | {wall:.1f} | {cpu:.1f} | {rss / 1024:.0f} | "
              f"{size / 1e6:.2f} | {ratio} |")
    for name, wall in tcptrace.items():
        print(f"\ntcptrace -n {name}: {wall:.2f} s")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
