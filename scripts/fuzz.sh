#!/usr/bin/env bash
# Fuzz every target of fuzz/ (libFuzzer through libfuzzer-sys, the engine cargo-fuzz drives) for
# SECONDS each, starting from the committed seed corpora (fuzz/corpus/<target>/, written by
# fuzz/seeds.sh). The README's test command (scripts/test.sh) runs it with 60 s per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#   FUZZ_JOBS=N                               targets run side by side (default: nproc)
#   FUZZ_TARGET_DIR=DIR                       build folder (default: target/fuzz-build)
#
# Builds fuzz/ with the instrumentation cargo-fuzz would give it (`cargo fuzz build -s none`:
# SanitizerCoverage counters, comparison tracing, `--cfg fuzzing`, release + debug info) on the
# stable toolchain, without cargo-fuzz itself: every flag used is a stable rustc flag. No
# sanitizer: the code under test has one `unsafe` call (taiyi-nn's gemm wrapper, not reached
# by these targets) and the C JPEG decoder is not instrumented by rustc either way.
# New inputs libFuzzer finds go to a scratch copy of the corpus (target/fuzz-corpus/), not to
# the committed one; a crash leaves its reproducer in fuzz/artifacts/<target>/ and fails the
# run. Each target's executions and last libFuzzer status line (coverage, corpus) are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tokenizer image checkpoint npy)
jobs="${FUZZ_JOBS:-$(nproc)}"
triple="$(rustc -vV | awk '/^host:/{print $2}')"
build="${FUZZ_TARGET_DIR:-$PWD/target/fuzz-build}"
# cargo-fuzz's flags (coverage level 4, 8-bit counters, PC table, compare tracing, stack depth).
# With an explicit --target, RUSTFLAGS reach the target's crates but not build scripts or proc
# macros, which must not be instrumented (they would not link without libFuzzer).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cllvm-args=-sanitizer-coverage-stack-depth"
(cd fuzz && cargo build --release --bins --target "$triple" --target-dir "$build")
bin="$build/$triple/release"
mkdir -p fuzz/artifacts target/fuzz-corpus

# One target: its corpus copy, its log, one summary line in target/fuzz-corpus/<t>.result.
run_one() {
  local t="$1" work="target/fuzz-corpus/$1" log="target/fuzz-corpus/$1.log" result
  mkdir -p "$work" "fuzz/artifacts/$t"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  if "$bin/$t" "$work" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and fuzz/artifacts/$t/)"
  fi
  local execs last
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  echo "fuzz $t: $result; ${secs} s, $execs executions; $last" >"target/fuzz-corpus/$t.result"
}

running=0
for t in "${targets[@]}"; do
  [ -x "$bin/$t" ] || { echo "fuzz: no target '$t' in fuzz/Cargo.toml" >&2; exit 2; }
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
status=0
for t in "${targets[@]}"; do
  cat "target/fuzz-corpus/$t.result"
  grep -q ': ok;' "target/fuzz-corpus/$t.result" || status=1
done
exit $status
