"""examples/ray_embed.py on a local Ray cluster (ray.init(num_cpus=2)) over ~200 generated
images: every vector bitwise equal to `taiyi embed-image` on the same files, none lost or
duplicated; and the text variant against `taiyi embed-text --mode masked`."""

import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ARCH, ROOT, TEXT_DIR, VISION_FILE, bits, cli_embed_images, run_cli, write_images

ray = pytest.importorskip("ray")
sys.path.insert(0, str(ROOT / "examples"))
import ray_embed  # noqa: E402

N_IMAGES = 200


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT / "examples")}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def read_rows(out_dir, key):
    table = pq.read_table(out_dir)
    keys = table.column(key).to_pylist()
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    return keys, emb


def test_ray_image_pipeline_equals_cli(cluster, tmp_path, capsys):
    paths = write_images(tmp_path / "images", N_IMAGES, nested=True)
    t = time.perf_counter()
    expected = cli_embed_images(["--images-dir", tmp_path / "images"], tmp_path / "cli.npy")
    cli_s = time.perf_counter() - t
    names = json.loads((tmp_path / "cli.npy.names.json").read_text())["names"]
    assert names == [str(p) for p in paths]

    t = time.perf_counter()
    ray_embed.embed_images(str(tmp_path / "images"), str(tmp_path / "out"),
                           dict(vision_model=str(VISION_FILE), vision_arch=ARCH),
                           batch_size=32, concurrency=2, num_cpus=0.5)
    ray_s = time.perf_counter() - t
    got_paths, emb = read_rows(tmp_path / "out", "path")
    assert len(got_paths) == N_IMAGES and len(set(got_paths)) == N_IMAGES  # none duplicated
    assert sorted(got_paths) == sorted(names)  # none lost
    order = {p: i for i, p in enumerate(names)}
    rows = np.array([order[p] for p in got_paths])
    np.testing.assert_array_equal(bits(emb), bits(expected[rows]))
    with capsys.disabled():
        print(f"\n[ray] {N_IMAGES} rows, bitwise equal to taiyi embed-image: Ray pipeline "
              f"{ray_s:.1f} s ({N_IMAGES / ray_s:.0f} images/s, incl. actor start), "
              f"CLI {cli_s:.1f} s ({N_IMAGES / cli_s:.0f} images/s, incl. process start)")


def test_ray_text_pipeline_equals_cli(cluster, tmp_path):
    texts = [f"第{i}张照片：一只{'猫狗虎鸟'[i % 4]}在{'河边山上海边'[i % 3 * 2:i % 3 * 2 + 2]}" for i in range(60)]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    run_cli("embed-text", "--text-model", TEXT_DIR, "--mode", "masked",
            "--texts-file", tmp_path / "texts.txt", "--out", tmp_path / "t.npy")
    expected = np.load(tmp_path / "t.npy")
    ray_embed.embed_texts(str(tmp_path / "texts.txt"), str(tmp_path / "out"),
                          dict(text_model=str(TEXT_DIR)), batch_size=16, concurrency=2, num_cpus=0.5)
    got, emb = read_rows(tmp_path / "out", "text")
    assert sorted(got) == sorted(texts) and len(got) == len(texts)
    rows = np.array([texts.index(t) for t in got])
    # Masked mode: batch-invariant up to float rounding (a batch's padded length changes the
    # summation layout of the attention), so compare within f32 rounding, not bitwise.
    np.testing.assert_allclose(emb, expected[rows], rtol=0, atol=2e-6)
