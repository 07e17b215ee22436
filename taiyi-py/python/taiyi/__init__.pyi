"""Type stubs of the taiyi module (native part: taiyi._taiyi)."""

import os
from typing import List, Optional, Sequence, Tuple, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str
DEFAULT_TEMPLATE: str
CHINESE_TEMPLATES: List[str]

ImageLike = Union[bytes, bytearray, memoryview, str, os.PathLike]

class TaiyiError(Exception):
    """Base class of every error raised by taiyi."""

class TaiyiValueError(TaiyiError, ValueError):
    """Bad input: an empty list, an unknown name, an undecodable image, mismatched sizes."""

class TaiyiFileNotFoundError(TaiyiError, FileNotFoundError):
    """A model file, vocabulary or image path that does not exist."""

class Score(TypedDict):
    label: str
    index: int
    probability: float
    logit: float

class ZeroShotResult(TypedDict):
    label: str
    index: int
    probability: float
    scores: List[Score]

class Tokens(TypedDict):
    input_ids: List[List[int]]
    attention_mask: List[List[int]]

class ClipModel:
    """Taiyi-CLIP: Chinese texts and images in one 1024-d space.

    Paths resolve like the ``taiyi`` CLI: the arguments, else ``TAIYI_TEXT_MODEL`` /
    ``TAIYI_VISION_MODEL``, else the Hugging Face hub cache (downloads unless
    ``HF_HUB_OFFLINE=1``). Each tower loads on first use. Every method releases the GIL.

    Args:
        text_model: HF text-tower directory (``config.json``, ``vocab.txt``, weights).
        vision_model: open_clip checkpoint file (or a directory holding one).
        vision_arch: open_clip name (``ViT-H-14``, ``ViT-L-14``, ``ViT-B-16``, ``ViT-B-32``,
            optionally ``-quickgelu``; ``tiny`` for the test fixtures) or a model-config JSON.
        device: ``cpu``, ``wgpu[:N]`` or ``cuda[:N]`` (GPU backends need a wheel built with
            the ``wgpu`` / ``cuda`` feature).
        precision: ``f32``, ``f16`` or ``bf16`` (``f16`` on GPUs only; ``bf16`` on the CPU holds
            the linear weights in bf16 and multiplies them with f32 accumulation, see
            ``cpu_kernel``).
        text_mode: ``masked`` (batch-invariant, default), ``card`` (the model card: no mask)
            or ``fixed77``.
        batch_size: images per forward pass (default 8 on cpu, 64 on GPUs).
        text_batch_size: texts per forward pass (default 32 on cpu, 128 on GPUs).
        model: a one-directory model instead of the Taiyi pair: a transformers
            ``ChineseCLIPModel`` directory (OFA-Sys Chinese-CLIP: ``config.json``,
            ``pytorch_model.bin`` or ``model.safetensors``, ``vocab.txt``,
            ``preprocessor_config.json``) or its hub id (``OFA-Sys/chinese-clip-vit-base-patch16``);
            the family is read from ``config.json`` and the features are ``projection_dim`` wide.

    Raises:
        TaiyiValueError: unknown architecture, device, precision or text mode.
        TaiyiError: the device's backend is not available.
    """

    def __init__(
        self,
        text_model: Optional[Union[str, os.PathLike]] = None,
        vision_model: Optional[Union[str, os.PathLike]] = None,
        vision_arch: str = "ViT-H-14",
        device: str = "cpu",
        precision: str = "f32",
        text_mode: str = "masked",
        batch_size: Optional[int] = None,
        text_batch_size: Optional[int] = None,
        model: Optional[Union[str, os.PathLike]] = None,
    ) -> None: ...
    def encode_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised text features, shape ``(len(texts), 1024)``."""
    def encode_images(self, images: Sequence[ImageLike]) -> npt.NDArray[np.float32]:
        """L2-normalised image features, shape ``(len(images), 1024)``.

        Images are encoded bytes (PNG, JPEG, GIF, WebP, BMP, TIFF) or paths; decoding and the
        open_clip transform run in Rust, exactly as ``taiyi embed-image``.

        Raises:
            TaiyiFileNotFoundError: a path does not exist.
            TaiyiValueError: an image cannot be decoded, or the list is empty.
        """
    def logits(
        self, images: Sequence[ImageLike], texts: Sequence[str]
    ) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The model card's ``(logits_per_image, probs)``, shape ``(len(images), len(texts))``."""
    def zero_shot(
        self,
        images: Sequence[ImageLike],
        labels: Sequence[str],
        templates: Optional[Union[str, Sequence[str]]] = None,
    ) -> List[ZeroShotResult]:
        """One result per image: the best ``label`` and every label's score, best first.

        ``templates``: ``None`` (the labels themselves, as in the model card), ``"zh"`` (the
        built-in Chinese prompt ensemble) or strings with ``{}`` for the label.
        """
    def tokenize(
        self,
        texts: Sequence[str],
        max_length: Optional[int] = None,
        padding: Union[bool, str, int] = "longest",
    ) -> Tokens:
        """Token ids of the slow ``BertTokenizer`` (id-exact), ``[SEP]`` kept last when truncated.

        ``padding`` (as in transformers): ``True`` / ``"longest"``, ``False`` / ``"do_not_pad"``
        (rows of their own length), or an int (pad and truncate every row to it).
        """
    @property
    def logit_scale(self) -> float:
        """``logit_scale.exp()`` of the image checkpoint (loads the image tower)."""
    @property
    def device(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def cpu_kernel(self) -> Optional[str]:
        """The CPU's bf16 matmul kernel (``"avx512bf16"``, ``"f32"``) when the linear weights are
        held in bf16 on the CPU, else ``None``."""
        ...
    @property
    def text_mode(self) -> str: ...
    @property
    def family(self) -> str:
        """``"taiyi"``, or ``"chinese-clip"`` for a ``model=`` directory."""
        ...
    @property
    def vision_arch(self) -> str: ...
    @property
    def text_loaded(self) -> bool: ...
    @property
    def image_loaded(self) -> bool: ...

class Hit(TypedDict):
    row: int
    name: str
    score: float

class SearchIndex:
    """An embedding index (`taiyi embed-image --out FILE.npy`) opened for search: through its ANN
    graph `FILE.npy.ann` (`taiyi index build`) when it has one and `exact` is false, else by
    scoring every row. Scores are exact cosines either way."""

    def __init__(self, path: Union[str, os.PathLike], exact: bool = False) -> None: ...
    def search(
        self, queries: npt.ArrayLike, top_k: int = 10
    ) -> Union[List[Hit], List[List[Hit]]]:
        """Best `top_k` rows, best first: a list of hits for a `(dim,)` query, one list per
        query for `(m, dim)`. Queries are L2-normalised here; a zero row is a TaiyiValueError."""
    def info(self) -> dict:
        """Kind, rows, dim and the ANN graph's header (as `taiyi serve --index` reports)."""
    @property
    def rows(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def kind(self) -> str:
        """`"ann"` or `"exact"`."""
    @property
    def names(self) -> List[str]: ...
    @property
    def path(self) -> str: ...
    def __len__(self) -> int: ...
