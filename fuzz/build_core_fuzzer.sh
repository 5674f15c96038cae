#!/bin/sh
# Build fuzz/fuzz_core.c (libFuzzer, ASan, UBSan with pointer-overflow; any report fatal)
# over the core's C files, and optionally a coverage build to measure what a corpus
# reaches.
#
#   fuzz/build_core_fuzzer.sh [OUT]   -> OUT/fuzz_core, OUT/fuzz_core_cov (default build/core)
#   OUT/fuzz_core CORPUS fuzz/seeds -max_len=8192 -max_total_time=60
#   OUT/fuzz_core_cov -runs=0 CORPUS && llvm-profdata-14 merge ... (see fuzz/README.md)
#
# Needs clang with its runtime (Debian: apt-get install clang libclang-rt-14-dev).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/build/core}" && cd "${1:-$ROOT/build/core}" && pwd)
PYTHON=${PYTHON:-python3}
# Every C file of the core that does not use Python (the binding, module.c, and merge.c do).
SRC=$(grep -L '#include <Python.h>' "$ROOT"/csrc/*.c | tr '\n' ' ')
# The RFC 9293 table the engine is given by Python (analyzer.fsm), as a C array.
(cd "$ROOT" && "$PYTHON" -c '
from analyzer.fsm import table_bytes
t = table_bytes()
print("static const uint8_t FSM_TABLE[%d] = {%s};" % (len(t), ",".join(map(str, t))))
') > "$OUT/fsm_table.inc"
COMMON="-std=c11 -g -I$ROOT/csrc -I$OUT -Wall -Wno-unused-parameter"
clang $COMMON -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined,pointer-overflow -fno-sanitize-recover=all \
    "$ROOT/fuzz/fuzz_core.c" $SRC -o "$OUT/fuzz_core"
clang $COMMON -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
    "$ROOT/fuzz/fuzz_core.c" $SRC -o "$OUT/fuzz_core_cov"
echo "$OUT"
