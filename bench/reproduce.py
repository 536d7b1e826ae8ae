"""Reproduce the paper's clean-and-retrain results at CPU scale (Tables 1–2, Figs. 5–6), writing
bench/results/reproduce.md and reproduce.json.

    python bench/reproduce.py            # Adult + Bank (logistic regression), CIFAR-10N subset (small CNN)
    python bench/reproduce.py --quick    # blobs + moons only (minutes; for checking the pipeline)
    python bench/reproduce.py --counterfactual   # paper Section 6 on generated text (its section of reproduce.md)

Tabular: trim 5% by each method (utility impact and fairness impact) — test accuracy and fairness gap; then the
robustness setting of Table 2 — trim, relabel and reweight 5% by robustness influence, accuracy under 10 random
attacks on 5–25% of the test set crafted against the full-data model. CIFAR-10N (worst and aggregate labels):
trim 5% by IP, IP Ensemble, Self-TracIn, LiSSA (and the random control), test accuracy. Every setting is run
through `influence_core.evaluate.run_experiment`; finished runs are cached, so an interrupted bench resumes.
Methods not registered in this checkout are listed as missing, not silently dropped. Scores: lower = more
detrimental.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from influence_core.api import compute_scores  # noqa: E402
from influence_core.data.registry import DATASETS, load_dataset  # noqa: E402
from influence_core.evaluate.retrain import AttackSettings, evaluate_module, retrain_and_evaluate  # noqa: E402
from influence_core.evaluate.runner import ExperimentResult, ExperimentSettings, format_table, run_experiment  # noqa: E402
from influence_core.methods import METHODS  # noqa: E402
from influence_core.models.train import TrainConfig, train_model  # noqa: E402

# Paper Table 2 lists these for logistic regression (TracIn/GEX equal IP and TDA equals EKFAC for a convex model).
TABULAR_METHODS = ("lissa", "ekfac", "datainf", "self_tracin", "self_lissa", "ip", "ip_ensemble")
CIFAR_METHODS = ("ip", "ip_ensemble", "self_tracin", "lissa")
QUICK_METHODS = ("exact", "lissa", "ekfac", "datainf", "self_tracin", "ip", "ip_ensemble")
# Fewer LiSSA iterations than the library defaults (1000 / 200): a 2-core machine shared with others.
TABULAR_METHOD_SETTINGS = {"lissa": {"depth": 200}, "self_lissa": {"depth": 50, "sample_chunk": 1024}}
CIFAR_METHOD_SETTINGS = {"lissa": {"depth": 100}}


@dataclass
class Bench:
    title: str
    settings: ExperimentSettings


def _methods(wanted: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    have = tuple(m for m in wanted if m in METHODS)
    return have, [m for m in wanted if m not in METHODS]


def _action_name(action: str, upweight: bool = True) -> str:
    if action == "reweight":
        return "reweight (softmax, T=1)" if upweight else "reweight (softmax, T=1, down-weight only)"
    return f"{action} 5%"


def plan(args: argparse.Namespace) -> list[Bench]:
    out: list[Bench] = []
    seeds = args.seeds
    if args.quick:
        methods, _ = _methods(QUICK_METHODS)
        for ds, model in (("blobs", "logreg"), ("moons", "mlp")):
            out.append(Bench(f"{ds} / {model}: trim 5% by utility influence",
                             ExperimentSettings(ds, model, methods, "trim", 0.05, seeds, "utility",
                                                attacks=AttackSettings(n_attacks=5))))
        for action, up in (("trim", True), ("relabel", True), ("reweight", True), ("reweight", False)):
            out.append(Bench(f"blobs / logreg: {_action_name(action, up)} by robustness influence (Table 2 setting)",
                             ExperimentSettings("blobs", "logreg", methods, action, 0.05, seeds, "robustness",
                                                attacks=AttackSettings(n_attacks=10), upweight=up)))
        return out

    methods, _ = _methods(TABULAR_METHODS)
    tab = dict(method_settings={k: v for k, v in TABULAR_METHOD_SETTINGS.items() if k in methods})
    for ds in ("adult", "bank"):
        if ds not in DATASETS:
            continue
        kwargs = {"max_rows": args.max_rows} if args.max_rows else {}
        for impact in ("utility", "fairness"):
            out.append(Bench(f"{ds} / logreg: trim 5% by {impact} influence (Fig. 5 setting)",
                             ExperimentSettings(ds, "logreg", methods, "trim", 0.05, seeds, impact, dataset_kwargs=kwargs,
                                                attacks=AttackSettings(n_attacks=10), **tab)))
        for action, up in (("trim", True), ("relabel", True), ("reweight", True), ("reweight", False)):
            out.append(Bench(f"{ds} / logreg: {_action_name(action, up)} by robustness influence (Table 2 setting)",
                             ExperimentSettings(ds, "logreg", methods, action, 0.05, seeds, "robustness", upweight=up,
                                                dataset_kwargs=kwargs, attacks=AttackSettings(n_attacks=10), **tab)))
    if "cifar10n" in DATASETS:
        cifar, _ = _methods(CIFAR_METHODS)
        for label_set in ("worst", "aggregate"):
            kwargs = {"label_set": label_set}
            if args.cifar_max_train:
                kwargs["max_train"] = args.cifar_max_train
            out.append(Bench(f"CIFAR-10N-{label_set} subset / cnn: trim 5% by utility influence (Table 1 setting)",
                             ExperimentSettings("cifar10n", "cnn", cifar, "trim", 0.05, seeds, "utility",
                                                dataset_kwargs=kwargs, train=TrainConfig(epochs=args.cifar_epochs or None),
                                                attacks=AttackSettings(n_attacks=0), params=args.cifar_params,
                                                method_settings={k: v for k, v in CIFAR_METHOD_SETTINGS.items() if k in cifar})))
    return out


def verdict(result: ExperimentResult, metric: str) -> str:
    """One honest line: who has the best mean ``metric`` (ties listed) and where IP / IP Ensemble / full /
    random rank (tied values share a rank)."""
    rows = {k: r for k, r in result.rows.items() if r.get(metric)}
    if not rows:
        return ""
    sign = -1.0 if metric == "fairness_gap" else 1.0  # a smaller gap is better
    value = {k: sign * round(rows[k][metric]["mean"], 6) for k in rows}
    top = max(value.values())
    best = ", ".join(rows[k]["label"] for k in rows if value[k] == top)

    def rank(k: str) -> str:
        return f"{1 + sum(v > value[k] for v in value.values())}/{len(value)}" if k in value else "–"

    return (f"{metric.replace('_', ' ')}: best = {best}; IP rank {rank('ip')}, IP Ensemble rank {rank('ip_ensemble')}, "
            f"full rank {rank('full')}, random rank {rank('random')}")


# --- paper Section 6: counterfactual fairness on text (issue 18 §2) -------------------------------------------
CF_SECTION = "## Counterfactual fairness on text (paper Section 6 at CPU scale)"
# The rankings compared: one impact each, the joint rank average, and the joint sum of unit gradients (the
# alternative the rank average is measured against).
CF_ARMS = (("utility", {}), ("counterfactual", {}), ("utility+counterfactual", {}),
           ("utility+counterfactual", {"combine": "gradient"}), ("fairness", {}), ("utility+fairness", {}))


def counterfactual_rows(seeds: int, load, model: str = "text-linear", method: str = "ip", arms=CF_ARMS,
                        train: TrainConfig = TrainConfig()) -> dict[str, list[dict]]:
    """Per data seed: ``load(seed)`` a data set, train ``model`` once, trim the lowest 5% by ``method`` against each
    ranking of ``arms`` (and a random 5%), retrain with the same seed and evaluate on test (accuracy, fair score,
    fairness gap) — the runner's steps (`evaluate_module`, `retrain_and_evaluate`) with one base model for all arms."""
    rows: dict[str, list[dict]] = {}

    def keep(name: str, metrics: dict) -> None:
        rows.setdefault(name, []).append({k: metrics.get(k) for k in ("accuracy", "fair_score", "fairness_gap")})

    for seed in range(seeds):
        dataset = load(seed)
        config = replace(train, seed=seed)
        base = train_model(dataset, model, config)
        n = len(dataset.train)
        k = int(0.05 * n)

        def without(remove) -> dict:
            kept = np.setdiff1d(np.arange(n), remove)
            return retrain_and_evaluate(dataset.with_train(dataset.train.subset(kept)), model, config, seed,
                                        attacks=AttackSettings(n_attacks=0))

        keep("full", evaluate_module(base.module, dataset, AttackSettings(n_attacks=0)))
        keep("random", without(np.random.default_rng(seed).choice(n, k, replace=False)))
        for impact, impact_settings in arms:
            scores = compute_scores(dataset, base, method, impact, impact_settings=impact_settings)
            label = f"{method.upper()} by {impact}" + (" (sum of unit gradients)" if impact_settings else "")
            keep(label, without(np.argsort(scores, kind="stable")[:k]))
    return rows


def counterfactual_table(rows: dict[str, list[dict]]) -> list[str]:
    """Markdown rows: mean ± std over data seeds, accuracy in %, fair score and fairness gap ×100."""
    def cell(values: list, scale: float) -> str:
        vals = [v for v in values if v is not None]
        return "–" if not vals else f"{scale * np.mean(vals):.2f} ± {scale * np.std(vals, ddof=1 if len(vals) > 1 else 0):.2f}"

    out = ["| trimmed by | test accuracy (%) | fair score (×100, lower = fairer) | fairness gap (×100) |",
           "|---|---|---|---|"]
    for name, runs in rows.items():
        out.append(f"| {name} | {cell([r['accuracy'] for r in runs], 100)} | "
                   f"{cell([r['fair_score'] for r in runs], 100)} | {cell([r['fairness_gap'] for r in runs], 100)} |")
    return out


def counterfactual_section(args: argparse.Namespace) -> list[str]:
    """The Section 6 experiment: text-shortcut (training labels follow gender 20% of the time) with text-linear."""
    t0 = time.perf_counter()
    lines = [CF_SECTION, "",
             f"text-shortcut (1,000 train / 300 val / 300 test generated sentences; 20% of training labels follow "
             f"gender, validation and test labels do not; twins by the shipped word-swap list), model text-linear "
             f"(TF-IDF + logistic regression). Trim 5% by IP against each ranking, retrain; mean ± std over "
             f"{args.seeds} generated data sets (data seeds 0..{args.seeds - 1}). Fair score = mean |p(y=1|x) − "
             f"p(y=1|x̃)| on test; fairness gap = demographic parity between the gender groups on test.", ""]
    rows = counterfactual_rows(args.seeds, lambda seed: load_dataset("text-shortcut", seed=seed))
    lines += counterfactual_table(rows) + [""] + _cf_verdicts(rows, args.seeds)
    lines += ["", f"({time.perf_counter() - t0:.0f} s on {torch.get_num_threads()} thread(s), CPU)", ""]
    if args.cf_transformer:
        t0 = time.perf_counter()
        lines += [f"### The same with a small transformer (hf:, {args.cf_transformer_epochs} epochs from random "
                  "initialisation)", "",
                  "A 2-layer BERT (hidden 32, 2 heads) built from a config with random weights, a word-level tokenizer "
                  "trained on the set's own sentences and their twins (nothing downloaded), fine-tuned in full with AdamW "
                  "(lr 1e-3, 16 tokens); IP on all its parameters. Arms: utility, counterfactual, their rank average.", ""]
        folder = Path(args.out_dir) / ".cache" / "tiny-bert-text-shortcut"
        rows = counterfactual_rows(args.seeds, lambda seed: _shortcut_as_tokens(seed, folder), f"hf:{folder}",
                                   arms=CF_ARMS[:3], train=TrainConfig(epochs=args.cf_transformer_epochs, lr=1e-3,
                                                                       patience=0))
        lines += counterfactual_table(rows) + [""] + _cf_verdicts(rows, args.seeds)
        lines += ["- Each arm is one retraining per data seed of a non-convex model: read the differences against the "
                  "full-vs-random one, which is retraining noise alone.",
                  "", f"({time.perf_counter() - t0:.0f} s on {torch.get_num_threads()} thread(s), CPU)", ""]
    return lines


def _cf_verdicts(rows: dict[str, list[dict]], seeds: int) -> list[str]:
    fair = {name: np.array([r["fair_score"] for r in runs]) for name, runs in rows.items()}
    acc = {name: np.mean([r["accuracy"] for r in runs]) for name, runs in rows.items()}
    best = min(fair, key=lambda k: fair[k].mean())
    wins = int((fair["IP by counterfactual"] < fair["random"]).sum())
    return [f"- Lowest fair score: {best} ({100 * fair[best].mean():.2f}, accuracy {100 * acc[best]:.2f}%).",
            f"- Trimming by counterfactual IP gives a lower test fair score than random trimming on {wins}/{seeds} "
            f"data seeds."]


def _shortcut_as_tokens(seed: int, folder: Path):
    """text-shortcut (same sentences as the registered set) as token ids of a tiny random-init BERT in ``folder``."""
    from influence_core.data.perturb import default_perturber
    from influence_core.data.synthetic_text import shortcut_text_frame
    from influence_core.data.text import text_dataset
    from influence_core.models.hf import TokenSettings

    frames = [shortcut_text_frame(n, seed=seed + off, shortcut=sc) for n, off, sc in
              ((1000, 0, 0.2), (300, 10_000, 0.0), (300, 20_000, 0.0))]
    if not (folder / "config.json").exists():
        from tests.models.test_hf import _write_tiny_bert  # the tests' offline tiny BERT, at hidden size 32

        folder.mkdir(parents=True, exist_ok=True)
        _write_tiny_bert(folder, texts=[t for f in frames for t in f.text] + default_perturber().perturb_all(frames[0].text),
                         hidden_size=32)
    return text_dataset(*frames, text_columns=["text"], label_column="label", sensitive_column="gender",
                        perturber=default_perturber(), features="hf", featurizer_settings=TokenSettings(str(folder), 16),
                        name="text-shortcut-hf", seed=seed)


def splice_section(path: Path, header: str, lines: list[str]) -> None:
    """Replace the section starting at ``header`` in the markdown file (up to the next "## " heading), or append it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    start = text.find(header)
    block = "\n".join(lines).rstrip() + "\n"
    if start < 0:
        text = text.rstrip() + "\n\n" + block if text else block
    else:
        nxt = text.find("\n## ", start + len(header))
        text = text[:start] + block + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="blobs and moons only")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-rows", type=int, default=0, help="Adult / Bank: subsample the data file (0 = all)")
    p.add_argument("--cifar-epochs", type=int, default=0, help="CNN epochs (0 = the architecture default, 15)")
    p.add_argument("--cifar-max-train", type=int, default=0, help="CIFAR-10N: images of the 4,000 used (0 = all)")
    p.add_argument("--cifar-params", default="all", help="parameters CIFAR scores use: all or head")
    p.add_argument("--budget-minutes", type=float, default=25.0,
                   help="stop starting new runs after this long (a busy shared machine: try --max-rows 10000 "
                        "--cifar-max-train 1500 --cifar-epochs 3 --cifar-params head)")
    p.add_argument("--only", default="", help="run only experiments whose title contains this text")
    p.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    p.add_argument("--counterfactual", action="store_true",
                   help="only the Section 6 text experiment: (re)write its section of reproduce.md")
    p.add_argument("--cf-transformer", action="store_true", help="--counterfactual: also with a tiny transformer (hf:)")
    p.add_argument("--cf-transformer-epochs", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    if args.counterfactual:
        lines = counterfactual_section(args)
        splice_section(Path(args.out_dir) / "reproduce.md", CF_SECTION, lines)
        print("\n".join(lines))
        return 0

    out_dir = Path(args.out_dir)
    cache = out_dir / ".cache"
    name = "reproduce_quick" if args.quick else "reproduce"
    wanted = QUICK_METHODS if args.quick else tuple(dict.fromkeys(TABULAR_METHODS + CIFAR_METHODS))
    _, missing = _methods(wanted)
    lines = [f"# Clean, retrain, compare ({'quick: synthetic data' if args.quick else 'paper Tables 1-2 at CPU scale'})", "",
             f"{platform.node() or 'machine'}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU. "
             f"Seeds per row: {args.seeds}. Scores: lower = more detrimental; each method flags the lowest 5%.",
             "`full` = trained on everything; `random` = the same action on a random 5% (the control). Accuracy and "
             "attacked accuracy in %, fairness gap (demographic parity on test) ×100, mean ± std over seeds "
             "(attacked: over seeds × attacks). Logistic regression trains by L-BFGS, deterministically: its seeds "
             "differ only for `random`.", ""]
    if missing:
        lines += [f"Not registered in this checkout (skipped): {', '.join(missing)}.", ""]
    reductions = [f"Adult's training file and Bank's whole file subsampled to {args.max_rows} rows (Adult keeps "
                  f"its full test file)"] if args.max_rows and not args.quick else []
    if args.cifar_epochs and not args.quick:
        reductions.append(f"CNN trained {args.cifar_epochs} epochs")
    if args.cifar_max_train and not args.quick:
        reductions.append(f"CIFAR-10N: {args.cifar_max_train} training images")
    if args.cifar_params != "all" and not args.quick:
        reductions.append(f"CIFAR scores on the '{args.cifar_params}' parameters only")
    if reductions:
        lines += ["Reduced for this machine: " + "; ".join(reductions) + ".", ""]
    if not args.quick:
        lines += ["LiSSA depth 200 and Self-LiSSA depth 50 on Adult/Bank, LiSSA depth 100 on CIFAR (library defaults "
                  "1000 / 200).", ""]
    records = []
    t_all = time.perf_counter()

    def over_budget() -> bool:
        return time.perf_counter() - t_all > 60 * args.budget_minutes

    for bench in plan(args):
        if args.only and args.only not in bench.title:
            continue
        if over_budget():
            lines += [f"## {bench.title}", "", "Not run: over the time budget (rerun to resume).", ""]
            continue
        print(f"== {bench.title}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        last = {"msg": ""}

        def progress(f: float, m: str) -> None:
            if m != last["msg"]:
                last["msg"] = m
                print(f"  [{f:4.0%}] {m} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

        slug = re.sub(r"[^A-Za-z0-9]+", "_", bench.title.split("(Table")[0].split("(Fig")[0]).strip("_")
        result = run_experiment(bench.settings, cache / f"{slug}.json",
                                journal=cache / "journal.jsonl", progress=progress, should_stop=over_budget)
        seconds = time.perf_counter() - t0
        table = format_table(result).split("\n", 2)[2]
        lines += [f"## {bench.title}", "", f"({seconds:.0f} s; {len(result.dataset.train)} training samples, "
                  f"{len(result.dataset.test)} test)", "", table, ""]
        metrics = ["accuracy"] + (["fairness_gap"] if (result.rows.get("full") or {}).get("fairness_gap") else [])
        if bench.settings.attacks.n_attacks:
            metrics.append("attacked_accuracy")
        lines += [f"- {verdict(result, m)}" for m in metrics] + [""]
        records.append({"title": bench.title, "seconds": seconds, **result.to_json()})
    lines.append(f"Total: {time.perf_counter() - t_all:.0f} s (budget {args.budget_minutes:.0f} min; finished runs are "
                 f"cached in {cache.relative_to(ROOT) if cache.is_relative_to(ROOT) else cache}, a rerun resumes).")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    (out_dir / f"{name}.json").write_text(json.dumps({"experiments": records, "missing_methods": missing}, indent=2, default=str))
    print("\n".join(lines))
    print(f"wrote {out_dir / (name + '.md')} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
