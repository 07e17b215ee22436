"""Times open_clip's ViT-H-14 preprocess (PIL open + Resize/CenterCrop/convert/ToTensor/Normalize)
on the files `cargo bench -p taiyi-preprocess --bench preprocess` uses, on one thread.

Run: /work/.venv/bin/python scripts/bench_preprocess.py
"""

import os
import time

import open_clip
import torch
from PIL import Image

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
INPUTS = os.path.join(ROOT, "fixtures", "image", "inputs")
_, _, preprocess = open_clip.create_model_and_transforms("ViT-H-14", pretrained=None)


def run(path):
    with Image.open(path) as im:
        return preprocess(im)


for name in ["jpeg_baseline_640x480.jpg", "rgb_640x480.png"]:
    path = os.path.join(INPUTS, name)
    for _ in range(20):
        run(path)
    times = []
    for _ in range(7):
        n = 100
        t0 = time.perf_counter()
        for _ in range(n):
            run(path)
        times.append((time.perf_counter() - t0) / n)
    times.sort()
    med = times[len(times) // 2]
    print(f"{name}: median {med * 1e3:.3f} ms/image, {1 / med:.1f} images/s (1 thread, PIL open + preprocess)")
