#!/usr/bin/env bash
# Fuzz every target of fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each, starting from the
# committed seed corpora (fuzz/corpus/<target>/, written by fuzz/seeds.sh).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# New inputs libFuzzer finds go to a scratch copy of the corpus (target/fuzz-corpus/), not to
# the committed one; a crash leaves its reproducer in fuzz/artifacts/<target>/ and fails the
# run. Each target's last libFuzzer status line (executions, coverage, corpus size) is printed.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it pass libFuzzer's instrumentation flags, and no sanitizer is used (the code under test has
# no `unsafe`; the C JPEG decoder is not instrumented by rustc either way).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tokenizer image checkpoint npy)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build -s none)
status=0
for t in "${targets[@]}"; do
  work="target/fuzz-corpus/$t"
  mkdir -p "$work"
  cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  log="target/fuzz-corpus/$t.log"
  if (cd fuzz && cargo fuzz run -s none "$t" "../$work" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1) >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and fuzz/artifacts/$t/)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  echo "fuzz $t: $result; ${secs} s, $execs executions; $last"
done
exit $status
