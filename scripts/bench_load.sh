#!/usr/bin/env bash
# Memory and load time of the model-card job (issue 9, item 2), on the random full-size towers in
# the published layouts that scripts/fullsize_text.py and scripts/fullsize_vision.py write:
#   - peak RSS of `taiyi zero-shot` (load both towers, 1 image, the model card's 5 labels),
#     against the bytes of the tensors the two towers use;
#   - cold load (page cache dropped; needs root) of each tower, from `taiyi bench --json`'s
#     load_s, against the time this disk takes to read those bytes (`dd` of the same files,
#     page cache dropped, scaled to the used bytes).
# For each image-tower file: open_clip_model.safetensors and open_clip_pytorch_model.bin.
#
# A second argument runs every command at that precision (`bf16`: the CPU's bf16 path, whose
# linear weights are read as bf16 and packed at load).
#
#   cargo build --release -p taiyi-cli
#   scripts/bench_load.sh [path/to/taiyi] [f32|bf16]     (prints a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
taiyi="${1:-target/release/taiyi}"
precision="${2:-f32}"
py="${TAIYI_VENV:-/work/.venv}/bin/python"
text=fixtures/full/text
labels=(一只猫 一只狗 两只猫 两只老虎 一只老虎)
image=examples/data/chelsea_cat.png
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
cold=1
[ -w /proc/sys/vm/drop_caches ] || { cold=0; echo "(not root: no cold-cache runs)" >&2; }

# Bytes of the tensors each tower uses: the whole BERT state dict; visual.* + logit_scale.
used() {
  "$py" - "$1" "$2" <<'EOF'
import sys, torch
from safetensors import safe_open
text, vision = sys.argv[1], sys.argv[2]
sd = torch.load(f"{text}/pytorch_model.bin", map_location="cpu", mmap=True, weights_only=True)
t = sum(v.numel() * v.element_size() for v in sd.values())
if vision.endswith(".safetensors"):
    with safe_open(vision, "pt") as f:
        v = 0
        for k in f.keys():
            if k.startswith("visual.") or k == "logit_scale":
                s = f.get_slice(k)
                n = 1
                for d in s.get_shape():
                    n *= d
                v += n * {"F32": 4, "F16": 2, "BF16": 2}[s.get_dtype()]
else:
    sd = torch.load(vision, map_location="cpu", mmap=True, weights_only=True)
    v = sum(x.numel() * x.element_size() for k, x in sd.items()
            if k.startswith("visual.") or k == "logit_scale")
print(t, v)
EOF
}

# Seconds for dd to read a file from disk (page cache dropped).
read_s() {
  drop
  local t0 t1
  t0=$(date +%s.%N)
  dd if="$1" of=/dev/null bs=16M status=none
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

echo "taiyi: $taiyi --precision $precision ($(date -u +%F), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB)"
echo
echo "| image-tower file | used weights | peak RSS (model-card job) | RSS / used | cold load text + image | disk read of the used bytes | load / read |"
echo "|---|---|---|---|---|---|---|"
for vision in fixtures/full/vision/open_clip_model.safetensors fixtures/full/vision/open_clip_pytorch_model.bin; do
  read -r tb vb < <(used "$text" "$vision")
  usedb=$((tb + vb))
  log=$(mktemp)
  /usr/bin/time -v "$taiyi" --precision "$precision" zero-shot --text-model "$text" --vision-model "$vision" \
    --image "$image" "${labels[@]}" >/dev/null 2>"$log"
  rss_kb=$(awk -F: '/Maximum resident set size/{gsub(/ /,"",$2); print $2}' "$log")
  rm -f "$log"
  rss=$((rss_kb * 1024))
  if [ "$cold" = 1 ]; then
    drop
    json=$("$taiyi" --precision "$precision" bench --tower both --text-model "$text" --vision-model "$vision" \
      --batch 1 --seq 16 --iters 1 --json)
    load=$(echo "$json" | "$py" -c 'import json,sys; j=json.load(sys.stdin); print(j["text"]["load_s"] + j["image"]["load_s"])')
    # Disk throughput on these very files, scaled to the bytes used.
    ts=$(read_s "$text/pytorch_model.bin"); vs=$(read_s "$vision")
    tsize=$(stat -c %s "$text/pytorch_model.bin"); vsize=$(stat -c %s "$vision")
    rd=$(echo "($tsize + $vsize) / ($ts + $vs) " | bc -l)
    readt=$(echo "$usedb / $rd" | bc -l)
    cold_cells=$(printf "%.1f s | %.1f s (%.0f MB/s) | %.2f×" "$load" "$readt" "$(echo "$rd / 1000000" | bc -l)" "$(echo "$load / $readt" | bc -l)")
  else
    cold_cells="- | - | -"
  fi
  printf "| %s | %.2f GB | %.2f GB | %.3f× | %s |\n" "$(basename "$vision")" \
    "$(echo "$usedb / 1000000000" | bc -l)" "$(echo "$rss / 1000000000" | bc -l)" \
    "$(echo "$rss / $usedb" | bc -l)" "$cold_cells"
done
