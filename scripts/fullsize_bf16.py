"""Full-size, opt-in check of `--precision bf16` on the CPU against f32 (not run by CI).

Uses the random FULL-SIZE towers in the published layouts written by
  scripts/fullsize_text.py    -> fixtures/full/text/
  scripts/fullsize_vision.py  -> fixtures/full/vision/open_clip_model.safetensors
and runs the `taiyi` CLI twice, `--precision f32` and `--precision bf16` (each in its own
process, so each peak RSS is its own):
  - `embed-text` (8 Chinese texts, normalised) and `embed-image` (3 images, normalised):
    the lowest cosine between a row in bf16 and the same row in f32, per tower (target >= 0.9999);
  - the model-card job, `logits --json` with the card's five labels and the images: the max
    abs difference of the logits (target <= 0.05), whether the argmax per image is the same,
    and the job's peak RSS (target: bf16 <= 0.55x f32) and wall time.
With `--torch`, PyTorch's own bf16 model (`.to(torch.bfloat16)`) on the same inputs gives its
cosines to its f32 features, for comparison.

Usage:
  cargo build --release -p taiyi-cli
  /work/.venv/bin/python scripts/fullsize_bf16.py [--taiyi target/release/taiyi] [--torch]
"""
import argparse
import json
import os
import pathlib
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEXT = ROOT / "fixtures/full/text"
VISION = ROOT / "fixtures/full/vision/open_clip_model.safetensors"
LABELS = ["一只猫", "一只狗", "两只猫", "两只老虎", "一只老虎"]
TEXTS = LABELS + ["北京天安门广场的夜景", "一碗热气腾腾的兰州牛肉拉面，上面撒着香菜和辣椒油。",
                  "清晨的阳光洒在古老的石板路上，街道两旁的小店陆续开门。"]
IMAGES = [
    "examples/data/chelsea_cat.png",
    "fixtures/vision/gradient_300x200.png",
    "fixtures/image/inputs/p8_100x77.png",
]


def run_rss(cmd):
    """Run `cmd` as a child whose rusage is its own; stdout, peak RSS bytes, wall seconds."""
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        fd = os.open(os.path.join(tempfile.gettempdir(), f"taiyi-bf16-{os.getpid()}.out"),
                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.chdir(ROOT)
        os.execv(cmd[0], [str(c) for c in cmd])
    _, status, usage = os.wait4(pid, 0)
    wall = time.time() - t0
    path = os.path.join(tempfile.gettempdir(), f"taiyi-bf16-{pid}.out")
    out = open(path).read()
    os.remove(path)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed")
    return out, usage.ru_maxrss * 1024, wall


def min_cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def torch_cosines():
    import open_clip
    import torch
    from PIL import Image
    from transformers import BertModel, BertTokenizer

    torch.set_num_threads(2)
    tok = BertTokenizer.from_pretrained(str(TEXT))
    bert = BertModel.from_pretrained(str(TEXT)).eval()
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-H-14", pretrained=str(VISION))
    visual = model.visual.eval()
    ids = tok(TEXTS, return_tensors="pt", padding=True)
    pixels = torch.stack([preprocess(Image.open(ROOT / p)) for p in IMAGES])
    with torch.inference_mode():
        t32 = bert(**ids).pooler_output
        i32 = visual(pixels)
        bert, visual = bert.to(torch.bfloat16), visual.to(torch.bfloat16)
        t16 = bert(**ids).pooler_output.float()
        i16 = visual(pixels.to(torch.bfloat16)).float()
    return min_cosine(t32.numpy(), t16.numpy()), min_cosine(i32.numpy(), i16.numpy())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taiyi", default=str(ROOT / "target/release/taiyi"))
    ap.add_argument("--torch", action="store_true")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="taiyi-bf16-"))
    feats, jobs = {}, {}
    for precision in ["f32", "bf16"]:
        base = [args.taiyi, "--precision", precision]
        txt, img = tmp / f"txt-{precision}.npy", tmp / f"img-{precision}.npy"
        run_rss(base + ["embed-text", "--text-model", TEXT, "--out", txt] + TEXTS)
        run_rss(base + ["embed-image", "--vision-model", VISION, "--out", img] + IMAGES)
        feats[precision] = (np.load(txt), np.load(img))
        cmd = base + ["logits", "--text-model", TEXT, "--vision-model", VISION, "--json"]
        for p in IMAGES:
            cmd += ["--image", p]
        for label in LABELS:
            cmd += ["--text", label]
        out, rss, wall = run_rss(cmd)
        jobs[precision] = (np.array(json.loads(out)["logits_per_image"]), rss, wall)
    l32, rss32, wall32 = jobs["f32"]
    l16, rss16, wall16 = jobs["bf16"]
    report = {
        "text_min_cosine": min_cosine(feats["f32"][0], feats["bf16"][0]),
        "image_min_cosine": min_cosine(feats["f32"][1], feats["bf16"][1]),
        "logits_max_abs_diff": float(np.abs(l32 - l16).max()),
        "argmax_match": bool((l32.argmax(1) == l16.argmax(1)).all()),
        "model_card_job_peak_rss_gb": {"f32": round(rss32 / 1e9, 3), "bf16": round(rss16 / 1e9, 3),
                                       "bf16_over_f32": round(rss16 / rss32, 3)},
        "model_card_job_wall_s": {"f32": round(wall32, 1), "bf16": round(wall16, 1)},
    }
    if args.torch:
        t, i = torch_cosines()
        report["pytorch_bf16_text_min_cosine"] = t
        report["pytorch_bf16_image_min_cosine"] = i
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
