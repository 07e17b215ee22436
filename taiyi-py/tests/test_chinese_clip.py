"""`ClipModel(model=DIR)`: the OFA-Sys Chinese-CLIP family from Python, on the tiny transformers
`ChineseCLIPModel` directory of fixtures/chinese_clip/ (scripts/fixtures/chinese_clip.py), against
the transformers outputs stored there and against the CLI (same bits)."""

import json
import struct

import numpy as np
import pytest

import taiyi
from conftest import ROOT, run_cli


def load_file(path):
    """The float32 / int64 tensors of a .safetensors file (8-byte header length, JSON header,
    little-endian data): the test requirements have no safetensors package."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": "<f4", "I64": "<i8"}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


MODEL = ROOT / "fixtures" / "chinese_clip" / "tiny"
CASES = json.loads((ROOT / "fixtures" / "chinese_clip" / "cases.json").read_text())
EXPECTED = load_file(str(ROOT / "fixtures" / "chinese_clip" / "expected.safetensors"))


def test_features_and_logits_match_transformers():
    m = taiyi.ClipModel(model=MODEL)
    assert m.family == "chinese-clip"
    assert m.vision_arch == "config.json"
    texts, images = CASES["texts"], [str(ROOT / p) for p in CASES["images"]]
    want_t = EXPECTED["text_embeds"] / np.linalg.norm(EXPECTED["text_embeds"], axis=1, keepdims=True)
    want_i = EXPECTED["image_embeds"] / np.linalg.norm(EXPECTED["image_embeds"], axis=1, keepdims=True)
    np.testing.assert_allclose(m.encode_texts(texts), want_t, atol=1e-5)
    np.testing.assert_allclose(m.encode_images(images), want_i, atol=1e-5)
    logits, probs = m.logits(images, texts)
    np.testing.assert_allclose(logits, EXPECTED["logits_per_image"], atol=1e-4)
    # The CLI gives the same bits for the same model.
    cli = json.loads(run_cli("logits", "--model", MODEL, "--json",
                             *sum((["--image", p] for p in images), []),
                             *sum((["--text", t] for t in texts), [])).stdout)
    np.testing.assert_array_equal(probs, np.array(cli["probs"], dtype=np.float32))


def test_model_is_the_whole_model():
    with pytest.raises(taiyi.TaiyiError, match="without text_model"):
        taiyi.ClipModel(model=MODEL, text_model=MODEL)
    with pytest.raises(taiyi.TaiyiError, match="--text-model"):
        taiyi.ClipModel(model=ROOT / "fixtures" / "text" / "tiny")
