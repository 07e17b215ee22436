"""CPU speed of both towers, taiyi against PyTorch, back to back in one run (issues 9 and 24).

For each case of the issue's table (ViT-H-14 at batch 1 and 4; the Taiyi BERT at 1x16, 32x16 and
8x77 tokens, all ones mask), runs `taiyi bench --json` (random full-size weights, the CLI's
default CPU backend) and then the same forward in PyTorch (random init, 2 threads,
`torch.inference_mode`; BERT with eager and sdpa attention), alternating per case so that both
sides see the same machine state. Prints a markdown table: median seconds, the ratio
taiyi / PyTorch (time; < 1 is faster) and the fraction of this machine's sgemm rate each side
reaches (torch 4096^3 matmul, measured at the start).

bf16 rows (`--precision bf16` or `all`): `taiyi --precision bf16 bench` (linear weights in
bf16, f32 accumulation, the CPU's bf16 kernel, which it names) against PyTorch
`model.to(torch.bfloat16)` on bf16 inputs, with each side's cosine to its own f32 output on the
same inputs (lowest over the output rows): taiyi's from `bench`'s `cosine_to_f32` (its random
weights, f32 forward before packing), PyTorch's from its f32 model.

Chinese-CLIP rows (`--family chinese-clip` or `all`, issue 28): the image tower of
OFA-Sys/chinese-clip-vit-base-patch16 (ViT-B/16, QuickGELU, 512-d projection) at batch 1 and 8,
`taiyi bench --vision-arch chinese-clip-vit-base-patch16` against transformers'
`ChineseCLIPModel.get_image_features` (random init: `ChineseCLIPVisionModel` + `visual_projection`),
same rules.

    cargo build --release -p taiyi-cli
    /work/.venv/bin/python scripts/bench_cpu.py [--taiyi target/release/taiyi] [--iters 5] \
        [--precision f32|bf16|all] [--family taiyi|chinese-clip|all]
"""
import copy
import argparse
import json
import platform
import statistics
import subprocess
import time

import torch

VIT_GFLOP = 334.6  # ViT-H-14 forward, per 224x224 image (open_clip's profile)
B16_GFLOP = 35.16  # ViT-B-16 forward, per 224x224 image (open_clip's profile: 17.58 GMACs)
WIDTH, LAYERS, FF, VOCAB = 1024, 24, 4096, 21128


def bert_gflop(batch, seq):
    """Multiply-adds x 2 of the Taiyi BERT forward (linear layers, attention, pooler)."""
    per_token = LAYERS * 2 * (4 * WIDTH * WIDTH + 2 * WIDTH * FF)
    attention = LAYERS * 2 * 2 * seq * WIDTH  # QK^T and AV, per token
    pooler = 2 * WIDTH * WIDTH / seq
    return batch * seq * (per_token + attention + pooler) / 1e9


def cpu_model():
    """The CPU as lscpu names it, its family/model and its bf16 flags (the kernels depend on them)."""
    info = {}
    for line in open("/proc/cpuinfo"):
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags] or ["no bf16 flags"]
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model "
            f"{info.get('model', '?')}; {' '.join(bf16)})")


def median_time(fn, iters):
    fn()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sgemm_gflops():
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    return 2 * 4096**3 / median_time(lambda: a @ b, 5) / 1e9


def taiyi(bin_, tower, batch, seq, iters, precision="f32", extra=()):
    args = [bin_, "--precision", precision, "bench", "--tower", tower, "--batch", str(batch),
            "--iters", str(iters), "--json", *extra]
    if tower == "text":
        args += ["--seq", str(seq)]
    out = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    if precision == "bf16":
        return out[tower]["median_s"], out["cpu_kernel"], out[tower]["cosine_to_f32"]
    return out[tower]["median_s"], out["backend"]


def min_cosine(a, b):
    """Lowest cosine between matching rows (f64)."""
    return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1).min())


def bf16_row(name, args, tower, batch, seq, model, inputs, flops, peak, extra=()):
    """One bf16 row: taiyi --precision bf16 against PyTorch model.to(bfloat16)."""
    t, kernel, t_cos = taiyi(args.taiyi, tower, batch, seq, args.iters, "bf16", extra)
    half = copy.deepcopy(model).to(torch.bfloat16)
    cast = lambda x: x.to(torch.bfloat16) if x.is_floating_point() else x
    with torch.inference_mode():
        want = model(*inputs)
        got = half(*[cast(x) for x in inputs])
        p = median_time(lambda: half(*[cast(x) for x in inputs]), args.iters)
    if hasattr(want, "pooler_output"):  # BertModel: the pooler output
        want, got = want.pooler_output, got.pooler_output
    if hasattr(want, "image_embeds"):  # ChineseCLIP image tower: the projected feature
        want, got = want.image_embeds, got.image_embeds
    p_cos = min_cosine(want.float(), got.float())
    print(f"| {name} ({kernel}) | {t:.3f} s | {p:.3f} s | {t / p:.3f}× | {t_cos:.6f} | {p_cos:.6f} "
          f"| {flops / t:.0f} | {flops / p:.0f} |", flush=True)
    del half


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taiyi", default="target/release/taiyi")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["f32", "bf16", "all"], default="all")
    ap.add_argument("--family", choices=["taiyi", "chinese-clip", "all"], default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = sgemm_gflops()
    print(f"{platform.node()}, {cpu_model()}, torch {torch.__version__}, "
          f"{args.threads} threads; torch sgemm 4096^3: {peak:.0f} GFLOP/s; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.family in ("chinese-clip", "all"):
        chinese_clip_rows(args, peak)
        if args.family == "chinese-clip":
            return
    import open_clip
    from transformers import BertConfig, BertModel

    vit = open_clip.create_model("ViT-H-14").visual.eval()
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=LAYERS,
                     num_attention_heads=16, intermediate_size=FF, max_position_embeddings=512,
                     type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0, hidden_act="gelu")
    if args.precision in ("bf16", "all"):
        print()
        print("| case (taiyi's bf16 kernel) | taiyi bf16 | PyTorch bf16 | taiyi / PyTorch (time) "
              "| taiyi cosine to f32 | PyTorch cosine to f32 | taiyi GFLOP/s | PyTorch GFLOP/s |")
        print("|---|---|---|---|---|---|---|---|")
        for batch in [1, 4]:
            x = torch.randn(batch, 3, 224, 224)
            bf16_row(f"ViT-H-14 batch {batch}", args, "image", batch, None, vit, (x,),
                     VIT_GFLOP * batch, peak)
        cfg._attn_implementation = "sdpa"
        bert = BertModel(cfg).eval()
        for batch, seq in [(1, 16), (32, 16), (8, 77)]:
            ids = torch.randint(0, VOCAB, (batch, seq))
            mask = torch.ones(batch, seq, dtype=torch.long)
            bf16_row(f"BERT {batch}×{seq}", args, "text", batch, seq, bert, (ids, mask),
                     bert_gflop(batch, seq), peak)
        del bert
        if args.precision == "bf16":
            return
    print()
    print("| case | taiyi | PyTorch | taiyi / PyTorch (time) | taiyi % sgemm | PyTorch % sgemm |")
    print("|---|---|---|---|---|---|")
    for batch in [1, 4]:
        t, backend = taiyi(args.taiyi, "image", batch, None, args.iters)
        x = torch.randn(batch, 3, 224, 224)
        with torch.inference_mode():
            p = median_time(lambda: vit(x), args.iters)
        g = VIT_GFLOP * batch
        print(f"| ViT-H-14 batch {batch} ({backend}) | {t:.3f} s | {p:.3f} s | {t / p:.3f}× "
              f"| {100 * g / t / peak:.0f}% | {100 * g / p / peak:.0f}% |", flush=True)
    del vit

    models = {}
    for impl in ["eager", "sdpa"]:
        cfg._attn_implementation = impl
        models[impl] = BertModel(cfg).eval()
    for batch, seq in [(1, 16), (32, 16), (8, 77)]:
        t, backend = taiyi(args.taiyi, "text", batch, seq, args.iters)
        ids = torch.randint(0, VOCAB, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        ps = {}
        with torch.inference_mode():
            for impl, m in models.items():
                ps[impl] = median_time(lambda: m(ids, attention_mask=mask)[1], args.iters)
        g = bert_gflop(batch, seq)
        best = min(ps.values())
        print(f"| BERT {batch}×{seq} ({backend}) | {t:.3f} s | {ps['eager']:.3f} s eager, "
              f"{ps['sdpa']:.3f} s sdpa | {t / ps['eager']:.3f}× eager, {t / ps['sdpa']:.3f}× sdpa "
              f"| {100 * g / t / peak:.0f}% | {100 * g / best / peak:.0f}% |", flush=True)


class B16Image(torch.nn.Module):
    """transformers' ChineseCLIPModel.get_image_features: vision model, pooled, projected."""

    def __init__(self):
        super().__init__()
        from transformers import ChineseCLIPVisionConfig, ChineseCLIPVisionModel

        cfg = ChineseCLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                      num_attention_heads=12, patch_size=16, image_size=224,
                                      projection_dim=512)
        self.vision = ChineseCLIPVisionModel(cfg).eval()
        self.proj = torch.nn.Linear(768, 512, bias=False)

    def forward(self, x):
        out = self.vision(pixel_values=x).pooler_output
        return type("Out", (), {"image_embeds": self.proj(out)})()


def chinese_clip_rows(args, peak):
    """The Chinese-CLIP B/16 image tower, f32 and bf16 as --precision asks."""
    model = B16Image().eval()
    extra = ("--vision-arch", "chinese-clip-vit-base-patch16")
    if args.precision in ("bf16", "all"):
        print()
        print("| Chinese-CLIP case (taiyi's bf16 kernel) | taiyi bf16 | PyTorch bf16 | taiyi / PyTorch "
              "(time) | taiyi cosine to f32 | PyTorch cosine to f32 | taiyi GFLOP/s | PyTorch GFLOP/s |")
        print("|---|---|---|---|---|---|---|---|")
        for batch in [1, 8]:
            x = torch.randn(batch, 3, 224, 224)
            bf16_row(f"Chinese-CLIP ViT-B/16 batch {batch}", args, "image", batch, None, model, (x,),
                     B16_GFLOP * batch, peak, extra)
    if args.precision in ("f32", "all"):
        print()
        print("| Chinese-CLIP case | taiyi | PyTorch | taiyi / PyTorch (time) | taiyi % sgemm "
              "| PyTorch % sgemm |")
        print("|---|---|---|---|---|---|")
        for batch in [1, 8]:
            t, backend = taiyi(args.taiyi, "image", batch, None, args.iters, extra=extra)
            x = torch.randn(batch, 3, 224, 224)
            with torch.inference_mode():
                p = median_time(lambda: model(x).image_embeds, args.iters)
            g = B16_GFLOP * batch
            print(f"| Chinese-CLIP ViT-B/16 batch {batch} ({backend}) | {t:.3f} s | {p:.3f} s "
                  f"| {t / p:.3f}× | {100 * g / t / peak:.0f}% | {100 * g / p / peak:.0f}% |",
                  flush=True)


if __name__ == "__main__":
    main()
