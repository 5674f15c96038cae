#!/usr/bin/env python3
"""Speed-up of ``handshake read -j N`` over ``-j 1`` on 8 files of 1 M packets each.

The input is bench_read.py's: a real loopback capture (its seed, or ``--seed PCAP``)
scaled to ``--packets`` packets with rewritten client addresses. ``--files`` names
(hard links to that one file, so the page cache holds it once and every run reads
from memory) make the job. The files are read once into the page cache, then each
configuration runs ``--repeat`` times, round-robin; the best and median wall times are
reported with the speed-up against ``-j 1`` and, as the usual yardstick,
``tcptrace -n`` run on the files one after the other. The outputs of ``-j 1`` and
``-j N`` are compared (they must be the same bytes).

    python3 benchmarks/bench_parallel.py --seed captures/echo-lo.pcap
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_read  # noqa: E402  (the generator of the 1 M-packet file)


def build_inputs(args: argparse.Namespace) -> list[Path]:
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    if args.seed:
        one = workdir / f"parallel_{args.packets}_{args.seed.stem}.pcap"
        if not one.exists():
            bench_read.build_scaled(args.seed, one, args.packets)
    else:  # bench_read's own seed capture (needs root the first time)
        ns = argparse.Namespace(workdir=workdir, packets=args.packets, rebuild=False,
                                sessions=5000, parallel=8, payload=100)
        bench_read.prepare_input(ns)
        one = workdir / f"bench_{args.packets}.pcap"
    files = []
    for i in range(args.files):
        link = workdir / f"parallel_input_{i}.pcap"
        if link.exists():
            link.unlink()
        os.link(one, link)
        files.append(link)
    return files


CPU: dict[str, list[float]] = {}  # user+sys seconds of each run's processes


def timed(cmd: list[str], name: str = "") -> float:
    """Wall seconds of one run; its CPU seconds (all its processes) go to CPU[name]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(name, []).append(after.ru_utime - before.ru_utime
                                    + after.ru_stime - before.ru_stime)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000, help="packets per file")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="-j values to time")
    ap.add_argument("--formats", nargs="+", default=["jsonl", "table"])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--seed", type=Path, help="seed capture (default: bench_read.py's)")
    ap.add_argument("--workdir", type=Path, default=HERE / ".data")
    args = ap.parse_args()

    files = [str(f) for f in build_inputs(args)]
    cores = len(os.sched_getaffinity(0))
    print(f"{args.files} files x {args.packets:,} packets, {cores} cores", flush=True)
    handshake = [sys.executable, "-m", "analyzer", "read"]
    configs: dict[str, list[str]] = {}
    for fmt in args.formats:
        for j in args.jobs:
            configs[f"{fmt} -j {j}"] = [*handshake, "-j", str(j), "--format", fmt, "-o",
                                        str(args.workdir / f"out-{fmt}-{j}"), *files]
    tcptrace = shutil.which("tcptrace")
    if tcptrace:
        script = "; ".join(f"{tcptrace} -n {f} > /dev/null" for f in files)
        configs["tcptrace -n (files in turn)"] = ["sh", "-c", script]
    subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)  # page cache
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.repeat):
        for name, cmd in configs.items():
            times[name].append(timed(cmd, name))
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    for fmt in args.formats:  # the outputs of the last round
        outs = [args.workdir / f"out-{fmt}-{j}" for j in args.jobs]
        same = all(filecmp.cmp(outs[0], o, shallow=False) for o in outs[1:])
        print(f"{fmt}: outputs of -j {' / '.join(map(str, args.jobs))} identical: {same}")
        for o in outs:
            o.unlink()
    total = args.files * args.packets
    # How much of the machine this job had: the share of one core that -j 1 (one
    # process, so rusage counts all of it) got. Workers of -j N are not our children's
    # children for rusage, so their CPU time is not shown.
    load = os.getloadavg()[0]
    for fmt in args.formats:
        name = f"{fmt} -j 1"
        if name in times:
            share = CPU[name][-1] / times[name][-1]
            print(f"{name}: {share:.2f} of a core (load average {load:.1f}, {cores} cores)")
    print(f"\n| command ({args.files} x {args.packets / 1e6:g} M packets) | best s | median s "
          "| M packets/s | speed-up vs -j 1 | vs tcptrace |")
    print("| --- | --- | --- | --- | --- | --- |")
    trace = min(times["tcptrace -n (files in turn)"]) if tcptrace else None
    for name, runs in times.items():
        best = min(runs)
        base = name.split(" -j ")[0]
        serial = min(times.get(f"{base} -j 1", [best]))
        vs_trace = f"{trace / best:.2f}x" if trace else "-"
        print(f"| `{name}` | {best:.2f} | {statistics.median(runs):.2f} | "
              f"{total / best / 1e6:.2f} | {serial / best:.2f}x | {vs_trace} |")


if __name__ == "__main__":
    main()
