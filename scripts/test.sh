#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run).
# Needs only the Rust toolchain: every fixture is committed, no Python/torch at test time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# 1. Every test of the workspace on the CPU backend (flex), incl. doc tests and the parity tests.
cargo test --workspace
# 2. Every backend feature a user can select must build.
cargo check -p taiyi-core --no-default-features --features ndarray
cargo check -p taiyi-cli --no-default-features --features flex,ndarray
cargo check -p taiyi-cli --features wgpu,cuda
