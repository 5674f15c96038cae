#!/bin/sh
# Build the compiled core with AddressSanitizer and UndefinedBehaviorSanitizer (clang's
# pointer-overflow check included), beside the tree, not over the normal build.
#
#   fuzz/build_sanitized.sh [--fuzz] [OUT]  (default OUT: build/sanitized)
#   OUT/run python -m analyzer read FILE    (any command, under the sanitizers)
#
# --fuzz also instruments the extension for libFuzzer's coverage (-fsanitize=fuzzer-no-link)
# and preloads atheris's runtime (ASan with libFuzzer) instead, for fuzz/fuzz_engine.py:
# it needs clang and `pip install atheris`.
#
# OUT gets a copy of the analyzer package with the sanitized extension and a `run` script
# that preloads the sanitizer runtime (Python itself is not instrumented) and makes any
# sanitizer report fatal (exit 1 after the report), so a test or CI step fails on it.
# Needs clang and its runtime (Debian: apt-get install clang libclang-rt-14-dev; on
# Debian 12 clang-14 ships it); falls back to gcc (-fsanitize=address,undefined, no
# pointer-overflow check) when clang is absent.
set -eu
FUZZ=0
if [ "${1:-}" = "--fuzz" ]; then FUZZ=1; shift; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/build/sanitized}" && cd "${1:-$ROOT/build/sanitized}" && pwd)
PYTHON=${PYTHON:-python3}
if command -v clang >/dev/null 2>&1; then
    CC=clang
    SAN="-fsanitize=address,undefined,pointer-overflow"
    RUNTIME=$(clang -print-file-name=libclang_rt.asan-x86_64.so)
else
    CC=gcc
    SAN="-fsanitize=address,undefined"
    RUNTIME=$(gcc -print-file-name=libasan.so)
fi
if [ "$FUZZ" = 1 ]; then
    [ "$CC" = clang ] || { echo "build_sanitized: --fuzz needs clang" >&2; exit 2; }
    SAN="$SAN,fuzzer-no-link"
    RUNTIME=$("$PYTHON" -c 'import atheris, os; print(os.path.join(atheris.path(), "asan_with_fuzzer.so"))')
fi
[ -f "$RUNTIME" ] || { echo "build_sanitized: no ASan runtime ($RUNTIME)" >&2; exit 2; }
# -fno-wrapv: CPython builds (and so its extensions) with -fwrapv, under which signed
# overflow and pointer wrap-around are defined and UBSan does not check them.
FLAGS="$SAN -fno-wrapv -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
rm -rf "$OUT/analyzer" "$OUT/tmp"
cd "$ROOT"
CC=$CC LDSHARED="$CC -shared" CFLAGS="$FLAGS" LDFLAGS="$SAN" \
    "$PYTHON" setup.py -q build_ext --build-lib "$OUT" --build-temp "$OUT/tmp" --force >/dev/null
# The package's Python files beside the sanitized extension (not the normal build's .so).
(cd "$ROOT" && find analyzer -name '*.py' -o -name '*.pyi' -o -name 'py.typed' \
    | grep -v __pycache__ | while read -r f; do
        mkdir -p "$OUT/$(dirname "$f")" && cp "$f" "$OUT/$f"; done)
[ -d "$ROOT/analyzer/data" ] && cp -r "$ROOT/analyzer/data" "$OUT/analyzer/" || true
cat > "$OUT/run" <<RUN
#!/bin/sh
# Run a command with the sanitized analyzer package first on sys.path.
export LD_PRELOAD="$RUNTIME"
export PYTHONPATH="$OUT\${PYTHONPATH:+:\$PYTHONPATH}"
export ASAN_OPTIONS="\${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:exitcode=86}"
export UBSAN_OPTIONS="\${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}"
exec "\$@"
RUN
chmod +x "$OUT/run"
echo "$OUT"
