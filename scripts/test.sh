#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run).
# Needs the Rust toolchain, python3 (>= 3.9, venv + pip, for the Python module's tests) and, for
# the software-GPU suites, Mesa's lavapipe Vulkan driver, which step 0 installs when missing
# (apt). Every fixture is committed: no torch, no GPU, no model download.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A from-scratch build gains nothing from incremental compilation, whose caches were half of
# the target dir (6 of 12 GB in a fresh-clone run); a CI run that filled its disk failed at a link.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Free disk space first, so a run that fills its disk says so at the top of its log.
df -h "${CARGO_TARGET_DIR:-$PWD/target}" 2>/dev/null || df -h .
t0=$(date +%s)
stamp() { echo "== test.sh: $1 done at +$(( $(date +%s) - t0 )) s"; }
# 0. A software GPU for the wgpu suites (taiyi-core/tests/gpu_parity.rs): lavapipe.
scripts/install_lavapipe.sh
# wgpu (winit/Vulkan loader) wants a runtime dir; CI has none.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/taiyi-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
stamp "lavapipe"
# 1. Every test of the workspace in ONE build with every backend compiled in (flex, ndarray,
#    wgpu, cuda): the CPU suites (doc tests, parity, CLI, server, store, preprocess), the
#    software-GPU suites (tiny towers and ClipModel on Wgpu<f32> and Wgpu<f16> through
#    lavapipe, taiyi-core/tests/gpu_parity.rs), taiyi-core's unit tests with the wgpu/CUDA paths (the
#    "no CUDA driver" error), and the CLI built with its wgpu/cuda features. One feature
#    resolution for all of it: nothing is compiled twice. Minimal autotuning: lavapipe is
#    slow and these suites check numbers, not speed.
export TAIYI_CARGO_TEST_ARGS="--features taiyi-cli/wgpu,taiyi-cli/cuda,taiyi-core/ndarray"
# shellcheck disable=SC2086
CUBECL_AUTOTUNE_LEVEL=minimal TAIYI_CACHE_DIR="$PWD/target/taiyi-cache" \
  cargo test --workspace $TAIYI_CARGO_TEST_ARGS
stamp "cargo test --workspace (CPU + lavapipe)"
# Which bf16 CPU kernels step 1 exercised on this machine (taiyi-nn's kernel tests run every
# kernel the CPU has: an AMD Zen 4/5 host tests avx512bf16 and f32, a CPU without
# AVX512_BF16 f32 only). A re-run of the same test binary (no build), output shown.
# shellcheck disable=SC2086
cargo test --workspace $TAIYI_CARGO_TEST_ARGS --lib -q bf16_kernels_on_this_cpu -- --nocapture 2>&1 \
  | grep "bf16 kernels exercised"
# 2. The Python module (taiyi-py, the build of step 1 installed into a venv) and Ray Data.
scripts/test_python.sh
stamp "python"
# 3. A CPU build without flex (ndarray only) must build too.
cargo check -p taiyi-core --no-default-features --features ndarray
stamp "ndarray-only check"
# 4. Fuzzing: each cargo-fuzz target of fuzz/ for 60 s on its committed corpus (libFuzzer, the
#    targets side by side on the cores; the instrumented build takes ~5 minutes on 2 cores).
#    Longer runs: scripts/fuzz.sh 600.
scripts/fuzz.sh 60
stamp "fuzz (60 s per target)"
