#!/bin/sh
# The bounded fuzzing step of CI (.ci/run): about two minutes, failing on any finding.
#   1. atheris over fuzz/harness.py (Python reading code and the extension, ASan + UBSan,
#      libFuzzer coverage of the extension): FUZZ_SECONDS_PY (default 60)
#   2. libFuzzer over fuzz/fuzz_core.c (the C core alone, much faster): FUZZ_SECONDS_C
#      (default 45)
#   3. the same on the stream mode alone (FUZZ_CORE_STREAM=1: every input streamed with a
#      sweep before every packet and checked against the in-memory records):
#      FUZZ_SECONDS_STREAM (default 30)
# Both start from fuzz/seeds and fuzz/regressions; a finding is left as crash-* in
# build/fuzz-findings/ (copy it to fuzz/regressions/ once fixed).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=$ROOT/build
FINDINGS=$OUT/fuzz-findings
mkdir -p "$FINDINGS" "$OUT/corpus-py" "$OUT/corpus-c"
"$PYTHON" -c 'import atheris' 2>/dev/null || "$PYTHON" -m pip install -q atheris
PYTHON=$PYTHON "$ROOT/fuzz/build_sanitized.sh" --fuzz "$OUT/fuzz" >/dev/null
PYTHON=$PYTHON "$ROOT/fuzz/build_core_fuzzer.sh" "$OUT/core" >/dev/null
cd "$FINDINGS"
echo "fuzz: atheris, ${FUZZ_SECONDS_PY:-60} s"
"$OUT/fuzz/run" "$PYTHON" "$ROOT/fuzz/fuzz_engine.py" "$OUT/corpus-py" "$ROOT/fuzz/seeds" \
    "$ROOT/fuzz/regressions" -max_len=4096 -max_total_time="${FUZZ_SECONDS_PY:-60}" \
    -print_final_stats=1 2>"$FINDINGS/atheris.log" \
    || { tail -60 "$FINDINGS/atheris.log"; exit 1; }
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units)" "$FINDINGS/atheris.log" || true
echo "fuzz: libFuzzer core, ${FUZZ_SECONDS_C:-45} s"
"$OUT/core/fuzz_core" "$OUT/corpus-c" "$ROOT/fuzz/seeds" "$ROOT/fuzz/regressions" \
    -max_len=4096 -max_total_time="${FUZZ_SECONDS_C:-45}" -print_final_stats=1 \
    2>"$FINDINGS/core.log" || { tail -60 "$FINDINGS/core.log"; exit 1; }
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units)" "$FINDINGS/core.log" || true
echo "fuzz: libFuzzer core, stream mode, ${FUZZ_SECONDS_STREAM:-30} s"
mkdir -p "$OUT/corpus-stream"
FUZZ_CORE_STREAM=1 "$OUT/core/fuzz_core" "$OUT/corpus-stream" "$OUT/corpus-c" \
    "$ROOT/fuzz/seeds" "$ROOT/fuzz/regressions" -max_len=2048 \
    -max_total_time="${FUZZ_SECONDS_STREAM:-30}" -print_final_stats=1 \
    2>"$FINDINGS/stream.log" || { tail -60 "$FINDINGS/stream.log"; exit 1; }
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units)" "$FINDINGS/stream.log" || true
