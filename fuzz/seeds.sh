#!/usr/bin/env bash
# Writes the seed corpora (fuzz/corpus/<target>/) from the committed fixtures. The seeds are
# committed too; run this again when the fixtures change. cargo fuzz adds what it finds to the
# same folders (commit only what is worth keeping: a crash reproducer, a new format feature).
set -euo pipefail
cd "$(dirname "$0")"
fx=../fixtures
c=corpus
rm -rf "$c" && mkdir -p "$c"/{tokenizer,image,checkpoint,npy}
# Tokenizer: texts of every script and kind the parity fixtures exercise.
python3 - "$fx/tokenizer/batches.json" "$c/tokenizer" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[2])
texts = []
def walk(v):
    if isinstance(v, str):
        texts.append(v)
    elif isinstance(v, list):
        for x in v: walk(x)
    elif isinstance(v, dict):
        for x in v.values(): walk(x)
walk(json.load(open(sys.argv[1], encoding="utf-8")))
seen = set()
for t in texts:
    if t in seen or len(t.encode()) > 2000:
        continue
    seen.add(t)
    (out / f"t{len(seen):03}").write_text(t, encoding="utf-8")
    if len(seen) >= 48:
        break
PY
# Images: one small file of each format and mode.
for f in "$fx"/image/inputs/*.png "$fx"/jpeg/*.jpg "$fx"/jpeg/*.bmp "$fx"/image/inputs/*.jpg "$fx"/image/inputs/*.gif; do
  [ -f "$f" ] || continue
  [ "$(stat -c %s "$f")" -le 40000 ] || continue
  cp "$f" "$c/image/"
done
# Checkpoints: a selector byte (0 safetensors, 1 PyTorch, 2 shard index), then the file.
sel() { { printf "\\x0$1"; cat "$2"; } > "$c/checkpoint/$3"; }
for f in "$fx"/store/*.bin; do sel 1 "$f" "bin_$(basename "$f")"; done
python3 - "$c/checkpoint" <<'PY'
import json, struct, sys, pathlib
out = pathlib.Path(sys.argv[1])
def st(tensors):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data
f32 = lambda *v: struct.pack(f"<{len(v)}f", *v)
(out / "st_small").write_bytes(b"\x00" + st({
    "a.weight": ("F32", [2, 2], f32(1, 2, 3, 4)),
    "a.bias": ("F16", [2], b"\x00\x3c\x00\x40"),
    "n": ("I64", [1], struct.pack("<q", 7)),
}))
(out / "st_empty_tensor").write_bytes(b"\x00" + st({"e": ("F32", [0, 3], b""), "x": ("BF16", [1], b"\x80\x3f")}))
(out / "index").write_bytes(b"\x02" + json.dumps({"metadata": {}, "weight_map": {"a.weight": "model-00001.safetensors"}}).encode())
PY
# .npy: the shapes and dtypes the index reader meets.
python3 - "$c/npy" <<'PY'
import struct, sys, pathlib
out = pathlib.Path(sys.argv[1])
def npy(descr, shape, raw, fortran=False, version=1):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, repr(tuple(shape)))
    head = 10 if version == 1 else 12
    pad = (64 - (head + len(d) + 1) % 64) % 64
    d = d + " " * pad + "\n"
    ln = struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + d.encode() + raw
(out / "f32_2x3").write_bytes(npy("<f4", [2, 3], struct.pack("<6f", *range(6))))
(out / "f16_1x2").write_bytes(npy("<f2", [1, 2], b"\x00\x3c\x00\x40"))
(out / "f32_0x4").write_bytes(npy("<f4", [0, 4], b""))
(out / "v2_f32_1x1").write_bytes(npy("<f4", [1, 1], struct.pack("<f", 1.5), version=2))
PY
du -sh "$c"/*
