"""`taiyi embed-image --shard I/N --out-dir DIR`: clip-retrieval's layout, read by numpy and
pyarrow as clip-retrieval's tools (autofaiss, embedding_reader) read it; the N shards together
are exactly one unsharded run."""

import numpy as np
import pyarrow.parquet as pq

from conftest import ARCH, VISION_FILE, bits, run_cli, write_images


def embed(folder, out, *extra):
    run_cli("embed-image", "--vision-model", VISION_FILE, "--vision-arch", ARCH,
            "--images-dir", folder, "--out-dir", out, *extra)


def test_shards_together_equal_one_run_and_pyarrow_reads_them(tmp_path):
    paths = write_images(tmp_path / "imgs", 23, nested=True)
    embed(tmp_path / "imgs", tmp_path / "all", "--dtype", "float32")
    whole = np.load(tmp_path / "all" / "img_emb" / "img_emb_0.npy")
    names = pq.read_table(tmp_path / "all" / "metadata" / "metadata_0.parquet")
    assert whole.shape == (23, 16) and whole.dtype == np.float32
    assert names.column("image_path").to_pylist() == [str(p) for p in paths]

    parts, rows = [], []
    for i in range(4):
        embed(tmp_path / "imgs", tmp_path / "sharded", "--shard", f"{i}/4", "--dtype", "float32")
        parts.append(np.load(tmp_path / "sharded" / "img_emb" / f"img_emb_{i}.npy"))
        table = pq.read_table(tmp_path / "sharded" / "metadata" / f"metadata_{i}.parquet")
        rows += table.column("image_path").to_pylist()
    assert rows == [str(p) for p in paths], "every image once, in order"
    assert (bits(np.concatenate(parts)) == bits(whole)).all()

    # float16, clip-retrieval's default: numpy's own rounding of the float32 run.
    embed(tmp_path / "imgs", tmp_path / "half", "--shard", "2/4")
    half = np.load(tmp_path / "half" / "img_emb" / "img_emb_2.npy")
    assert half.dtype == np.float16
    assert (half == parts[2].astype(np.float16)).all()
