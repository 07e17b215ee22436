"""PyTorch reference timings for the text tower (compare with `cargo bench -p taiyi-text`).

    /work/.venv/bin/python scripts/bench_text_torch.py [--threads 2] [--runs 5]

Full-size random-init BertModel with the Taiyi text config (f32, CPU, no attention mask), the
same shapes as taiyi-text/benches/text_tower.rs: batch x tokens = 1x16, 32x16, 8x77, for the
eager and sdpa attention implementations. Prints the median seconds per forward and tokens/s.
"""

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertModel

SHAPES = [(1, 16), (32, 16), (8, 77)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=21128, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, max_position_embeddings=512, type_vocab_size=2,
                     layer_norm_eps=1e-12, pad_token_id=0, hidden_act="gelu")
    for impl in ["eager", "sdpa"]:
        cfg._attn_implementation = impl
        model = BertModel(cfg).eval()
        for b, s in SHAPES:
            ids = torch.randint(0, 21128, (b, s))
            with torch.no_grad():
                model(ids)  # warm-up
                times = []
                for _ in range(args.runs):
                    t = time.perf_counter()
                    model(ids)[1]
                    times.append(time.perf_counter() - t)
            med = statistics.median(times)
            print(f"torch {impl:5s} {b}x{s}: median {med:.3f} s  ({b * s / med:.1f} tokens/s)  "
                  f"threads={args.threads} runs={args.runs}")


if __name__ == "__main__":
    main()
