#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run).
# Needs the Rust toolchain and, for the software-GPU suites, Mesa's lavapipe Vulkan driver,
# which step 0 installs when missing (apt). Every fixture is committed: no Python/torch/GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# 0. A software GPU for the wgpu suites (tests/gpu_parity.rs): lavapipe.
scripts/install_lavapipe.sh
# wgpu (winit/Vulkan loader) wants a runtime dir; CI has none.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/taiyi-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
# 1. Every test of the workspace on the CPU backend (flex), incl. doc tests and the parity tests.
cargo test --workspace
# 2. The software-GPU suites: the tiny parity suites of both towers and of ClipModel on
#    Wgpu<f32> and Wgpu<f16> through lavapipe (tests/gpu_parity.rs), and taiyi-core's unit tests
#    with the wgpu and CUDA backends compiled in (the "no CUDA driver" error path).
#    Minimal autotuning: lavapipe is slow and these suites check numbers, not speed.
CUBECL_AUTOTUNE_LEVEL=minimal TAIYI_CACHE_DIR="$PWD/target/taiyi-cache" \
  cargo test -p taiyi-core --features wgpu,cuda --lib --test gpu_parity
# 3. Every backend selection a user can make must build.
cargo check -p taiyi-core --no-default-features --features ndarray
cargo check -p taiyi-cli --no-default-features --features flex,ndarray
cargo check -p taiyi-cli --features wgpu,cuda
