"""PyTorch baseline for benches/vision_tower.rs: open_clip ViT-H-14 image tower (random init),
encode_image at batch 1 and 4, CPU f32, 2 threads.

Usage: /work/.venv/bin/python scripts/bench_vision_torch.py [--reps N] [--batches 1 4]
Prints the median seconds per forward and per image.
"""
import argparse
import statistics
import time

import torch

import open_clip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-H-14").visual.eval()
    for batch in args.batches:
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            model(x)  # warm-up
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
        med = statistics.median(times)
        print(f"torch {torch.__version__} threads={args.threads} batch={batch}: "
              f"median {med:.3f} s/forward, {med / batch:.3f} s/image (runs: "
              + ", ".join(f"{t:.2f}" for t in times) + ")")


if __name__ == "__main__":
    main()
