"""Bench (issue 17): influence-guided fairness and robustness against the tools a practitioner would pick instead.

Adult (the product's loader, test = adult.test), logistic regression, three data seeds: the full model, IP's
trim / relabel by the fairness and equalised-odds impacts, joint utility + fairness rankings, influence within the
Kamiran–Calders cells (and, as its control, random samples within the same cells), Kamiran–Calders reweighing, and
fairlearn's ExponentiatedGradient and ThresholdOptimizer (DP and EO), each swept. Bank: trimming by the robustness
impact against adversarial training, attacked accuracy (attacks crafted against the full model) at clean accuracy.
Medians over the data seeds; the fronts go to bench/results/fairness.csv, the chart to fairness.png, the table to
fairness.md.

    OMP_NUM_THREADS=1 python bench/fairness.py            # ≈ 10 minutes on one core
    python bench/fairness.py --quick                       # one seed, a few arms, a smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine  # noqa: E402
from influence_core.api import compute_scores  # noqa: E402
from influence_core.data import load_dataset  # noqa: E402
from influence_core.errors import InfluenceError  # noqa: E402
from influence_core.evaluate.actions import ActionSettings, apply_action, most_detrimental  # noqa: E402
from influence_core.evaluate.baselines import (ARMS, best_arm_sentence, fit_arm, positive_rate_metrics,  # noqa: E402
                                               within_cell_selection)
from influence_core.evaluate.retrain import AttackSettings, craft_attacks, evaluate_module  # noqa: E402
from influence_core.models import TrainConfig, train_model  # noqa: E402

SEEDS = (0, 1, 2)
FRACTIONS = (0.05, 0.075, 0.1, 0.2)
BANK_FRACTIONS = (0.05, 0.1, 0.2)
STRENGTHS = (0.5, 1.0, 1.25, 1.5, 2.0, 3.0)
CONFIG = TrainConfig().resolved("logreg")


def _metrics(positive, split) -> dict:
    return positive_rate_metrics(positive(split), split.y.numpy(), split.sensitive.numpy())


def _module_metrics(module, dataset) -> dict:
    """Hard test accuracy (as the runner reports it) and the soft DP / EO gaps of the positive probability."""
    with torch.no_grad():
        p = torch.sigmoid(module.eval()(dataset.test.x)[:, 0]).double().numpy()
    out = positive_rate_metrics(p, dataset.test.y.numpy(), dataset.test.sensitive.numpy())
    out["accuracy"] = float(np.mean((p > 0.5) == (dataset.test.y.numpy() == 1)))
    return out


def _retrain(dataset, weight=None):
    return train_model(dataset, "logreg", CONFIG, sample_weight=weight).module


def _scores(dataset, base, impact: str) -> np.ndarray | None:
    try:
        return np.asarray(compute_scores(dataset, base, "ip", impact), dtype=np.float64)
    except InfluenceError as err:  # e.g. a joint ranking before it exists on this branch
        print(f"  skipped {impact}: {err}")
        return None


def constrained(fair: np.ndarray, utility: np.ndarray) -> np.ndarray:
    """The most fairness-detrimental samples among those that do not help the validation loss (utility score
    ≤ 0; lower = more detrimental): others are pushed behind them."""
    return np.where(utility <= 0, fair, fair - fair.min() + 1.0 + np.abs(fair).max())


def adult_seed(seed: int, quick: bool) -> list[dict]:
    d = load_dataset("adult", seed=seed)
    base = train_model(d, "logreg", CONFIG)
    rows: list[dict] = []

    def add(family: str, setting, metrics: dict, group: str) -> None:
        rows.append({"data": "adult", "seed": seed, "family": family, "setting": setting, "group": group,
                     **{k: metrics[k] for k in ("accuracy", "fairness_gap", "equalized_odds_gap")}})

    add("full data", "", _module_metrics(base.module, d), "reference")
    scores = {"fairness": _scores(d, base, "fairness"), "equalized_odds": _scores(d, base, "equalized_odds"),
              "utility": _scores(d, base, "utility")}
    for joint in ("utility+fairness", "utility+equalized_odds"):  # rank averages (None before joint impacts exist)
        sc = _scores(d, base, joint)
        if sc is not None:
            scores[joint] = sc
    scores["fairness, utility ≤ 0"] = constrained(scores["fairness"], scores["utility"])
    y, s = d.train.y.numpy(), d.train.sensitive.numpy()
    for impact, sc in scores.items():
        if impact == "utility":
            continue
        for frac in FRACTIONS[:1] if quick else FRACTIONS:
            act = apply_action("trim", d, sc, ActionSettings(fraction=frac))
            add(f"IP trim ({impact})", frac, _module_metrics(_retrain(act.dataset), d), "influence")
            if impact == "fairness" and frac in (0.1, 0.2):
                act = apply_action("relabel", d, sc, ActionSettings(fraction=frac))
                add("IP relabel (fairness)", frac, _module_metrics(_retrain(act.dataset), d), "influence")
    if not quick:
        first = most_detrimental(scores["fairness"], 0.05)
        cells = {f"s={a},y={b}": int(((s[first] == a) & (y[first] == b)).sum()) for a in (0, 1) for b in (0, 1)}
        print(f"  seed {seed}: IP's 5% by cell {cells}")
    rng = np.random.default_rng(seed)
    within = {"fairness": scores["fairness"], "equalized_odds": scores["equalized_odds"],
              "random (control)": rng.standard_normal(len(y))}
    for strength in STRENGTHS[:2] if quick else STRENGTHS:
        for name, sc in within.items():
            keep, weight = within_cell_selection(y, s, sc, strength)
            add(f"within cells ({name})", strength, _module_metrics(_retrain(d.with_train(d.train.subset(keep)), weight), d),
                "influence" if "random" not in name else "baseline")
        add("reweighing", strength, _module_metrics(fit_arm(f"reweighing@{strength}", d, base, CONFIG, 0).module, d), "baseline")
    for family in ("eg_dp", "threshold_dp", "eg_eo", "threshold_eo"):
        for value in ARMS[family].sweep[1:2] if quick else ARMS[family].sweep:
            t0 = time.perf_counter()
            arm = fit_arm(f"{family}@{value:g}", d, base, CONFIG, 0)
            add(ARMS[family].label, value, _metrics(arm.positive, d.test), "baseline")
            print(f"  seed {seed}: {family}@{value:g} in {time.perf_counter() - t0:.1f} s")
    return rows


def bank_seed(seed: int, quick: bool) -> list[dict]:
    d = load_dataset("bank", seed=seed)
    base = train_model(d, "logreg", CONFIG)
    attacks = AttackSettings()
    crafted = craft_attacks(base.module, d.test, attacks)
    rows = []

    def add(family, setting, module):
        m = evaluate_module(module, d, attacks, crafted)
        rows.append({"data": "bank", "seed": seed, "family": family, "setting": setting,
                     "accuracy": m["accuracy"], "attacked_accuracy": m["attacked_accuracy"]})

    add("full data", "", base.module)
    sc = _scores(d, base, "robustness")
    for frac in BANK_FRACTIONS[:1] if quick else BANK_FRACTIONS:
        add("IP trim (robustness)", frac, _retrain(apply_action("trim", d, sc, ActionSettings(fraction=frac)).dataset))
        add("IP relabel (robustness)", frac, _retrain(apply_action("relabel", d, sc, ActionSettings(fraction=frac)).dataset))
    for share in ARMS["adversarial"].sweep[:1] if quick else ARMS["adversarial"].sweep:
        add("adversarial training", share, fit_arm(f"adversarial@{share:g}", d, base, CONFIG, 0, attacks).module)
    return rows


def medians(runs: list[dict], metrics: tuple[str, ...]) -> list[dict]:
    """One row per (data, family, setting): the median of each metric over the seeds."""
    keyed: dict[tuple, list[dict]] = {}
    for r in runs:
        keyed.setdefault((r["data"], r["family"], str(r["setting"]), r.get("group", "")), []).append(r)
    out = []
    for (data, family, setting, group), rs in keyed.items():
        row = {"data": data, "family": family, "setting": setting, "group": group, "seeds": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if r.get(m) is not None]
            row[m] = float(np.median(vals)) if vals else None
        out.append(row)
    return out


def front(rows: list[dict], metric: str, lower: bool = True) -> list[dict]:
    """The Pareto-optimal rows (no other row at least as accurate with a better ``metric``)."""
    def better(a, b):
        return a["accuracy"] >= b["accuracy"] and (a[metric] <= b[metric] if lower else a[metric] >= b[metric]) and a is not b

    return [r for r in rows if not any(better(o, r) and (o["accuracy"] > r["accuracy"] or o[metric] != r[metric]) for o in rows)]


def best_at(rows: list[dict], level: float, metric: str, group: str | None = None, family: str | None = None) -> dict | None:
    cands = [r for r in rows if 100 * r["accuracy"] >= level and r.get(metric) is not None
             and (group is None or r["group"] == group) and (family is None or r["family"] == family)]
    return min(cands, key=lambda r: r[metric]) if cands else None


def sentence_rows(rows: list[dict], metric: str) -> dict:
    """The medians as runner-style rows, for `best_arm_sentence`."""
    return {f"{r['family']} {r['setting']}".strip(): {"label": r["family"], "accuracy": {"mean": r["accuracy"]},
                                                       metric: {"mean": r[metric]}}
            for r in rows if r.get(metric) is not None}


def chart(adult: list[dict], bank: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    colours = plt.get_cmap("tab20").colors
    for ax, (rows, metric, title) in zip(axes, ((adult, "fairness_gap", "Adult: DP gap ×100 (lower = fairer)"),
                                                  (adult, "equalized_odds_gap", "Adult: EO gap ×100"),
                                                  (bank, "attacked_accuracy", "Bank: attacked accuracy %"))):
        for i, family in enumerate(dict.fromkeys(r["family"] for r in rows)):
            mine = [r for r in rows if r["family"] == family and r.get(metric) is not None and r["accuracy"] >= 0.8]
            pts = sorted((100 * r["accuracy"], 100 * r[metric]) for r in mine)
            if pts:  # influence-guided arms solid, the baselines dashed
                ax.plot(*zip(*pts), marker="o" if len(pts) > 1 else "X", label=family, lw=1.2, color=colours[i % 20],
                        ls="-" if mine[0].get("group") != "baseline" else "--", ms=5 if len(pts) > 1 else 10)
        ax.set_xlabel("test accuracy % (≥ 80 shown)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if metric != "attacked_accuracy":
            ax.invert_yaxis()
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(v, scale=100.0):
    return "–" if v is None else f"{scale * v:.2f}"


def report(adult: list[dict], bank: list[dict], seconds: float, quick: bool) -> str:
    lines = ["# Fairness and robustness against the baselines a practitioner would pick (issue 17)", "",
             f"`python bench/fairness.py`{' --quick' if quick else ''}: medians over data seeds "
             f"{', '.join(map(str, SEEDS[:1] if quick else SEEDS))}, logistic regression (L-BFGS, L2 1e-2), "
             f"{seconds / 60:.1f} min on {machine()['device']}. Accuracy of a retrained model is its test accuracy; of "
             "fairlearn's randomised classifiers the expected test accuracy. Gaps ×100 of the positive probability "
             "(the product's definition): DP = |E[p̂|s=0] − E[p̂|s=1]|, EO = |ΔTPR| + |ΔFPR|. "
             "Fronts: `fairness.csv`; chart: `fairness.png`.", "",
             "## Adult", "", "| arm | setting | test accuracy % | DP gap ×100 | EO gap ×100 |", "|---|---|---|---|---|"]
    for r in adult:
        lines.append(f"| {r['family']} | {r['setting']} | {fmt(r['accuracy'])} | {fmt(r['fairness_gap'])} | {fmt(r['equalized_odds_gap'])} |")
    lines += ["", "Best arm at each accuracy (computed by `best_arm_sentence`, the sentence Evaluate shows):", "",
              "- DP: " + (best_arm_sentence(sentence_rows(adult, "fairness_gap"), "fairness_gap", [84, 83.5, 83, 82]) or "–"),
              "- EO: " + (best_arm_sentence(sentence_rows(adult, "equalized_odds_gap"), "equalized_odds_gap", [84, 83.5, 83, 82]) or "–"),
              "", "Targets:", ""]
    for level, metric in ((83.0, "fairness_gap"), (84.0, "fairness_gap"), (83.0, "equalized_odds_gap"), (84.0, "equalized_odds_gap")):
        inf, base = best_at(adult, level, metric, "influence"), best_at(adult, level, metric, "baseline")
        lines.append(f"- {metric.replace('_', ' ')} at ≥ {level:g}% accuracy: best influence-guided arm "
                     f"{inf['family'] + ' ' + str(inf['setting']) + ' (' + fmt(inf[metric]) + ')' if inf else '–'}; "
                     f"best baseline {base['family'] + ' ' + str(base['setting']) + ' (' + fmt(base[metric]) + ')' if base else '–'}.")
    by = {(r["family"], str(r["setting"])): r for r in adult}
    lines += ["", "Does influence matter inside the cells? The same number of samples leaves each cell, chosen by "
              "influence or at random (the control), at equal strength:", ""]
    for strength in STRENGTHS:
        inf, ctl = by.get(("within cells (fairness)", str(strength))), by.get(("within cells (random (control))", str(strength)))
        if inf and ctl:
            lines.append(f"- strength {strength:g}: accuracy {fmt(inf['accuracy'] - ctl['accuracy'])} points, "
                         f"DP gap {fmt(inf['fairness_gap'] - ctl['fairness_gap'])} points (influence − random)")
    lines += ["", "## Bank robustness", "", "| arm | setting | clean accuracy % | attacked accuracy % |", "|---|---|---|---|"]
    for r in bank:
        lines.append(f"| {r['family']} | {r['setting']} | {fmt(r['accuracy'])} | {fmt(r['attacked_accuracy'])} |")
    lines += ["", "- " + (best_arm_sentence(sentence_rows(bank, "attacked_accuracy"), "attacked_accuracy") or "–")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--from-json", action="store_true", help="rewrite the table, CSV and chart from the saved runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    seeds = SEEDS[:1] if args.quick else SEEDS
    runs = []
    name = "fairness_quick" if args.quick else "fairness"
    if args.from_json:
        saved = json.loads((RESULTS / f"{name}.json").read_text())
        runs, t0 = saved["runs"], t0 - saved["seconds"]
    for seed in [] if args.from_json else seeds:
        print(f"adult seed {seed} …", flush=True)
        runs += adult_seed(seed, args.quick)
        print(f"bank seed {seed} …", flush=True)
        runs += bank_seed(seed, args.quick)
    adult = medians([r for r in runs if r["data"] == "adult"], ("accuracy", "fairness_gap", "equalized_odds_gap"))
    bank = medians([r for r in runs if r["data"] == "bank"], ("accuracy", "attacked_accuracy"))
    seconds = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "seconds": seconds, "runs": runs}, indent=1))
    with (RESULTS / f"{name}.csv").open("w", newline="") as fh:
        fields = ["data", "family", "setting", "group", "seeds", "accuracy", "fairness_gap", "equalized_odds_gap",
                  "attacked_accuracy", "on_front"]
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        on_front = {id(r) for r in front(adult, "fairness_gap")} | {id(r) for r in front(bank, "attacked_accuracy", lower=False)}
        for r in adult + bank:
            writer.writerow({**r, "on_front": id(r) in on_front})
    chart(adult, bank, RESULTS / f"{name}.png")
    text = report(adult, bank, seconds, args.quick)
    (RESULTS / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
