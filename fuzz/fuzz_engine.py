"""Coverage-guided fuzzing of the compiled core and the reading code with atheris
(libFuzzer for Python), over fuzz/harness.py's three ways in.

    fuzz/build_sanitized.sh --fuzz build/fuzz      # ASan + UBSan + libFuzzer coverage
    build/fuzz/run python fuzz/fuzz_engine.py build/corpus fuzz/seeds -max_len=8192 \
        -max_total_time=120

Arguments are libFuzzer's (the first directory is the working corpus it grows; seeds are
read too). A crash leaves ``crash-*`` in the current directory: copy it to
fuzz/regressions/ (named for what it found) once fixed, and tests/test_fuzz_corpus.py
replays it on every run. Seeds: fuzz/make_seeds.py.
"""

from __future__ import annotations

import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Coverage comes from the extension (built with -fsanitize=fuzzer-no-link); the Python
# modules are instrumented only with HANDSHAKE_FUZZ_PYTHON=1 (about 10x slower).
if os.environ.get("HANDSHAKE_FUZZ_PYTHON") == "1":
    with atheris.instrument_imports(include=["analyzer", "harness"]):
        import harness
else:
    import harness


def main() -> None:
    atheris.Setup(sys.argv, harness.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
