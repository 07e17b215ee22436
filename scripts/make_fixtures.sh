#!/usr/bin/env bash
# Regenerate every committed fixture from the Python reference (torch, open_clip,
# transformers, Pillow). CI never runs this; tests read the committed outputs.
#
#   scripts/make_fixtures.sh            # all parts
#   scripts/make_fixtures.sh tokenizer  # one part: tokenizer | image | jpeg | text | vision | clip | store | torch_f16 | nn | chinese_clip | chinese_clip_image
#
# The venv lives in $TAIYI_VENV (default: .venv at the repository root) and is created
# from scripts/requirements-fixtures.txt on first use.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${TAIYI_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --upgrade pip
  "$venv/bin/pip" install -r "$repo/scripts/requirements-fixtures.txt"
fi
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tokenizer image jpeg text vision clip store torch_f16 nn chinese_clip chinese_clip_image)
cd "$repo"
for p in "${parts[@]}"; do
  echo "== fixtures: $p"
  PYTHONHASHSEED=0 "$venv/bin/python" "scripts/fixtures/$p.py"
done
