#!/usr/bin/env bash
# ANN index benchmark (issue 27) on a collection from scripts/gen_vectors.py --manifest:
# build time and peak RSS, recall@10 and per-query latency of `taiyi search --query-vectors`
# at several search expansions, one-query CLI calls (ANN and --exact), file sizes.
#
#   python3 scripts/gen_vectors.py /work/gv1m --n 1000000 --manifest
#   scripts/bench_ann.sh /work/gv1m [QUANTIZATION] [CONNECTIVITY]
#
# SKIP_BUILD=1 reuses DIR/base.npy.ann (search rows only).
# Prints a Markdown table; needs the release binary (cargo build --release -p taiyi-cli).
set -euo pipefail
dir=$1
quant=${2:-i8}
m=${3:-32}
root=$(cd "$(dirname "$0")/.." && pwd)
taiyi=${TAIYI:-$root/target/release/taiyi}
py=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $dir; quantization $quant, connectivity $m"
if [ -z "${SKIP_BUILD:-}" ]; then
  /usr/bin/time -f "%e %M" -o "$tmp/build.time" "$taiyi" index build "$dir/base.npy" \
    --quantization "$quant" --connectivity "$m" > "$tmp/build.json"
  read -r secs kb < "$tmp/build.time"
  rows=$("$py" -c "import json;print(json.load(open('$tmp/build.json'))['header']['rows'])")
  echo "build: ${secs} s wall ($("$py" -c "print(round($secs*100000/$rows,1))") s per 100k rows), peak RSS $((kb / 1024)) MiB, .ann $(( $(stat -c %s "$dir/base.npy.ann") / 1048576 )) MiB, .npy $(( $(stat -c %s "$dir/base.npy") / 1048576 )) MiB"
fi
echo
echo "| expansion_search | recall@10 | p50 ms | p99 ms | wall s (1000 queries) | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for ef in ${EFS:-128 224 256}; do
  /usr/bin/time -f "%e %M" -o "$tmp/t" "$taiyi" search --index "$dir/base.npy" \
    --query-vectors "$dir/queries.npy" --top-k 10 --expansion-search "$ef" > "$tmp/hits.jsonl" 2> "$tmp/err"
  read -r wall kb < "$tmp/t"
  rec=$("$py" "$root/scripts/ann_recall.py" "$dir/truth.npy" "$tmp/hits.jsonl" | "$py" -c "import json,sys;print(json.load(sys.stdin)['recall'])")
  lat=$(grep -o 'p50 [0-9.]* ms, p99 [0-9.]* ms' "$tmp/err" | sed 's/p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms/\1 | \2/')
  echo "| $ef | $rec | $lat | $wall | $((kb / 1024)) |"
done
"$py" -c "import numpy as np; np.save('$tmp/q1.npy', np.load('$dir/queries.npy')[:1])"
echo
for mode in ann exact; do
  extra=(); [ "$mode" = exact ] && extra=(--exact)
  for i in 1 2 3; do
    /usr/bin/time -f "%e %M" -o "$tmp/t" "$taiyi" search --index "$dir/base.npy" \
      --query-vectors "$tmp/q1.npy" --top-k 10 "${extra[@]}" > /dev/null 2>&1
    read -r wall kb < "$tmp/t"
    echo "one-query CLI call ($mode, run $i): ${wall} s, peak RSS $((kb / 1024)) MiB"
  done
done
