"""Taiyi-CLIP (Chinese CLIP: RoBERTa-326M text tower, open_clip ViT-H-14 image tower) from Rust.

The tokenizer, image decoding and transform, and both towers are taiyi-rs's (the same numbers
as the ``taiyi`` command line), loaded once per process and called without the GIL::

    import taiyi
    model = taiyi.ClipModel()                      # env vars or the Hugging Face hub cache
    feats = model.encode_texts(["一只猫", "一只狗"])   # numpy float32 (2, 1024), L2-normalised
    probs = model.logits(["cat.jpg"], ["一只猫", "一只狗"])[1]
    index = taiyi.SearchIndex("photos.npy")        # `taiyi embed-image --out photos.npy`
    hits = index.search(feats[0], top_k=5)         # [{"row", "name", "score"}, ...]
"""

from ._errors import TaiyiError, TaiyiFileNotFoundError, TaiyiValueError
from ._taiyi import CHINESE_TEMPLATES, DEFAULT_TEMPLATE, ClipModel, SearchIndex, __version__

__all__ = [
    "CHINESE_TEMPLATES",
    "DEFAULT_TEMPLATE",
    "ClipModel",
    "SearchIndex",
    "TaiyiError",
    "TaiyiFileNotFoundError",
    "TaiyiValueError",
    "__version__",
]
