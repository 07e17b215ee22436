"""Embed a text file (one text per line) with Ray Data and taiyi.

    python examples/ray_embed_text.py TEXTS.txt OUT_DIR [--text-model DIR] [--concurrency 2]

`read_text` → `map_batches(TaiyiTextEmbedder)` (examples/ray_embed.py) → `write_parquet` of
(text, embedding), in taiyi's masked text mode (batch-invariant vectors).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ray_embed import embed_texts  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("texts_file")
    p.add_argument("out_dir")
    p.add_argument("--text-model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--num-gpus", type=float, default=0)
    a = p.parse_args()
    import ray

    ray.init()
    embed_texts(a.texts_file, a.out_dir, dict(text_model=a.text_model, device=a.device),
                batch_size=a.batch_size, concurrency=a.concurrency, num_gpus=a.num_gpus)


if __name__ == "__main__":
    main()
