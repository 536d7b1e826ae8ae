"""Plotly figures of an experiment (pure functions of its JSON-able rows/runs; no streamlit):

- `pareto_figure`: paper Fig. 5 — test accuracy vs fairness gap, fairness axis inverted (fairer is up), the
  full-data model as a reference cross with its two lines, and the Pareto-improvement quadrant (more accurate
  *and* fairer than the full-data model) shaded.
- `attack_boxplot`: paper Fig. 6 — accuracy before / after attack as box plots over the random attacks.

Each method has one colour on every chart (`influence_core.colours.method_colour`); methods are named in the
legend, never by text on the plot (labels of methods on one point would print over each other).
"""

from __future__ import annotations

import plotly.graph_objects as go

from ..colours import method_colour
from ..errors import InfluenceError
from .baselines import ARMS, is_arm


IMPROVEMENT_COLOUR = "rgba(46, 160, 67, 0.15)"
REFERENCE_COLOUR = "#8c564b"  # the paper's brown cross


def _rows(result) -> dict[str, dict]:
    return result.rows if hasattr(result, "rows") else result.get("results", result)


def _runs(result) -> list[dict]:
    return result.runs if hasattr(result, "runs") else result.get("runs", [])


FAIRNESS_METRICS = {"fairness_gap": "fairness gap", "fair_score": "fair score"}  # y of the Pareto chart


def pareto_figure(result, title: str = "Utility vs fairness after cleaning", metric: str = "fairness_gap") -> go.Figure:
    """Accuracy (x, %) against fairness gap (y, ×100, inverted): top right of the cross = Pareto improvement.
    ``metric="fair_score"``: the counterfactual fair score of text data (paper Sec. 6) on y instead.

    ``result``: an `ExperimentResult` or its JSON (``{"results": {name: row}}``) or the rows dict itself.
    """
    rows = _rows(result)
    full = rows.get("full") or {}
    what = FAIRNESS_METRICS[metric]
    if not full.get("accuracy") or not full.get(metric):
        raise InfluenceError(f"the Pareto chart needs the full-data run with a {what} "
                             + ("(a data set with a sensitive attribute)" if metric == "fairness_gap" else "(text with twins)"))
    fx, fy = 100 * full["accuracy"]["mean"], 100 * full[metric]["mean"]
    points = [(name, r) for name, r in rows.items() if name != "full" and r.get("accuracy") and r.get(metric)]
    xs = [fx] + [100 * r["accuracy"]["mean"] for _, r in points]
    ys = [fy] + [100 * r[metric]["mean"] for _, r in points]
    pad_x = max(0.5, 0.15 * (max(xs) - min(xs)))
    pad_y = max(0.25, 0.15 * (max(ys) - min(ys)))
    x_lo, x_hi = min(xs) - pad_x, max(xs) + pad_x
    y_lo, y_hi = max(0.0, min(ys) - pad_y), max(ys) + pad_y

    fig = go.Figure()
    # More accurate (x > fx) and fairer (gap < fy): with the y axis reversed this is the top-right quadrant.
    fig.add_shape(type="rect", x0=fx, x1=x_hi, y0=fy, y1=y_lo, fillcolor=IMPROVEMENT_COLOUR, line_width=0,
                  layer="below", name="Pareto improvement")
    fig.add_shape(type="line", x0=fx, x1=fx, y0=y_lo, y1=y_hi, line=dict(color=REFERENCE_COLOUR, dash="dot"))
    fig.add_shape(type="line", x0=x_lo, x1=x_hi, y0=fy, y1=fy, line=dict(color=REFERENCE_COLOUR, dash="dot"))
    fig.add_trace(go.Scatter(
        x=[fx], y=[fy], mode="markers", name="full data", marker=dict(symbol="x", size=16, color=REFERENCE_COLOUR),
        **_error_bars(full, metric),
        hovertemplate=f"full data<br>accuracy %{{x:.2f}}%<br>{what} %{{y:.2f}}<extra></extra>"))
    fronts: dict[str, list[tuple[str, dict]]] = {}  # a baseline family's sweep, drawn as one line (issue 17)
    for name, r in points:
        if is_arm(name):
            fronts.setdefault(name.partition("@")[0], []).append((name, r))
    for family, members in fronts.items():
        members.sort(key=lambda m: m[1]["accuracy"]["mean"])
        fig.add_trace(go.Scatter(
            x=[100 * r["accuracy"]["mean"] for _, r in members], y=[100 * r[metric]["mean"] for _, r in members],
            mode="lines+markers", name=ARMS[family].label, text=[r.get("label", n) for n, r in members],
            marker=dict(size=9, color=method_colour(family), symbol="circle-open", line=dict(width=2)),
            line=dict(color=method_colour(family), dash="dot", width=1.5),
            hovertemplate=f"%{{text}}<br>accuracy %{{x:.2f}}%<br>{what} %{{y:.2f}}<extra></extra>"))
    points = [(name, r) for name, r in points if not is_arm(name)]
    for i, (name, r) in enumerate(points):
        label = r.get("label", name)
        fig.add_trace(go.Scatter(
            x=[100 * r["accuracy"]["mean"]], y=[100 * r[metric]["mean"]], mode="markers", name=label,
            # Open markers of different shapes: methods on one point stay visible on top of each other.
            marker=dict(size=13, color=method_colour(name), line=dict(width=2, color=method_colour(name)),
                        symbol="diamond-open" if name == "random" else _SYMBOLS[i % len(_SYMBOLS)]),
            **_error_bars(r, metric),
            hovertemplate=f"{label}<br>accuracy %{{x:.2f}}%<br>{what} %{{y:.2f}}<extra></extra>"))
    fig.update_xaxes(title="test accuracy (%) →", range=[x_lo, x_hi])
    fig.update_yaxes(title=f"{what} ×100 (fairer ↑)", autorange="reversed", range=None)
    fig.update_layout(title=title, showlegend=True, margin=dict(t=50, l=10, r=10, b=10))
    return fig


_SYMBOLS = ("circle-open", "square-open", "triangle-up-open", "cross-open", "star-open", "hexagon-open",
            "triangle-down-open", "pentagon-open")


def _seeds(stat: dict | None) -> int:
    return int((stat or {}).get("n", 1) or 1)


def _error_bars(row: dict, y_metric: str = "fairness_gap") -> dict:
    """± one std over seeds on each axis, only where the seeds spread (one seed, or a convex model that every seed
    retrains to the same optimum: no bar of zero length)."""
    out = {}
    for axis, metric in (("error_x", "accuracy"), ("error_y", y_metric)):
        stat = row.get(metric) or {}
        if _seeds(stat) > 1 and (stat.get("std") or 0.0) > 0.0:
            out[axis] = dict(type="data", array=[100 * stat["std"]], visible=True, thickness=1.2, width=4)
    return out


def distinct_runs(runs: list[dict], method: str) -> list[dict]:
    """The runs of ``method`` that are distinct models: a run reused for another seed (a convex model gives one
    optimum whatever the seed) or one identical to an earlier run counts once."""
    out, seen = [], set()
    for r in runs:
        if r["method"] != method or "reused_from_seed" in r:
            continue
        key = (r.get("accuracy"), tuple(r.get("attack_accuracies", [])))
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def attacks_without_effect(result) -> str | None:
    """Why an attack box plot would mean nothing, or None: no attacks, or attacks that changed no prediction
    (every attacked accuracy equals the model's clean accuracy, e.g. on image data)."""
    runs = [r for r in _runs(result) if r.get("attack_accuracies")]
    if not runs:
        return "no attacks were run"
    if all(abs(a - r["accuracy"]) < 1e-12 for r in runs for a in r["attack_accuracies"]):
        return ("the attacks changed no prediction: every attacked accuracy equals the accuracy before attack "
                "(the perturbation is too small to move these models, as on image data), so there is nothing to compare")
    return None


def attack_boxplot(result, title: str = "Accuracy before and after attack") -> go.Figure:
    """Box plots of test accuracy: the full-data model before attack (``pre``), after attack (``post``), and
    each cleaned model after attack — one value per (distinct model, random attack): a model shared by every seed
    (convex, L-BFGS) counts once. Raises `InfluenceError` with the reason when the attacks changed nothing."""
    rows, runs = _rows(result), _runs(result)
    why = attacks_without_effect(result)
    if why:
        raise InfluenceError(f"no attack chart: {why}")
    fig = go.Figure()
    full_runs = distinct_runs(runs, "full")
    if full_runs:
        fig.add_trace(go.Box(y=[100 * r["accuracy"] for r in full_runs], name="pre-attack (full)", boxpoints="all",
                             marker_color=method_colour("full"), fillcolor="rgba(255,255,255,0)"))
    for name, row in rows.items():
        vals = [100 * a for r in distinct_runs(runs, name) for a in r.get("attack_accuracies", [])]
        if not vals:
            continue
        label = "post-attack (full)" if name == "full" else row.get("label", name)
        fig.add_trace(go.Box(y=vals, name=label, boxpoints="all", marker_color=method_colour(name)))
    if not fig.data:
        raise InfluenceError("no finished runs with attacks to plot")
    fig.update_yaxes(title="test accuracy (%)")
    fig.update_layout(title=title, showlegend=False, margin=dict(t=50, l=10, r=10, b=10))
    return fig


def _arms(result) -> list[tuple[str, str, dict]]:
    """(name, label, accuracy stat) of every arm with an accuracy: full first, then random, then the methods."""
    rows = _rows(result)
    order = ["full", "random"] + [n for n in rows if n not in ("full", "random")]
    return [(n, rows[n].get("label", n), rows[n]["accuracy"]) for n in order if n in rows and (rows[n] or {}).get("accuracy")]


def accuracy_figure(result, title: str = "Clean test accuracy per arm") -> go.Figure:
    """Test accuracy (no attack) of each arm — full data, the random control, each method — one dot per retraining
    seed and the mean ± one std over seeds, with the full-data mean as a dashed line: the question Evaluate asks
    (did cleaning help?) with the seeds' spread beside each gain."""
    arms, runs = _arms(result), _runs(result)
    if not arms:
        raise InfluenceError("no finished runs with a test accuracy to plot")
    fig = go.Figure()
    for name, label, stat in arms:
        seeds = [100 * r["accuracy"] for r in runs if r.get("method") == name and r.get("accuracy") is not None]
        colour = method_colour(name)
        if seeds:
            fig.add_trace(go.Scatter(x=[label] * len(seeds), y=seeds, mode="markers", name=f"{label}: seeds",
                                     showlegend=False, marker=dict(color=colour, size=7, opacity=0.45),
                                     hovertemplate=f"{label}<br>one seed: %{{y:.2f}}%<extra></extra>"))
        std = 100 * (stat.get("std") or 0.0)
        fig.add_trace(go.Scatter(
            x=[label], y=[100 * stat["mean"]], mode="markers", name=label,
            marker=dict(color=colour, size=14, symbol="diamond", line=dict(width=1, color="#222")),
            error_y=dict(type="data", array=[std], visible=std > 0, thickness=1.5, width=8),
            hovertemplate=f"{label}<br>mean %{{y:.2f}}% ± {std:.2f} (std over {_seeds(stat)} seed(s))<extra></extra>"))
    full = next((stat for name, _, stat in arms if name == "full"), None)
    if full is not None:
        fig.add_hline(y=100 * full["mean"], line=dict(color=REFERENCE_COLOUR, dash="dot"),
                      annotation_text="full data", annotation_position="top left")
    fig.update_yaxes(title="test accuracy (%), no attack")
    fig.update_layout(title=title, showlegend=False, margin=dict(t=50, l=10, r=10, b=10))
    return fig


def spread_note(result) -> str | None:
    """A sentence when the seeds' spread of test accuracy is as large as a method's gain over the full data (then
    the gain may be seed noise), else None. The spread of a comparison is the larger std of its two arms."""
    arms = _arms(result)
    full = next((stat for name, _, stat in arms if name == "full"), None)
    if full is None or _seeds(full) < 2:
        return None
    noisy = []
    for name, label, stat in arms:
        if name == "full":
            continue
        gain = 100 * (stat["mean"] - full["mean"])
        spread = 100 * max(full.get("std") or 0.0, stat.get("std") or 0.0)
        if spread > 0 and abs(gain) <= spread:
            noisy.append(f"{label} {gain:+.2f}")
    if not noisy:
        return None
    return (f"With {_seeds(full)} seeds the spread of test accuracy (full data ±{100 * (full.get('std') or 0.0):.2f} "
            f"points) is as large as the gain of {', '.join(noisy)} points over the full data: these differences may "
            "be seed noise — run more seeds before trusting them.")
