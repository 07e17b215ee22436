#!/usr/bin/env bash
# The Python module's tests: install the taiyi module (dev profile, the workspace target dir)
# into a venv of its own and run pytest (taiyi-py/tests: the module against the `taiyi` CLI,
# the Ray Data pipeline, the sharded CLI). Run after `cargo test --workspace` (scripts/test.sh
# step 1, whose cargo arguments it takes from $TAIYI_CARGO_TEST_ARGS), whose build it reuses as
# it is.
#   TAIYI_PY_VENV   venv to use/create (default .venv-py, git-ignored)
#   PYTHON          interpreter for a new venv (default python3, >= 3.9)
#   TAIYI_PY_BUILD  `maturin`: build a dev wheel with `maturin develop --profile dev` instead
# Extra arguments go to pytest (e.g. -k ray).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
venv="${TAIYI_PY_VENV:-.venv-py}"
t0=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r scripts/requirements-python-tests.txt
t1=$(date +%s)
target="${CARGO_TARGET_DIR:-$PWD/target}"
if [ "${TAIYI_PY_BUILD:-workspace}" = maturin ]; then
  # A dev wheel through maturin (feature resolution of taiyi-py alone: after
  # `cargo test --workspace` this recompiles burn & co once, see BENCHMARKS.md "Python").
  cargo build -p taiyi-cli -p taiyi-py
  VIRTUAL_ENV="$PWD/$venv" "$venv/bin/maturin" develop --profile dev -m taiyi-py/Cargo.toml -q
else
  # The extension module and the CLI exactly as `cargo test --workspace` built them (a no-op
  # right after it: the same feature resolution, nothing recompiles), installed as the
  # package taiyi/ = taiyi-py/python/taiyi + _taiyi.abi3.so.
  # shellcheck disable=SC2086
  cargo test --workspace ${TAIYI_CARGO_TEST_ARGS:-} --no-run
  # `cargo test` leaves the cdylib in deps/ (only `cargo build` copies it up a level, where an
  # older `cargo build`'s copy may linger): the newest one is the one just built.
  so=$(ls -t "$target/debug/lib_taiyi.so" "$target/debug/deps/lib_taiyi.so" \
             "$target/debug/lib_taiyi.dylib" "$target/debug/deps/lib_taiyi.dylib" 2>/dev/null \
       | head -n 1 || true)
  [ -n "$so" ] || { echo "error: no lib_taiyi.so under $target/debug" >&2; exit 1; }
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$venv/bin/python" -m pip uninstall -y -q taiyi >/dev/null 2>&1 || true
  rm -rf "$site/taiyi" && mkdir -p "$site/taiyi"
  cp taiyi-py/python/taiyi/* "$site/taiyi/"
  cp "$so" "$site/taiyi/_taiyi.abi3.so"
fi
t2=$(date +%s)
TAIYI_BIN="$target/debug/taiyi" "$venv/bin/python" -m pytest taiyi-py/tests -q "$@"
t3=$(date +%s)
echo "test_python.sh: pip $((t1 - t0)) s, cargo build + maturin develop $((t2 - t1)) s, pytest $((t3 - t2)) s"
