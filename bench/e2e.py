"""Bench: end to end, from an uploaded file to the flagged list (issue 18 §4). One section per part:

    (a) 50,000 images 32×32, frozen resnet18 + head, on the CPU            — section "images_cpu" (h-img adds it)
    (b) the same 50,000 at 224×224 on a GPU                                 — section "images_gpu" (h-img adds it)
    (c) 100,000 text rows with `text-linear` on the CPU (target ≤ 3 min)   — section "text" below
    plus detection on generated text with 10% moved labels: every ranking beside TF-IDF + scikit-learn logistic
    regression + cleanlab (called directly)                                — section "detect_text" below

    OMP_NUM_THREADS=2 python bench/e2e.py text              # (c) -> bench/results/e2e.md (text rows) + e2e.json
    OMP_NUM_THREADS=2 python bench/e2e.py detect_text       # -> bench/results/detect_text.{md,json}
    python bench/e2e.py text --rows 20000                   # a quick look

Wall times are split into load + featurize (CSV read, TF-IDF fitted on train, features written), train and score.
Peak memory (max RSS of a fresh process per size) at 10k and 50k rows says whether memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine  # noqa: E402

FLAG_SHARE = 0.05


# ------------------------------------------------------------------------------------------------ (a), (b) images
# (added by the images work, issue 18 §3)


# ------------------------------------------------------------------------------------------------ (c) text
TEXT_MAX_FEATURES = 2**12  # TF-IDF columns for the 100k run (as measured before the features were sparse)
TEXT_METHOD = "ip_classwise"  # the IP-family ranking for multiclass sets (see methods/ip_classwise.py)


def text_run(rows: int, max_features: int = TEXT_MAX_FEATURES, seed: int = 0) -> dict:
    """One end-to-end text run in this process: write a generated CSV (not timed: the upload), load it as text,
    train text-linear, score, flag the lowest 5%. Returns the split wall times and this process's peak RSS."""
    import os

    from influence_core.api import compute_scores
    from influence_core.data.text import TfidfSettings, generated_text_frame, text_dataset
    from influence_core.data.uploads import _read_csv
    from influence_core.models import train_model

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INFLUENCE_DATA_DIR"] = tmp  # feature files go to this run's own folder
        path = Path(tmp) / "text.csv"
        generated_text_frame(rows, num_classes=5, seed=seed).to_csv(path, index=False)
        t0 = time.perf_counter()
        frame = _read_csv(path)
        ds = text_dataset(frame, text_columns=["text"], label_column="label", name="e2e-text", seed=seed,
                          tfidf=TfidfSettings(max_features=max_features))
        t1 = time.perf_counter()
        fitted = train_model(ds, "text-linear")
        t2 = time.perf_counter()
        scores = compute_scores(ds, fitted, TEXT_METHOD)
        flagged = np.argsort(scores, kind="stable")[: int(round(FLAG_SHARE * len(scores)))]
        t3 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    storage = "sparse" if ds.train.sparse is not None else "dense on disk" if ds.train.on_disk else "dense"
    return {"rows": rows, "n_train": len(ds.train), "features": ds.input_shape[0], "storage": storage,
            "load_featurize_s": t1 - t0, "train_s": t2 - t1, "score_s": t3 - t2, "total_s": t3 - t0,
            "test_accuracy": fitted.metrics.get("test_accuracy"), "flagged": len(flagged), "peak_rss_mb": peak_mb}


def text_in_subprocess(rows: int, max_features: int) -> dict:
    """`text_run` in a fresh process (so its peak RSS is its own)."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
            f"from bench.e2e import text_run; print(json.dumps(text_run({rows}, {max_features})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_text(rows: int, memory_sizes: list[int], max_features: int) -> None:
    results = []
    for n in [*memory_sizes, rows]:
        results.append(text_in_subprocess(n, max_features))
        print(json.dumps(results[-1]), flush=True)
    header = ("| rows | train rows | TF-IDF columns | features | load + featurize s | train s | score s | "
              "total s | test acc | peak RSS MB |")
    lines = ["## (c) text: generated rows (5 topics) → text-linear → IP, class targets → lowest 5% flagged", "",
             f"Machine: {machine()}. Target: 100,000 rows ≤ 180 s; memory flat within 20% from 10k to 50k.", "",
             header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        lines.append(f"| {r['rows']:,} | {r['n_train']:,} | {r['features']:,} | {r['storage']} | "
                     f"{r['load_featurize_s']:.1f} | {r['train_s']:.1f} | {r['score_s']:.1f} | {r['total_s']:.1f} | "
                     f"{r['test_accuracy']:.3f} | {r['peak_rss_mb']:.0f} |")
    if len(memory_sizes) >= 2:
        a, b = results[0]["peak_rss_mb"], results[1]["peak_rss_mb"]
        lines += ["", f"Peak RSS {memory_sizes[1]:,} vs {memory_sizes[0]:,} rows: {b / a:.2f}×."]
    _write_section("e2e", "text", lines, results)


# ------------------------------------------------------------------------------------------------ detection on text
DETECT_RANKINGS = [  # (label, method, method settings, impact settings): the rankings of bench/detect.py
    ("loss", "loss", {}, {}), ("margin", "margin", {}, {}), ("confident_learning", "confident_learning", {}, {}),
    ("ip", "ip", {}, {"val_trim": 0.1}), ("ip_ensemble", "ip_ensemble", {}, {"val_trim": 0.1}),
    ("ip_classwise", "ip_classwise", {}, {"val_trim": 0.1}), ("ip_combined", "ip_combined", {}, {"val_trim": 0.1}),
    ("tracin", "tracin", {}, {"val_trim": 0.1}), ("self_tracin", "self_tracin", {}, {}),
    ("gex", "gex", {}, {"val_trim": 0.1}), ("datainf", "datainf", {}, {"val_trim": 0.1}),
    ("ekfac", "ekfac", {}, {"val_trim": 0.1}), ("lissa", "lissa", {"depth": 100}, {"val_trim": 0.1}),
    ("tda", "tda", {}, {"val_trim": 0.1}),
]


def _detection(noisy: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    k = max(1, int(round(FLAG_SHARE * len(scores))))
    lowest = np.argsort(scores, kind="stable")[:k]
    return {"auroc": float(roc_auc_score(noisy, -scores)), "p_at_5": float(noisy[lowest].mean())}


def anchor_scores(texts: list[str], labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The issue's anchor, all by scikit-learn and cleanlab directly: TF-IDF (1–2-grams) + LogisticRegression;
    cleanlab's label quality on 5-fold out-of-fold probabilities, and the in-sample loss."""
    from cleanlab.rank import get_label_quality_scores
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000))
    oof = cross_val_predict(pipe, texts, labels, cv=5, method="predict_proba")
    pipe.fit(texts, labels)
    p = pipe.predict_proba(texts)
    return {"anchor: cleanlab (5-fold OOF)": get_label_quality_scores(labels, oof),
            "anchor: in-sample loss": np.log(p[np.arange(len(labels)), labels] + 1e-12)}


def bench_detect_text(seeds: list[int], n_train: int) -> None:
    from influence_core.api import compute_scores
    from influence_core.data.prepare import with_label_noise
    from influence_core.data.text import generated_text_frame, text_dataset
    from influence_core.models import TrainConfig, train_model

    rows: dict[str, list[dict]] = {}
    for seed in seeds:
        n = int(n_train / 0.64)  # 20% test, 20% of the rest validation: n_train training rows
        frame = generated_text_frame(n, num_classes=5, seed=seed)
        ds = text_dataset(frame, text_columns=["text"], label_column="label", name="detect-text", seed=seed)
        ds = with_label_noise(ds, 0.1, seed=seed, include_val=True)  # validation from the same noisy file
        noisy = ds.noise_mask.numpy()
        fitted = train_model(ds, "text-linear", TrainConfig(seed=seed, checkpoint_every=1))
        for label, method, settings, impact in DETECT_RANKINGS:
            t0 = time.process_time()
            s = compute_scores(ds, fitted, method, impact_settings=impact, **settings)
            rows.setdefault(label, []).append({**_detection(noisy, s), "cpu_s": time.process_time() - t0})
            print(f"seed {seed} {label}: {rows[label][-1]}", flush=True)
        t0 = time.process_time()
        for label, s in anchor_scores(ds.texts["train"], ds.train.y.numpy(), seed).items():
            rows.setdefault(label, []).append({**_detection(noisy, s), "cpu_s": time.process_time() - t0})
        print(f"seed {seed}: test accuracy {fitted.metrics['test_accuracy']:.3f}", flush=True)
    med = {k: {m: float(np.median([r[m] for r in v])) for m in v[0]} for k, v in rows.items()}
    lines = [f"## Detection on generated text ({n_train:,} training documents, 5 topics, 10% of training and "
             "validation labels moved; text-linear on TF-IDF 1–2-grams)", "",
             f"Machine: {machine()}. Median over seeds {seeds}. Lower score = more suspect. The anchor is "
             "scikit-learn + cleanlab called directly (no influence_core code).", "",
             "| ranking | AUROC | precision@5% | CPU s |", "|---|---|---|---|"]
    for label, m in sorted(med.items(), key=lambda kv: -kv[1]["auroc"]):
        lines.append(f"| {label} | {m['auroc']:.3f} | {m['p_at_5']:.3f} | {m['cpu_s']:.1f} |")
    _write_section("detect_text", None, lines, {"median": med, "per_seed": rows})


def _write_section(stem: str, section: str | None, lines: list[str], data) -> None:
    """Write (or replace) ``section`` of bench/results/<stem>.md and .json (the whole file when None)."""
    md, js = RESULTS / f"{stem}.md", RESULTS / f"{stem}.json"
    if section is None:
        md.write_text("\n".join(lines) + "\n")
        js.write_text(json.dumps(data, indent=1))
        return
    start, end = f"<!-- {section} -->", f"<!-- /{section} -->"
    text = md.read_text() if md.exists() else "# End to end: upload → flagged list (bench/e2e.py)\n"
    block = "\n".join([start, *lines, end])
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text)
    stored = json.loads(js.read_text()) if js.exists() else {}
    stored[section] = data
    js.write_text(json.dumps(stored, indent=1))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["text", "detect_text"])
    p.add_argument("--rows", type=int, default=100_000, help="text: rows of the end-to-end run")
    p.add_argument("--memory-sizes", type=int, nargs="*", default=[10_000, 50_000], help="text: sizes compared for memory")
    p.add_argument("--max-features", type=int, default=TEXT_MAX_FEATURES)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-train", type=int, default=2_000, help="detect_text: training documents")
    args = p.parse_args(argv)
    if args.part == "text":
        bench_text(args.rows, args.memory_sizes, args.max_features)
    else:
        bench_detect_text(args.seeds, args.n_train)


if __name__ == "__main__":
    main()
