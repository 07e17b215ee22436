"""Full-size opt-in parity check for the text tower (not run by CI).

Writes a random-weight BERT with the exact Taiyi-CLIP-RoBERTa-326M text config
(hfl/chinese-roberta-wwm-ext-large: 21128/1024/24/16/4096/512) in the published layout
(config.json + pytorch_model.bin + vocab.txt) to fixtures/full/text/ (git-ignored, ~1.3 GB),
tokenises 8 Chinese texts with the slow BertTokenizer and saves PyTorch's outputs for the three
text modes (eager attention; the sdpa default is also recorded for the model-card mode).

    /work/.venv/bin/python scripts/fullsize_text.py
    cargo test --release -p taiyi-text --test fullsize -- --ignored --nocapture

The Rust test reports the max abs difference of the L2-normalised pooler features (goal <= 1e-4).
"""

import json
import os
import shutil
import time

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel, BertTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "fixtures", "full", "text")
VOCAB = "/work/shared/reference/vocab.txt"
if not os.path.exists(VOCAB):
    VOCAB = os.path.join(REPO, "..", "shared", "reference", "vocab.txt")

TEXTS = [
    "一只猫",
    "一只狗",
    "两只老虎",
    "一只老虎在森林里散步",
    "北京天安门广场的夜景",
    "一碗热气腾腾的兰州牛肉拉面，上面撒着香菜和辣椒油。",
    "A red car 停在路边",
    "清晨的阳光洒在古老的石板路上，街道两旁的小店陆续开门，卖早点的摊贩吆喝着，"
    "孩子们背着书包跑向学校，老人们在公园里打太极拳，远处的钟楼敲响了七下，城市慢慢醒来。",
]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = BertConfig(
        vocab_size=21128, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=512, type_vocab_size=2,
        layer_norm_eps=1e-12, pad_token_id=0, hidden_act="gelu",
        position_embedding_type="absolute", architectures=["BertModel"],
    )
    model = BertModel(cfg, add_pooling_layer=True).eval()
    # HF init leaves LayerNorm = (1, 0) and biases 0: perturb them so they are exercised.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.add_(0.05 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.add_(0.02 * torch.randn_like(p))
    os.makedirs(OUT, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=False)
    shutil.copy(VOCAB, os.path.join(OUT, "vocab.txt"))

    tok = BertTokenizer(VOCAB)
    exp = {}
    longest = tok(TEXTS, padding=True, return_tensors="pt")
    fixed = tok(TEXTS, padding="max_length", truncation=True, max_length=77, return_tensors="pt")
    exp["longest.input_ids"] = longest["input_ids"]
    exp["longest.attention_mask"] = longest["attention_mask"]
    exp["fixed77.input_ids"] = fixed["input_ids"]
    exp["fixed77.attention_mask"] = fixed["attention_mask"]
    eager = BertModel.from_pretrained(OUT, attn_implementation="eager").eval()
    sdpa = BertModel.from_pretrained(OUT).eval()  # the library default (sdpa in 4.57)
    timings = {}
    with torch.no_grad():
        for name, m in [("eager", eager), ("sdpa", sdpa)]:
            t = time.time()
            exp[f"{name}.model_card"] = m(longest["input_ids"])[1]
            exp[f"{name}.masked"] = m(longest["input_ids"], attention_mask=longest["attention_mask"])[1]
            exp[f"{name}.fixed77"] = m(fixed["input_ids"])[1]
            timings[name] = time.time() - t
    save_file({k: v.contiguous() for k, v in exp.items()}, os.path.join(OUT, "expected.safetensors"))
    for mode in ["model_card", "masked", "fixed77"]:
        a = torch.nn.functional.normalize(exp[f"eager.{mode}"], dim=1)
        b = torch.nn.functional.normalize(exp[f"sdpa.{mode}"], dim=1)
        print(f"{mode}: eager vs sdpa max abs diff (normalised) {(a - b).abs().max().item():.3e}")
    print(f"wrote {OUT}; longest {tuple(longest['input_ids'].shape)}; timings {timings}")
    print(json.dumps({"texts": TEXTS}, ensure_ascii=False))


if __name__ == "__main__":
    main()
