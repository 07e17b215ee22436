"""Full-size, opt-in end-to-end check through the `taiyi` CLI (not run by CI).

Uses the random FULL-SIZE towers written in the published layouts by
  scripts/fullsize_text.py    -> fixtures/full/text/   (config.json, pytorch_model.bin, vocab.txt)
  scripts/fullsize_vision.py  -> fixtures/full/vision/ (open_clip_model.safetensors, open_clip_pytorch_model.bin)
runs the model card's Python code (BertTokenizer padding=True -> BertModel pooler, open_clip
ViT-H-14 preprocess -> encode_image, logit_scale.exp() * img @ txt.T) on a few images and the
model card's five labels, then runs

  taiyi logits --text-model fixtures/full/text --vision-model <file> --json --image ... --text ...

for both checkpoint formats and reports the max abs diff of the logits and of the softmax
probabilities, and whether the argmax per image matches.

Usage:
  cargo build --release -p taiyi-cli
  /work/.venv/bin/python scripts/fullsize_clip.py [path/to/taiyi]
"""
import json
import pathlib
import subprocess
import sys
import time

import open_clip
import torch
from PIL import Image
from transformers import BertModel, BertTokenizer

torch.set_num_threads(2)
ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = ROOT / "fixtures/full/text"
VISION = ROOT / "fixtures/full/vision"
TAIYI = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target/release/taiyi")
LABELS = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"]
IMAGES = [
    "examples/data/chelsea_cat.png",
    "fixtures/vision/gradient_300x200.png",
    "fixtures/image/inputs/p8_100x77.png",
]

tokenizer = BertTokenizer.from_pretrained(str(TEXT))
text_encoder = BertModel.from_pretrained(str(TEXT)).eval()
model, _, preprocess = open_clip.create_model_and_transforms(
    "ViT-H-14", pretrained=str(VISION / "open_clip_model.safetensors")
)
model.eval()
with torch.no_grad():
    text = tokenizer(LABELS, return_tensors="pt", padding=True)["input_ids"]
    image = torch.stack([preprocess(Image.open(ROOT / p)) for p in IMAGES])
    image_features = model.encode_image(image)
    text_features = text_encoder(text)[1]
    image_features = image_features / image_features.norm(dim=1, keepdim=True)
    text_features = text_features / text_features.norm(dim=1, keepdim=True)
    logits = model.logit_scale.exp() * image_features @ text_features.t()
    probs = logits.softmax(dim=-1)

report = {}
for name in ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
    cmd = [TAIYI, "logits", "--text-model", str(TEXT), "--vision-model", str(VISION / name), "--json"]
    for p in IMAGES:
        cmd += ["--image", str(ROOT / p)]
    for l in LABELS:
        cmd += ["--text", l]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.time() - t0
    got = json.loads(out.stdout)
    gl = torch.tensor(got["logits_per_image"])
    gp = torch.tensor(got["probs"])
    report[name] = {
        "logits_max_abs_diff": float((gl - logits).abs().max()),
        "probs_max_abs_diff": float((gp - probs).abs().max()),
        "argmax_match": bool((gl.argmax(1) == logits.argmax(1)).all()),
        "cli_wall_s": round(wall, 1),
    }
print(json.dumps({"python_probs": [[round(x, 4) for x in r] for r in probs.tolist()], "report": report}, indent=1))
