"""Full-size, opt-in parity check of the Chinese-CLIP family through the `taiyi` CLI (not run by CI).

Writes a random-weight transformers `ChineseCLIPModel` of a published OFA-Sys size in the
published layout (`save_pretrained(safe_serialization=False)`: config.json, pytorch_model.bin;
vocab.txt + tokenizer_config.json of the 21,128-token vocabulary; the published
preprocessor_config.json) to fixtures/full/chinese_clip/<size>/ (once; delete it to
regenerate), then compares, on a few images and Chinese texts:

  - pixels:   `taiyi preprocess --model DIR`   vs ChineseCLIPImageProcessor   (must be exact)
  - features: `taiyi embed-text / embed-image --model DIR` vs
              `text_projection(text_model(ids, mask)[0][:, 0])` / `get_image_features`,
              both L2-normalised                                         (bound: 1e-4)
  - logits:   `taiyi logits --model DIR --json` vs `ChineseCLIPModel(...).logits_per_image`
              (scaled by exp(logit_scale) = 14.3 at init), and the softmax probabilities.

Sizes (the published configs): b16 = chinese-clip-vit-base-patch16 (RoBERTa-wwm-base + ViT-B/16,
projection 512), l14 = -large-patch14 (base text + ViT-L/14, 768), l14-336 = -large-patch14-336px,
h14 = -huge-patch14 (RoBERTa-wwm-large + ViT-H/14, 1024).

Usage:
  cargo build --release -p taiyi-cli
  /work/.venv/bin/python scripts/fullsize_chinese_clip.py b16 [h14 ...] [--taiyi path/to/taiyi]
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image
from transformers import (
    BertTokenizer,
    ChineseCLIPConfig,
    ChineseCLIPImageProcessor,
    ChineseCLIPModel,
)

torch.set_num_threads(2)
ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB = ROOT.parent / "shared/reference/vocab.txt"
TEXTS = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎", "海边的日落，远处有几艘帆船"]
IMAGES = [
    "examples/data/chelsea_cat.png",
    "fixtures/vision/gradient_300x200.png",
    "fixtures/image/inputs/p8_100x77.png",
    "fixtures/image/inputs/jpeg_baseline_640x480.jpg",
]
BASE_TEXT = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE_TEXT = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
SIZES = {
    "b16": (BASE_TEXT, dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, patch_size=16, image_size=224), 512),
    "l14": (BASE_TEXT, dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, patch_size=14, image_size=224), 768),
    "l14-336": (BASE_TEXT, dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                num_attention_heads=16, patch_size=14, image_size=336), 768),
    "h14": (LARGE_TEXT, dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                             num_attention_heads=16, patch_size=14, image_size=224), 1024),
}


sys.path.insert(0, str(ROOT / "scripts" / "fixtures"))
from chinese_clip_image import PUBLISHED_224  # noqa: E402  the published preprocessor_config.json


def preprocessor(side):
    """The published preprocessor_config.json at `side` pixels (336 for -336px)."""
    return {**PUBLISHED_224, "size": {"height": side, "width": side},
            "crop_size": {"height": side, "width": side}}


def write_model(size, out):
    text, vision, proj = SIZES[size]
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=21128, max_position_embeddings=512, type_vocab_size=2, **text),
        vision_config=dict(projection_dim=proj, **vision),
        projection_dim=proj,
    )
    torch.manual_seed(7)
    model = ChineseCLIPModel(config).eval()
    with torch.no_grad():  # non-trivial norms and biases
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(out, safe_serialization=False)
    BertTokenizer(str(VOCAB), do_lower_case=True, model_max_length=512).save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor(vision["image_size"]), indent=2))


def npy(path):
    return np.load(path)


def run(cmd):
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return out.stdout, time.time() - t0


def check(size, taiyi):
    out = ROOT / "fixtures/full/chinese_clip" / size
    if not (out / "pytorch_model.bin").exists():
        out.mkdir(parents=True, exist_ok=True)
        write_model(size, out)
    tok = BertTokenizer.from_pretrained(out)
    proc = ChineseCLIPImageProcessor.from_pretrained(out)
    model = ChineseCLIPModel.from_pretrained(out, attn_implementation="eager").eval()
    images = [Image.open(ROOT / p) for p in IMAGES]
    with torch.no_grad():
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        pixels = proc(images=images, return_tensors="pt")["pixel_values"]
        h = model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
        txt = model.text_projection(h[:, 0, :])
        img = model.get_image_features(pixel_values=pixels)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        img = img / img.norm(dim=-1, keepdim=True)
        fwd = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=pixels)
        logits = fwd.logits_per_image
        probs = logits.softmax(dim=-1)

    report = {"size": size}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        image_args = [str(ROOT / p) for p in IMAGES]
        run([taiyi, "preprocess", "--model", str(out), "--out", str(tmp / "px.npy"), *image_args])
        px = npy(tmp / "px.npy")
        report["pixels_exact"] = bool(np.array_equal(px, pixels.numpy()))
        report["pixels_max_abs_diff"] = float(np.abs(px - pixels.numpy()).max())
        _, t_text = run([taiyi, "embed-text", "--model", str(out), "--out", str(tmp / "t.npy"), *TEXTS])
        report["text_max_abs_diff"] = float(np.abs(npy(tmp / "t.npy") - txt.numpy()).max())
        _, t_image = run([taiyi, "embed-image", "--model", str(out), "--out", str(tmp / "i.npy"), *image_args])
        report["image_max_abs_diff"] = float(np.abs(npy(tmp / "i.npy") - img.numpy()).max())
        cmd = [taiyi, "logits", "--model", str(out), "--json"]
        for p in image_args:
            cmd += ["--image", p]
        for t in TEXTS:
            cmd += ["--text", t]
        stdout, t_logits = run(cmd)
        got = json.loads(stdout)
        gl, gp = torch.tensor(got["logits_per_image"]), torch.tensor(got["probs"])
        report["logits_max_abs_diff"] = float((gl - logits).abs().max())
        report["probs_max_abs_diff"] = float((gp - probs).abs().max())
        report["argmax_match"] = bool((gl.argmax(1) == logits.argmax(1)).all())
        report["cli_wall_s"] = {"embed_text": round(t_text, 1), "embed_image": round(t_image, 1),
                                "logits": round(t_logits, 1)}
    report["pass"] = (
        report["pixels_exact"]
        and report["text_max_abs_diff"] <= 1e-4
        and report["image_max_abs_diff"] <= 1e-4
        and report["argmax_match"]
    )
    return report


def main():
    args = sys.argv[1:]
    taiyi = str(ROOT / "target/release/taiyi")
    if "--taiyi" in args:
        i = args.index("--taiyi")
        taiyi = args[i + 1]
        del args[i : i + 2]
    sizes = args or ["b16"]
    reports = [check(s, taiyi) for s in sizes]
    print(json.dumps(reports, indent=1))
    sys.exit(0 if all(r["pass"] for r in reports) else 1)


if __name__ == "__main__":
    main()
