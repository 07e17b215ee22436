"""taiyi.ClipModel on the tiny fixture model: bitwise equal to the `taiyi` CLI (the Rust API),
errors as Python exceptions, lazy towers, the GIL released during compute."""

import json
import pathlib
import threading
import time

import numpy as np
import pytest

import taiyi
from conftest import (ARCH, TEXT_DIR, VISION_FILE, bits, cli_embed_images, make_image,
                      run_cli, write_images)

TEXTS = ["一只猫", "一只狗", "两只老虎在河边喝水", "海边的日落", "A photo of a cat."]
FIXTURE_IMAGES = [pathlib.Path(VISION_FILE).parent / n
                  for n in ("gradient_300x200.png", "waves_grey_100x150.png")]


def test_encode_images_paths_and_bytes_equal_cli(model, tmp_path):
    paths = FIXTURE_IMAGES + write_images(tmp_path / "imgs", 6)
    expected = cli_embed_images(paths, tmp_path / "cli.npy")
    from_paths = model.encode_images(paths)
    from_str = model.encode_images([str(p) for p in paths])
    from_bytes = model.encode_images([p.read_bytes() for p in paths])
    assert from_paths.dtype == np.float32 and from_paths.shape == expected.shape
    assert from_paths.flags.writeable
    np.testing.assert_array_equal(bits(from_paths), bits(expected))
    np.testing.assert_array_equal(bits(from_str), bits(expected))
    np.testing.assert_array_equal(bits(from_bytes), bits(expected))
    mixed = model.encode_images([bytearray(paths[0].read_bytes()), memoryview(paths[1].read_bytes())])
    np.testing.assert_array_equal(bits(mixed), bits(expected[:2]))


@pytest.mark.parametrize("mode", ["masked", "card", "fixed77"])
def test_encode_texts_equal_cli(tmp_path, mode):
    m = taiyi.ClipModel(text_model=TEXT_DIR, vision_model=tmp_path / "absent.safetensors",
                        vision_arch=ARCH, text_mode=mode)
    out = tmp_path / "t.npy"
    run_cli("embed-text", "--text-model", TEXT_DIR, "--mode", mode, *TEXTS, "--out", out)
    got = m.encode_texts(TEXTS)
    assert got.shape == (len(TEXTS), np.load(out).shape[1])
    np.testing.assert_array_equal(bits(got), bits(np.load(out)))
    # A text-only user never needs image weights: the image tower was never loaded.
    assert m.text_loaded and not m.image_loaded


def test_masked_texts_do_not_depend_on_their_batch(tmp_path):
    """Masked mode runs packed batches on the CPU: every text's vector is the one it gets
    alone, bit for bit, whatever it is encoded with."""
    m = taiyi.ClipModel(text_model=TEXT_DIR, vision_model=tmp_path / "absent.safetensors",
                        vision_arch=ARCH, text_mode="masked")
    together = m.encode_texts(TEXTS + TEXTS[::-1])
    for i, t in enumerate(TEXTS):
        alone = m.encode_texts([t])
        np.testing.assert_array_equal(bits(together[i]), bits(alone[0]))
        np.testing.assert_array_equal(bits(together[2 * len(TEXTS) - 1 - i]), bits(alone[0]))


def test_logits_and_zero_shot_equal_cli(model):
    images = FIXTURE_IMAGES
    labels = ["一只猫", "一只狗", "两只老虎"]
    logits, probs = model.logits(images, labels)
    assert logits.shape == probs.shape == (2, 3)
    cli = json.loads(run_cli("logits", "--text-model", TEXT_DIR, "--vision-model", VISION_FILE,
                             "--vision-arch", ARCH, "--mode", "masked",
                             *sum((["--image", p] for p in images), []),
                             *sum((["--text", t] for t in labels), []), "--json").stdout)
    np.testing.assert_array_equal(bits(probs), bits(np.array(cli["probs"], dtype=np.float32)))
    np.testing.assert_array_equal(
        bits(logits), bits(np.array(cli["logits_per_image"], dtype=np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    feats_i, feats_t = model.encode_images(images), model.encode_texts(labels)
    np.testing.assert_allclose(logits, model.logit_scale * feats_i @ feats_t.T, rtol=1e-5, atol=1e-4)

    for templates in (None, "zh", ["一张{}的照片。"]):
        rows = model.zero_shot(images, labels, templates=templates)
        assert len(rows) == 2
        tmpl = [] if templates is None else (["--template", templates] if isinstance(templates, str)
                                             else sum((["--template", t] for t in templates), []))
        cli = json.loads(run_cli("zero-shot", "--text-model", TEXT_DIR, "--vision-model", VISION_FILE,
                                 "--vision-arch", ARCH, "--mode", "masked",
                                 *sum((["--image", p] for p in images), []), *labels, *tmpl,
                                 "--json").stdout)
        for row, c in zip(rows, cli):
            assert [s["label"] for s in row["scores"]] == [t["label"] for t in c["top"]]
            assert row["label"] == row["scores"][0]["label"] and sorted(
                s["index"] for s in row["scores"]) == [0, 1, 2]
            got = np.array([s["probability"] for s in row["scores"]], dtype=np.float32)
            np.testing.assert_array_equal(bits(got), bits(np.array([t["probability"] for t in c["top"]], dtype=np.float32)))
    none = model.zero_shot(images, labels)
    np.testing.assert_array_equal(
        bits(np.array([[s["probability"] for s in sorted(r["scores"], key=lambda s: s["index"])]
                       for r in none], dtype=np.float32)), bits(probs))


def test_tokenize_equals_cli(model):
    got = model.tokenize(TEXTS)
    lines = run_cli("tokenize", "--model-dir", TEXT_DIR, "--pad", "longest", *TEXTS).stdout.splitlines()
    assert got["input_ids"] == [json.loads(l)["ids"] for l in lines]
    assert got["attention_mask"] == [json.loads(l)["attention_mask"] for l in lines]
    unpadded = model.tokenize(TEXTS, padding=False)
    assert [len(r) for r in unpadded["input_ids"]] == [sum(m) for m in got["attention_mask"]]
    fixed = model.tokenize(TEXTS, padding=8)
    assert {len(r) for r in fixed["input_ids"]} == {8}
    assert model.tokenize(["一二三四五六七八九十"], max_length=4)["input_ids"][0][-1] == \
        got["input_ids"][0][sum(got["attention_mask"][0]) - 1]  # [SEP] kept last


def test_errors_are_python_exceptions(model, tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError) as e:
        model.encode_images([missing])
    assert isinstance(e.value, taiyi.TaiyiError) and "nope.png" in str(e.value)
    with pytest.raises(ValueError) as e:
        model.encode_images([b"definitely not an image"])
    assert isinstance(e.value, taiyi.TaiyiError)
    with pytest.raises(taiyi.TaiyiValueError):
        model.encode_images([])
    with pytest.raises(taiyi.TaiyiValueError):
        model.encode_texts([])
    with pytest.raises(TypeError):
        model.encode_texts("一只猫")
    with pytest.raises(TypeError):
        model.encode_images([42])
    with pytest.raises(ValueError, match="ViT-Q-99"):
        taiyi.ClipModel(vision_arch="ViT-Q-99")
    with pytest.raises(ValueError, match="tpu"):
        taiyi.ClipModel(device="tpu")
    with pytest.raises(ValueError, match="f8"):
        taiyi.ClipModel(precision="f8")
    with pytest.raises(ValueError, match="wild"):
        taiyi.ClipModel(text_mode="wild")
    with pytest.raises(taiyi.TaiyiError, match="cpu"):
        taiyi.ClipModel(precision="f16")  # a GPU precision: the CPU runs f32 and bf16
    with pytest.raises(ValueError, match="template"):
        model.zero_shot(FIXTURE_IMAGES[:1], ["猫"], templates=["no placeholder"])
    lazy = taiyi.ClipModel(text_model=tmp_path / "no-text-dir", vision_model=VISION_FILE,
                           vision_arch=ARCH)
    assert lazy.encode_images(FIXTURE_IMAGES[:1]).shape[0] == 1  # text weights never needed
    with pytest.raises(FileNotFoundError, match="no-text-dir"):
        lazy.encode_texts(["一只猫"])


def test_two_threads_encode_concurrently_without_the_gil(model, tmp_path):
    paths = write_images(tmp_path / "imgs", 48)
    data = [p.read_bytes() for p in paths]
    expected = model.encode_images(data)
    results = {}

    def work(k, items):
        results[k] = model.encode_images(items)

    threads = [threading.Thread(target=work, args=(k, data)) for k in range(2)]
    ticks = 0
    start = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        ticks += 1  # runs only while the GIL is free
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    for t in threads:
        t.join()
    for k in range(2):
        np.testing.assert_array_equal(bits(results[k]), bits(expected))
    # With the GIL held for the whole call this loop would run a handful of times at most.
    assert ticks >= min(20, int(elapsed / 0.001 * 0.1)), (ticks, elapsed)


def test_repr_and_properties(model):
    r = repr(model)
    assert "tiny" in r and model.device == "cpu" and model.precision == "f32"
    assert model.text_mode == "masked" and model.vision_arch == ARCH
    assert model.logit_scale > 1.0
    assert taiyi.DEFAULT_TEMPLATE in taiyi.CHINESE_TEMPLATES
    assert isinstance(taiyi.__version__, str)
    assert make_image(0) == make_image(0)


def test_bf16_on_the_cpu_equals_the_cli_and_keeps_the_f32_directions(model, tmp_path):
    # precision="bf16": linear weights in bf16, f32 accumulation; the process's kernel named.
    half = taiyi.ClipModel(text_model=TEXT_DIR, vision_model=VISION_FILE, vision_arch=ARCH,
                           precision="bf16")
    assert half.precision == "bf16" and half.cpu_kernel in ("avx512bf16", "f32")
    assert model.cpu_kernel is None
    got = half.encode_images(FIXTURE_IMAGES)
    want = model.encode_images(FIXTURE_IMAGES)
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.9999, cos
    out = tmp_path / "bf16.npy"
    run_cli("--precision", "bf16", "embed-text", "--text-model", TEXT_DIR, "--mode", "masked",
            *TEXTS, "--out", out)
    np.testing.assert_array_equal(bits(half.encode_texts(TEXTS)), bits(np.load(out)))
