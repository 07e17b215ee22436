"""Full-size, opt-in check of the image tower (not run by CI; the output is git-ignored).

Creates a random-init FULL open_clip ViT-H-14 CLIP (image + English text tower, exactly
`open_clip.create_model('ViT-H-14')`), saves it as published:
  fixtures/full/vision/open_clip_pytorch_model.bin   torch.save(state_dict)   (~3.94 GB)
  fixtures/full/vision/open_clip_model.safetensors   safetensors               (~3.94 GB)
and the expected outputs for 2 preprocessed inputs (the fixture PNGs through open_clip's
ViT-H-14 transform): fixtures/full/vision/expected.safetensors with
  pixels [2,3,224,224], features [2,1024] (encode_image), normalized [2,1024], logit_scale [1].

Then run the Rust side (release):
  cargo test --release -p taiyi-vision --test fullsize -- --ignored --nocapture

Usage: /work/.venv/bin/python scripts/fullsize_vision.py   (about 4 GB RAM for torch, 8 GB disk)
"""
import pathlib
import time

import torch
from PIL import Image
from safetensors.torch import save_file

import open_clip

torch.set_num_threads(2)
ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "fixtures" / "full" / "vision"
OUT.mkdir(parents=True, exist_ok=True)


def main():
    torch.manual_seed(0)
    t = time.time()
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-H-14")
    model.eval()
    print(f"create_model: {time.time() - t:.1f} s")
    sd = model.state_dict()
    visual = [k for k in sd if k.startswith("visual.")]
    print(len(sd), "keys,", sum(v.numel() for v in sd.values()), "params;",
          len(visual), "visual keys,", sum(sd[k].numel() for k in visual), "visual params")

    imgs = ["gradient_300x200.png", "waves_grey_100x150.png"]
    pixels = torch.stack([preprocess(Image.open(ROOT / "fixtures" / "vision" / f)) for f in imgs])
    t = time.time()
    with torch.no_grad():
        features = model.encode_image(pixels).float()
    print(f"encode_image (batch 2, {torch.get_num_threads()} threads): {time.time() - t:.2f} s")
    normalized = torch.nn.functional.normalize(features, dim=-1)
    save_file(
        {
            "pixels": pixels.contiguous(),
            "features": features.contiguous(),
            "normalized": normalized.contiguous(),
            "logit_scale": model.logit_scale.detach().reshape(1).float().clone(),
        },
        str(OUT / "expected.safetensors"),
    )

    t = time.time()
    torch.save(sd, OUT / "open_clip_pytorch_model.bin")
    print(f"torch.save: {time.time() - t:.1f} s")
    t = time.time()
    save_file({k: v.contiguous() for k, v in sd.items()}, str(OUT / "open_clip_model.safetensors"))
    print(f"safetensors: {time.time() - t:.1f} s")
    for f in sorted(OUT.iterdir()):
        print(f"{f.stat().st_size:>12} {f.name}")


if __name__ == "__main__":
    main()
