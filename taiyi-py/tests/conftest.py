"""Shared fixtures: the tiny fixture model, the `taiyi` CLI, small generated images."""

import io
import os
import pathlib
import subprocess

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEXT_DIR = ROOT / "fixtures" / "text" / "tiny"
VISION_FILE = ROOT / "fixtures" / "vision" / "open_clip_model.safetensors"
ARCH = "tiny"


def taiyi_bin() -> pathlib.Path:
    """The CLI built by scripts/test_python.sh ($TAIYI_BIN), else target/debug/taiyi."""
    env = os.environ.get("TAIYI_BIN")
    if env:
        return pathlib.Path(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "taiyi"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run `taiyi ARGS` (CPU backend); raises with its stderr on failure."""
    cmd = [str(taiyi_bin()), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stderr}")
    return p


def cli_embed_images(paths, out: pathlib.Path) -> np.ndarray:
    run_cli("embed-image", "--vision-model", VISION_FILE, "--vision-arch", ARCH,
            *paths, "--out", out)
    return np.load(out)


def make_image(i: int) -> bytes:
    """A small deterministic image: size, mode and format vary with `i`."""
    rng = np.random.default_rng(i)
    w, h = 20 + (i * 7) % 45, 16 + (i * 11) % 40
    pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    if i % 5 == 3:
        img = img.convert("L")
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if i % 3 == 1 else "PNG", quality=90)
    return buf.getvalue()


def write_images(folder: pathlib.Path, n: int, nested: bool = False):
    """`n` images under `folder` (PNG/JPEG by index); returns their paths, sorted."""
    paths = []
    for i in range(n):
        data = make_image(i)
        ext = "jpg" if data[:2] == b"\xff\xd8" else "png"
        sub = folder / f"part{i % 3}" if nested else folder
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"img_{i:04d}.{ext}"
        p.write_bytes(data)
        paths.append(p)
    return sorted(paths)


def bits(a: np.ndarray) -> np.ndarray:
    """The float32 bit patterns (bitwise comparison, NaN-safe)."""
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="session")
def model():
    import taiyi

    return taiyi.ClipModel(text_model=TEXT_DIR, vision_model=VISION_FILE, vision_arch=ARCH)
