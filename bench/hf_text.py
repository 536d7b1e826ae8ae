"""Bench: an `hf:` model on this CPU (issue 18 §1): fine-tuning (every parameter vs LoRA), IP per parameter group,
and how well loss and IP find the 10% flipped labels of generated short reviews. Offline: a small BERT (hidden 64,
2 layers, random init) and a word-level tokenizer built here, loaded through `hf:<folder>` as a user's model is.

    OMP_NUM_THREADS=2 python bench/hf_text.py --rows 1000     # -> bench/results/hf_text.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data.text import text_dataset  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402
from influence_core.models.hf import TokenSettings  # noqa: E402
from tests.models.test_hf import FILLER, NEGATIVE, POSITIVE, _write_tiny_bert  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "hf_text.md"


def reviews(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Short reviews whose label follows a sentiment word, 10% of labels flipped (returned as the noise mask)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    texts = [" ".join(rng.permutation(list(rng.choice(FILLER, rng.integers(2, 9))) + [rng.choice(POSITIVE if c else NEGATIVE)]))
             for c in y]
    flipped = rng.random(n) < 0.1
    labels = np.where(flipped, 1 - y, y)
    return pd.DataFrame({"review": texts, "label": np.array(["negative", "positive"])[labels]}), flipped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp()) / "bert"
    import transformers

    size = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                   max_position_embeddings=64)
    _write_tiny_bert(folder, size)
    train, noisy = reviews(args.rows, 0)
    ds = text_dataset(train, reviews(200, 1)[0], reviews(200, 2)[0], text_columns=["review"], label_column="label",
                      features="hf", featurizer_settings=TokenSettings(str(folder), 16))
    lines = [f"# `hf:` model on the CPU ({args.rows:,} training texts, 16 tokens, BERT hidden 64 × 2 layers, "
             f"random init; {torch.get_num_threads()} threads)", "",
             "| fine-tuning | parameters | train (3 epochs) | test acc. | group | IP seconds | IP AUROC | loss AUROC |",
             "|---|---|---|---|---|---|---|---|"]
    for label, arch, lr in (("every parameter", f"hf:{folder}", 1e-3), ("LoRA r=8", f"hf:{folder}?lora=8&alpha=16", 1e-2)):
        t = time.perf_counter()
        fitted = train_model(ds, arch, TrainConfig(epochs=3, lr=lr, seed=0))
        seconds = time.perf_counter() - t
        loss_auroc = roc_auc_score(noisy, -compute_scores(ds, fitted, "loss"))
        for group in ("head", "lora" if "lora" in arch else "last:1", "all"):
            t = time.perf_counter()
            ip = compute_scores(ds, fitted, "ip", params=group, batch_size=128)
            lines.append(f"| {label} | {sum(p.numel() for p in fitted.module.parameters()):,} | {seconds:.1f} s | "
                         f"{fitted.metrics['test_accuracy']:.3f} | {group} | {time.perf_counter() - t:.1f} | "
                         f"{roc_auc_score(noisy, -ip):.3f} | {loss_auroc:.3f} |")
            print(lines[-1], flush=True)
    lines += ["", "Lower score = more detrimental, so AUROC is of the negated score against the flipped-label mask. "
              "Measured on the shared 2-core machine while others ran tests: times are upper bounds. The task is easy (one sentiment word decides the clean label), so AUROC here shows the path works end to end, not how the rankings compare on real text; IP on the LoRA matrices alone (0.62) trails the head and the loss."]
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
