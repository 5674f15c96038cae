"""Run every file of the given corpus directories through fuzz/harness.py once (no
fuzzer needed): the regression corpus in the tests, a campaign's corpus for coverage.

    python fuzz/replay.py fuzz/regressions fuzz/seeds
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness


def main(dirs: list[str]) -> int:
    n = 0
    for d in dirs:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path) and not name.startswith((".", "README")):
                with open(path, "rb") as f:
                    harness.one_input(f.read())
                n += 1
    print(f"{n} inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
