"""Embed a folder (or bucket) of images with Ray Data and taiyi: one ClipModel per actor.

    python examples/ray_embed.py IMAGES_DIR OUT_DIR [--vision-model FILE] [--vision-arch NAME]
        [--batch-size 64] [--concurrency 2] [--num-gpus 0]

`read_binary_files` → `map_batches(TaiyiImageEmbedder)` → `write_parquet` of (path, embedding):
the raw file bytes go to each actor, which decodes and transforms them in Rust exactly as
`taiyi embed-image` does, so every vector equals the CLI's bit for bit. On GPUs build the wheel
with the `cuda` feature and pass `--num-gpus 1 --device cuda` (one GPU per actor; Ray sets
CUDA_VISIBLE_DEVICES so each actor's `cuda:0` is its own GPU).

The same callable class works unchanged as a Daft UDF or inside a Spark `predict_batch_udf`
(see README "Cluster").
"""

import argparse
from typing import Any, Dict, Optional

import numpy as np
import pyarrow as pa


def embedding_column(emb: np.ndarray) -> pa.FixedSizeListArray:
    """`(n, d)` float32 as an Arrow `fixed_size_list<float>[d]` column (parquet-friendly)."""
    flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])


class TaiyiImageEmbedder:
    """A Ray Data callable class: loads `taiyi.ClipModel` once per actor and maps batches of
    `{"bytes", "path"}` (from `read_binary_files(..., include_paths=True)`) to
    `{"path", "embedding"}`."""

    def __init__(self, text_model: Optional[str] = None, vision_model: Optional[str] = None,
                 vision_arch: str = "ViT-H-14", device: str = "cpu",
                 batch_size: Optional[int] = None):
        import taiyi

        self.model = taiyi.ClipModel(text_model=text_model, vision_model=vision_model,
                                     vision_arch=vision_arch, device=device,
                                     batch_size=batch_size)

    def __call__(self, batch: pa.Table) -> pa.Table:
        emb = self.model.encode_images(batch.column("bytes").to_pylist())
        return pa.table({"path": batch.column("path"), "embedding": embedding_column(emb)})


class TaiyiTextEmbedder:
    """The text variant: maps batches of `{"text"}` to `{"text", "embedding"}` (masked mode:
    a text's vector does not depend on the batch it lands in)."""

    def __init__(self, text_model: Optional[str] = None, device: str = "cpu",
                 text_mode: str = "masked"):
        import taiyi

        self.model = taiyi.ClipModel(text_model=text_model, device=device, text_mode=text_mode)

    def __call__(self, batch: pa.Table) -> pa.Table:
        emb = self.model.encode_texts(batch.column("text").to_pylist())
        return pa.table({"text": batch.column("text"), "embedding": embedding_column(emb)})


def embed_images(images_dir: str, out_dir: str, model_kwargs: Dict[str, Any],
                 batch_size: int = 64, concurrency: int = 2, num_gpus: float = 0,
                 num_cpus: float = 1) -> None:
    """The pipeline: read the files, embed them on `concurrency` actors (`num_cpus` /
    `num_gpus` each), write parquet."""
    import ray

    ds = ray.data.read_binary_files(images_dir, include_paths=True)
    ds = ds.map_batches(TaiyiImageEmbedder, fn_constructor_kwargs=model_kwargs,
                        batch_size=batch_size, batch_format="pyarrow",
                        concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus)
    ds.write_parquet(out_dir)


def embed_texts(texts_file: str, out_dir: str, model_kwargs: Dict[str, Any],
                batch_size: int = 256, concurrency: int = 2, num_gpus: float = 0,
                num_cpus: float = 1) -> None:
    """The text pipeline: one text per line of `texts_file`."""
    import ray

    ds = ray.data.read_text(texts_file)
    ds = ds.map_batches(TaiyiTextEmbedder, fn_constructor_kwargs=model_kwargs,
                        batch_size=batch_size, batch_format="pyarrow",
                        concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus)
    ds.write_parquet(out_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images_dir")
    p.add_argument("out_dir")
    p.add_argument("--vision-model")
    p.add_argument("--vision-arch", default="ViT-H-14")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--num-gpus", type=float, default=0)
    a = p.parse_args()
    import ray

    ray.init()
    embed_images(a.images_dir, a.out_dir,
                 dict(vision_model=a.vision_model, vision_arch=a.vision_arch, device=a.device),
                 batch_size=a.batch_size, concurrency=a.concurrency, num_gpus=a.num_gpus)


if __name__ == "__main__":
    main()
