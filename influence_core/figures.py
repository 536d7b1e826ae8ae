"""Plotly figure builders for the workbench: pure functions of arrays, testable without a browser.

Scores everywhere: lower = more detrimental. "Noisy" samples (known wrong labels) are drawn in red.
Regions of the gradient-angle view (paper Fig. 1 / App. A), by the signs of gᵀu (IP) and gᵀw (influence):
I both negative (both call the sample detrimental), II IP ≥ 0 > influence, III both ≥ 0 (both beneficial),
IV influence ≥ 0 > IP.
"""

from __future__ import annotations

import html
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from .colours import METHOD_COLOURS, method_colour  # noqa: F401  (one colour per method; evaluate/figures uses it too)

NOISY, CLEAN, ACCENT = "#d62728", "#7f8c99", "#1f6feb"
REGION_NAMES = ("I", "II", "III", "IV")
REGION_COLOURS = ("rgba(214,39,40,0.13)", "rgba(255,165,0,0.12)", "rgba(44,160,44,0.12)", "rgba(148,103,189,0.12)")
_LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=60, b=45), height=460)

# ------------------------------------------------------------------------------------------- numbers
def regions(gu: np.ndarray, gw: np.ndarray) -> np.ndarray:
    """Region 1..4 (I..IV) of each sample from its IP gᵀu and influence gᵀw (see the module docstring)."""
    gu, gw = np.asarray(gu), np.asarray(gw)
    out = np.empty(len(gu), dtype=np.int64)
    out[(gu < 0) & (gw < 0)] = 1
    out[(gu >= 0) & (gw < 0)] = 2
    out[(gu >= 0) & (gw >= 0)] = 3
    out[(gu < 0) & (gw >= 0)] = 4
    return out


def region_counts(gu: np.ndarray, gw: np.ndarray) -> dict[str, int]:
    r = regions(gu, gw)
    return {name: int((r == i + 1).sum()) for i, name in enumerate(REGION_NAMES)}


def contrast_on_white(colour: str) -> float:
    """The WCAG contrast ratio of a "#rrggbb" colour against white (1 = invisible, 21 = black)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def readable_on_white(colour: str, ratio: float = 4.5) -> str:
    """``colour`` darkened in steps (same hue) until text in it has WCAG contrast ``ratio`` on white: a light
    method colour (IP + loss's light cyan) stays recognisable on a chart title and becomes readable."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    out = colour
    while contrast_on_white(out) < ratio and rgb.max() > 0:
        rgb *= 0.9
        out = "#" + "".join(f"{int(v):02x}" for v in rgb.round())
    return out


def order_consistency(a: np.ndarray, b: np.ndarray, max_samples: int = 4000, seed: int = 0) -> float:
    """Share of sample pairs that ``a`` and ``b`` put in the same order (ties in either count as consistent).

    Exact for up to ``max_samples`` samples (all n(n−1)/2 pairs, in blocks); a fixed random subset above that.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) > max_samples:
        pick = np.random.default_rng(seed).choice(len(a), max_samples, replace=False)
        a, b = a[pick], b[pick]
    n = len(a)
    if n < 2:
        return float("nan")
    agree, total = 0, 0
    for start in range(0, n, 512):
        da = np.sign(a[start : start + 512, None] - a[None, :])
        db = np.sign(b[start : start + 512, None] - b[None, :])
        rows = np.arange(start, min(start + 512, n))[:, None]
        upper = np.arange(n)[None, :] > rows  # each unordered pair once
        agree += int(((da * db >= 0) & upper).sum())
        total += int(upper.sum())
    return agree / total


def detection_auroc(scores: np.ndarray, noisy: np.ndarray) -> float:
    """AUROC of finding the noisy samples by ranking lowest score first (NaN when only one kind is present)."""
    noisy = np.asarray(noisy, dtype=bool)
    if noisy.all() or not noisy.any():
        return float("nan")
    return float(roc_auc_score(noisy, -np.asarray(scores)))


def precision_at_k(scores: np.ndarray, noisy: np.ndarray, k: int) -> float:
    """Share of truly noisy samples among the ``k`` lowest-scored (most detrimental) ones."""
    k = int(min(max(k, 1), len(scores)))
    return float(np.asarray(noisy, dtype=bool)[np.argsort(scores, kind="stable")[:k]].mean())


def detection_report(scores: Mapping[str, np.ndarray], noisy: np.ndarray, shares: Sequence[float] = (0.05, 0.10)) -> "pd.DataFrame":
    """The leaderboard of a set of rankings against known wrong labels: AUROC, average precision and precision
    among the lowest-scored 5% / 10%, one row per ranking, best AUROC first."""
    import pandas as pd

    noisy = np.asarray(noisy, dtype=bool)
    rows = []
    for name, s in scores.items():
        row = {"method": name, "AUROC": detection_auroc(s, noisy),
               "average precision": float(average_precision_score(noisy, -np.asarray(s))) if noisy.any() else float("nan")}
        for share in shares:
            row[f"precision@{share:.0%}"] = precision_at_k(s, noisy, int(round(share * len(s))))
        rows.append(row)
    return pd.DataFrame(rows).sort_values("AUROC", ascending=False, ignore_index=True)


# ------------------------------------------------------------------------------------------- figures
def _noise_colours(noisy: np.ndarray | None, n: int) -> list[str]:
    if noisy is None:
        return [ACCENT] * n
    return [NOISY if v else CLEAN for v in np.asarray(noisy, dtype=bool)]


def angle_regions_figure(gu: np.ndarray, gw: np.ndarray, u_xy: np.ndarray, w_xy: np.ndarray,
                         noisy: np.ndarray | None = None, index: np.ndarray | None = None) -> go.Figure:
    """Each sample at (gᵀu/‖u‖, gᵀw/‖w‖): its gradient's component along u = ∇f and along w = H⁻¹∇f, each axis on
    its own scale, so the regions I–IV are the quadrants and their boundaries (gᵀu = 0, gᵀw = 0) the axes.

    True for any angle between u and w (given in the title; ``u_xy`` / ``w_xy`` are u and w in any orthonormal basis
    of their plane) and readable when they are near orthogonal, where a to-scale drawing of the plane puts every
    sample on one line (moons: 89.7°, the components along u a thousandth of those along w).
    """
    gu, gw = np.asarray(gu, dtype=np.float64), np.asarray(gw, dtype=np.float64)
    nu, nw = float(np.hypot(*u_xy)), float(np.hypot(*w_xy))
    x, y = gu / (nu or 1.0), gw / (nw or 1.0)
    counts = region_counts(gu, gw)
    consistent = order_consistency(gu, gw)
    angle = vector_angle(u_xy, w_xy)

    def extent(v: np.ndarray) -> list[float]:
        """The axis range: every point and the boundary at 0, with a margin of a tenth of the span."""
        lo, hi = min(float(v.min()) if len(v) else 0.0, 0.0), max(float(v.max()) if len(v) else 0.0, 0.0)
        pad = 0.1 * (hi - lo) or 1.0
        return [lo - pad, hi + pad]

    xr, yr = extent(x), extent(y)
    fig = go.Figure()
    quadrants = {"I": (xr[0], 0, yr[0], 0), "II": (0, xr[1], yr[0], 0), "III": (0, xr[1], 0, yr[1]), "IV": (xr[0], 0, 0, yr[1])}
    for i, name in enumerate(REGION_NAMES):  # each region shaded, its numeral at its middle
        x0, x1, y0, y1 = quadrants[name]
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, xref="x", yref="y", fillcolor=REGION_COLOURS[i],
                      line=dict(width=0), layer="below")
        fig.add_annotation(x=(x0 + x1) / 2, y=(y0 + y1) / 2, text=f"<b>{name}</b>", showarrow=False,
                           font=dict(size=22, color="rgba(0,0,0,0.35)"))
    fig.add_trace(go.Scatter(x=[0.0, 0.0], y=yr, mode="lines", name="gᵀu = 0 (IP changes sign)", hoverinfo="skip",
                             line=dict(color="rgba(0,0,0,0.55)", width=1.5, dash="dash")))
    fig.add_trace(go.Scatter(x=xr, y=[0.0, 0.0], mode="lines", name="gᵀw = 0 (influence changes sign)",
                             hoverinfo="skip", line=dict(color="rgba(0,0,0,0.55)", width=1.5, dash="dot")))
    idx = np.arange(len(gu)) if index is None else np.asarray(index)
    r = regions(gu, gw)
    groups = [("samples", np.ones(len(gu), bool), ACCENT)] if noisy is None else [
        ("clean", ~np.asarray(noisy, bool), CLEAN), ("noisy label", np.asarray(noisy, bool), NOISY)]
    for label, mask, colour in groups:
        fig.add_trace(go.Scattergl(
            x=x[mask], y=y[mask], mode="markers", name=label, marker=dict(color=colour, size=6, opacity=0.8),
            customdata=np.stack([idx[mask], gu[mask], gw[mask], r[mask]], axis=1),
            hovertemplate="sample %{customdata[0]}<br>IP gᵀu %{customdata[1]:.3g}<br>influence gᵀw %{customdata[2]:.3g}"
                          "<br>region %{customdata[3]}<extra></extra>",
        ))
    for i, name in enumerate(REGION_NAMES):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"Region {name}: {counts[name]}",
                                 marker=dict(symbol="square", size=12, color=REGION_COLOURS[i].replace("0.1", "0.5"))))
    fig.update_layout(
        title=f"Sample gradients along u and along w (angle(u, w) = {angle:.1f}°, each axis on its own scale) · "
              f"order-consistent pairs (IP vs influence): {consistent:.1%}",
        xaxis=dict(title="gᵀu / ‖u‖ — component along u = ∇f (IP, scaled)", range=xr, zeroline=False),
        yaxis=dict(title="gᵀw / ‖w‖ — component along w = H⁻¹∇f (influence, scaled)", range=yr, zeroline=False),
        **{**_LAYOUT, "height": 620},
    )
    return fig


def vector_angle(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two vectors in degrees, arccos(aᵀb / ‖a‖‖b‖) (NaN when one is zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    if den == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(float(a @ b) / den, -1.0, 1.0))))


def correlation_title(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> str:
    pearson = stats.pearsonr(a, b)[0] if np.std(a) > 0 and np.std(b) > 0 else float("nan")
    spearman = stats.spearmanr(a, b)[0] if np.std(a) > 0 and np.std(b) > 0 else float("nan")
    return f"{name_b} vs {name_a} — Pearson r = {pearson:.3f}, Spearman ρ = {spearman:.3f}"


def score_scatter(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, noisy: np.ndarray | None = None,
                  index: np.ndarray | None = None) -> go.Figure:
    """One method's scores against another's, noisy samples highlighted, Pearson and Spearman in the title."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    idx = np.arange(len(a)) if index is None else np.asarray(index)
    fig = go.Figure()
    groups = [("samples", np.ones(len(a), bool), ACCENT)] if noisy is None else [
        ("clean", ~np.asarray(noisy, bool), CLEAN), ("noisy label", np.asarray(noisy, bool), NOISY)]
    for label, mask, colour in groups:
        fig.add_trace(go.Scattergl(x=a[mask], y=b[mask], mode="markers", name=label, customdata=idx[mask],
                                   marker=dict(color=colour, size=6, opacity=0.8),
                                   hovertemplate="sample %{customdata}<br>" + name_a + " %{x:.3g}<br>" + name_b + " %{y:.3g}<extra></extra>"))
    fig.update_layout(title=correlation_title(a, b, name_a, name_b), xaxis_title=f"{name_a} (lower = more detrimental)",
                      yaxis_title=f"{name_b} (lower = more detrimental)", **_LAYOUT)
    return fig


def score_distributions(scores: Mapping[str, np.ndarray], noisy: np.ndarray | None, k: int | None = None) -> go.Figure:
    """One histogram panel per method, noisy and clean samples overlaid, AUROC and precision@k in each panel's title."""
    from plotly.subplots import make_subplots

    names = list(scores)
    titles = []
    for name in names:
        s = np.asarray(scores[name], np.float64)
        if noisy is None:
            titles.append(name)
        else:
            mask = np.asarray(noisy, bool)
            kk = k or int(mask.sum())
            titles.append(f"{name}: AUROC {detection_auroc(s, mask):.3f}, precision@{kk} {precision_at_k(s, mask, kk):.2f}")
    fig = make_subplots(rows=len(names), cols=1, subplot_titles=titles, vertical_spacing=0.12 / max(len(names), 1) + 0.04)
    for row, name in enumerate(names, start=1):
        s = np.asarray(scores[name], np.float64)
        if noisy is None:
            fig.add_trace(go.Histogram(x=s, name=name, marker_color=method_colour(name), nbinsx=60, histnorm="probability",
                                       showlegend=False), row=row, col=1)
            continue
        mask = np.asarray(noisy, bool)
        fig.add_trace(go.Histogram(x=s[~mask], name="clean", marker_color=CLEAN, opacity=0.6, nbinsx=60,
                                   histnorm="probability", legendgroup="clean", showlegend=row == 1), row=row, col=1)
        fig.add_trace(go.Histogram(x=s[mask], name="noisy label", marker_color=NOISY, opacity=0.75, nbinsx=60,
                                   histnorm="probability", legendgroup="noisy", showlegend=row == 1), row=row, col=1)
    for annotation, name in zip(fig.layout.annotations, names):  # each panel's title in its method's colour, darkened
        annotation.font = dict(color=readable_on_white(method_colour(name)))  # until it reads on white
    fig.update_layout(barmode="overlay", title="Score distributions (lower = more detrimental)",
                      **{**_LAYOUT, "height": 120 + 230 * len(names)})
    # Every histogram is normalised (histnorm="probability"): bar heights are shares of their group, so noisy and
    # clean samples compare although there are far fewer noisy ones.
    fig.update_yaxes(title_text="share of group" if noisy is not None else "share of samples")
    return fig


# Feature map colours: the score's rank from most detrimental (red) to most helpful (blue), through a mid-tone
# purple — no white in the scale, so every marker stays visible on the white background.
RANK_COLOURS = [[0.0, "#b2182b"], [0.2, "#e34a33"], [0.45, "#c994c7"], [0.55, "#9e9ac8"], [0.8, "#4292c6"],
                [1.0, "#08306b"]]


def score_ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's rank as a share in [0, 1]: 0 = the lowest score (most detrimental), 1 = the highest."""
    s = np.asarray(scores, np.float64)
    if len(s) < 2:
        return np.zeros(len(s))
    return (stats.rankdata(s, method="average") - 1) / (len(s) - 1)


# Feature map colours by a category (given class, predicted class): Plotly's qualitative palettes, cycled.
GROUP_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")


def embedding_figure(xy: np.ndarray, scores: np.ndarray, score_name: str, noisy: np.ndarray | None = None,
                     index: np.ndarray | None = None, labels: Sequence[str] | None = None,
                     method: str = "UMAP", groups: Sequence[str] | None = None, group_title: str = "",
                     selected: Sequence[int] | None = None) -> go.Figure:
    """A 2-D map of the training samples (``method``: how ``xy`` was laid out) coloured by the rank of their score,
    red = most detrimental — or, with ``groups`` (one name per sample, e.g. the given or the predicted class, called
    ``group_title``), one colour per group; filled markers, known wrong labels as crosses. Each point carries its
    training row (``customdata[0]``, what a selection hands over) and its sample id ``index`` (the original index,
    shown on hover), then its score, rank and class. ``selected`` rows are drawn selected (the others faded) by the
    figure itself, so a selection stays visible when the figure is drawn again (recoloured). No drag mode is set:
    Streamlit's selection then starts in pan mode where a click selects one point (in lasso or box mode it ignores
    clicks); the lasso and box are in the toolbar."""
    xy = np.asarray(xy, np.float64)
    s = np.asarray(scores, np.float64)
    n = len(xy)
    rows = np.arange(n)
    idx = rows if index is None else np.asarray(index)
    ranks = score_ranks(s)
    order = np.argsort(np.argsort(s, kind="stable"), kind="stable") + 1  # 1 = most detrimental
    classes = [""] * n if labels is None else [as_text(v) for v in labels]
    name = as_text(score_name)
    custom = np.empty((n, 5), dtype=object)
    custom[:, 0], custom[:, 1], custom[:, 2], custom[:, 3], custom[:, 4] = rows, idx, s, order, classes
    kinds = [("", np.ones(n, bool), "circle")] if noisy is None else [
        ("", ~np.asarray(noisy, bool), "circle"), ("known wrong label", np.asarray(noisy, bool), "x")]
    if groups is None:
        traces = [(label or ("samples" if noisy is None else "clean"), mask, symbol, None) for label, mask, symbol in kinds]
    else:
        group_of = np.asarray([as_text(g) for g in groups], dtype=object)
        names = list(dict.fromkeys(group_of.tolist()))
        traces = [(g + (f" · {label}" if label else ""), mask & (group_of == g), symbol, GROUP_COLOURS[i % len(GROUP_COLOURS)])
                  for i, g in enumerate(names) for label, mask, symbol in kinds]
    chosen = np.zeros(n, bool)
    if selected is not None:
        picked = np.asarray([int(r) for r in selected if 0 <= int(r) < n], dtype=np.int64)
        chosen[picked] = True
    trace = go.Scattergl if n > 3000 else go.Scatter
    fig = go.Figure()
    for label, mask, symbol, colour in traces:
        if groups is not None and not mask.any():
            continue
        marker = dict(size=8 if symbol == "circle" else 10, symbol=symbol, opacity=0.9,
                      line=dict(width=0.6, color="#ffffff" if symbol == "circle" else "#222222"))
        marker.update(dict(color=ranks[mask], coloraxis="coloraxis") if colour is None else dict(color=colour))
        fig.add_trace(trace(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=label, customdata=custom[mask], marker=marker,
            selectedpoints=np.flatnonzero(chosen[mask]).tolist() if selected is not None else None,
            unselected=dict(marker=dict(opacity=0.15)) if selected is not None else None,
            hovertemplate="sample %{customdata[1]}" + ("" if labels is None else " · %{customdata[4]}")
                          + "<br>" + name + " %{customdata[2]:.3g}<br>rank %{customdata[3]} of " + f"{n:,}"
                          + "<extra></extra>",
        ))
    colour_text = (f"rank by {name}, red = most detrimental" if groups is None else as_text(group_title or "group"))
    fig.update_layout(
        title=f"{method} map of the model's features · colour: {colour_text}",
        legend=dict(orientation="h", y=-0.05), hoverlabel=dict(bgcolor="white"), xaxis=dict(showticklabels=False, title=f"{method} 1"),
        yaxis=dict(showticklabels=False, title=f"{method} 2"), **{**_LAYOUT, "height": 560},
    )
    if groups is None:
        fig.update_layout(coloraxis=dict(colorscale=RANK_COLOURS, cmin=0.0, cmax=1.0, colorbar=dict(
            title=dict(text=f"{name}<br>rank", side="top"), tickvals=[0, 0.25, 0.5, 0.75, 1],
            ticktext=["lowest", "25%", "median", "75%", "highest"])))
    return fig


def decision_boundary_figure(xs: np.ndarray, ys: np.ndarray, prob: np.ndarray, x: np.ndarray, y: np.ndarray,
                             flagged: np.ndarray, noisy: np.ndarray | None = None, classes: Sequence[str] = ("0", "1"),
                             index: np.ndarray | None = None) -> go.Figure:
    """2-D data over the model's P(class 1) surface; flagged samples ringed, known noisy ones crossed; hovering a
    sample shows its id ``index`` (default: its row)."""
    fig = go.Figure(go.Contour(x=xs, y=ys, z=prob, colorscale="RdBu_r", opacity=0.35, showscale=False, hoverinfo="skip",
                               contours=dict(start=0, end=1, size=0.1)))
    fig.add_trace(go.Contour(x=xs, y=ys, z=prob, showscale=False, hoverinfo="skip", contours_coloring="none",
                             contours=dict(start=0.5, end=0.5, size=1), line=dict(color="#111", width=2), name="boundary"))
    x, y = np.asarray(x), np.asarray(y)
    idx = np.arange(len(x)) if index is None else np.asarray(index)
    for c, name in enumerate(classes):
        m = y == c
        fig.add_trace(go.Scatter(x=x[m, 0], y=x[m, 1], mode="markers", name=f"label {as_text(name)}",
                                 marker=dict(color=["#2b6cb0", "#c53030"][c % 2], size=6), customdata=idx[m],
                                 hovertemplate="sample %{customdata}<br>label " + as_text(name)
                                               + "<br>(%{x:.3g}, %{y:.3g})<extra></extra>"))
    flagged = np.asarray(flagged, dtype=np.int64)
    fig.add_trace(go.Scatter(x=x[flagged, 0], y=x[flagged, 1], mode="markers", name="flagged",
                             marker=dict(symbol="circle-open", size=14, color="#111", line=dict(width=2))))
    if noisy is not None:
        m = np.asarray(noisy, bool)
        fig.add_trace(go.Scatter(x=x[m, 0], y=x[m, 1], mode="markers", name="known noisy",
                                 marker=dict(symbol="x-thin-open", size=9, color="#111", line=dict(width=2))))
    fig.update_layout(title="Decision boundary with flagged samples", **_LAYOUT)
    fig.update_yaxes(scaleanchor="x")
    return fig


def training_curve(history: Sequence[Mapping]) -> go.Figure:
    """Training loss and validation accuracy per epoch.

    A single record (logistic regression fitted by L-BFGS in one "epoch") has no curve: it is drawn as markers
    with a sentence giving its numbers, so the chart is never empty.
    """
    epochs = [h["epoch"] for h in history]
    mode = "lines+markers" if 1 < len(history) <= 30 else ("lines" if len(history) > 30 else "markers")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs, y=[h["loss"] for h in history], name="training loss", mode=mode,
                             marker=dict(size=10 if len(history) == 1 else 5)))
    fig.add_trace(go.Scatter(x=epochs, y=[h.get("val_accuracy") for h in history], name="validation accuracy",
                             mode=mode, yaxis="y2", marker=dict(size=10 if len(history) == 1 else 5)))
    if len(history) == 1:
        h = history[0]
        acc = h.get("val_accuracy")
        text = f"one fit (no epochs to plot): training loss {h['loss']:.4g}" + (f", validation accuracy {acc:.1%}" if acc is not None else "")
        fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font=dict(size=14))
    elif not history:
        fig.add_annotation(text="no training record", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)
    fig.update_layout(xaxis_title="epoch", yaxis=dict(title="loss"), legend=dict(orientation="h", y=1.12),
                      yaxis2=dict(title="accuracy", overlaying="y", side="right", range=[0, 1], tickformat=".0%",
                                  tickmode="array", tickvals=[0, 0.25, 0.5, 0.75, 1], showgrid=False),
                      **{**_LAYOUT, "height": 320, "margin": dict(l=50, r=50, t=40, b=40)})
    return fig


def format_duration(seconds: float) -> str:
    """A rough duration for people: "< 1 s", "≈ 4 s", "≈ 40 s", "≈ 2 min", "≈ 1.5 h" (estimates, so one or two
    significant figures)."""
    s = float(seconds)
    if not np.isfinite(s):
        return "unknown"
    if s < 1:
        return "< 1 s"
    if s < 9.5:
        return f"≈ {s:.0f} s"
    if s < 55:
        return f"≈ {round(s, -1):.0f} s"
    minutes = s / 60
    if minutes < 9.5:
        return f"≈ {max(1, round(minutes)):.0f} min"
    if minutes < 90:
        return f"≈ {5 * round(minutes / 5):.0f} min"
    return f"≈ {s / 3600:.1f} h"


def as_text(name: object) -> str:
    """A name from the data (a class, a column) for a Plotly label: Plotly renders <b>, <a href=…> and friends in
    labels, so '<', '>' and '&' are written as entities and show as themselves."""
    return html.escape(str(name), quote=False)


def class_balance(counts: Mapping[str, int], noisy_counts: Mapping[str, int] | None = None) -> go.Figure:
    """Training samples per class (and how many of them carry a known wrong label)."""
    names = list(counts)
    shown = [as_text(n) for n in names]
    fig = go.Figure(go.Bar(x=shown, y=[counts[n] for n in names], name="samples", marker_color=ACCENT))
    if noisy_counts:
        fig.add_trace(go.Bar(x=shown, y=[noisy_counts.get(n, 0) for n in names], name="known noisy", marker_color=NOISY))
    fig.update_layout(barmode="group", title="Class balance (training split)",
                      **{**_LAYOUT, "height": 300, "margin": dict(l=40, r=20, t=50, b=40)})
    return fig


# The experiment's charts (paper Figs. 5-6) live with the runner; pages take every figure builder from this module.
from .evaluate.figures import accuracy_figure, attack_boxplot, attacks_without_effect, pareto_figure, spread_note  # noqa: E402,F401,E501
from .evaluate.baselines import best_arm_sentence  # noqa: E402,F401  (issue 17: which arm is best at which accuracy)


# --- review views (issue 20): the class-pair map
PAIR_CELL_PX = 34  # the class-pair map's row height per class, in pixels
PAIR_COLOURS = [[0.0, "#f7fbff"], [0.5, "#9ecae1"], [1.0, "#4a98c9"]]  # Blues up to a mid blue: dark counts stay
# readable on every cell (contrast ≥ 5.7 : 1), one text colour for all (a colour per point costs seconds at 100 classes)
MAX_SELECTED_POINTS = 100  # a selection from the browser: points past these are not looked at


def class_pair_map(matrix: np.ndarray, classes: Sequence[str], top: Sequence[tuple[int, int, int]], title: str) -> go.Figure:
    """Given class (rows) → suggested class (columns), one square marker per cell coloured and labelled by its count;
    the off-diagonal cells ``top`` (given, suggested, count) are outlined in red — the confusions to review first.
    A Scatter, not a Heatmap: Plotly selects scatter points on a click and never heatmap cells, so each off-diagonal
    cell is a link. Trace 0 holds the off-diagonal cells, customdata = [given, suggested, count, given name, suggested
    name] (`class_pair_of_selection` reads the first two back); trace 1 the diagonal, in grey (nothing to review)."""
    names = [as_text(c) for c in classes]
    m = np.asarray(matrix)
    n = len(names)
    height = 120 + PAIR_CELL_PX * max(n, 4)
    marker_px = 0.92 * (height - _LAYOUT["margin"]["t"] - _LAYOUT["margin"]["b"]) / max(n, 1)  # square cells (the
    # axes are scale-anchored) with a thin gap between them
    cells = [(i, j, int(m[i, j]), names[i], names[j]) for i in range(n) for j in range(n) if i != j]
    # an object array: Plotly writes it as plain JSON lists (a numeric array would reach the browser as typed binary
    # data, which a selection hands back as an object) and checks it at once, not item by item
    custom = np.array(cells, dtype=object).reshape(-1, 5)
    counts = np.array([c[2] for c in cells], dtype=np.int64)
    fig = go.Figure(go.Scatter(
        x=custom[:, 1].astype(np.int64), y=custom[:, 0].astype(np.int64), customdata=custom, mode="markers+text",
        texttemplate="%{customdata[2]}", textfont=dict(color="#111827"),
        hovertemplate="given %{customdata[3]} → suggested %{customdata[4]}: %{customdata[2]}<br>"
                      "click: review this pair<extra></extra>",
        marker=dict(symbol="square", size=marker_px, color=counts, colorscale=PAIR_COLOURS, cmin=0,
                    cmax=max(int(counts.max(initial=0)), 1), line=dict(color="#c9d1dc", width=1),
                    colorbar=dict(title="samples")),
        unselected=dict(marker=dict(opacity=1)), showlegend=False, name="given → suggested"))
    diagonal = np.arange(n)
    fig.add_trace(go.Scatter(
        x=diagonal, y=diagonal, mode="markers+text", text=[str(int(m[k, k])) for k in diagonal],
        hovertext=[f"given = suggested {names[k]}: {int(m[k, k])} (the model agrees: nothing to review)"
                   for k in diagonal],
        hovertemplate="%{hovertext}<extra></extra>", textfont=dict(color="#4b5563"),
        marker=dict(symbol="square", size=marker_px, color="#eceff3", line=dict(color="#c9d1dc", width=1)),
        unselected=dict(marker=dict(opacity=1)), showlegend=False, name="diagonal"))
    for i, j, _ in top:
        fig.add_shape(type="rect", x0=j - 0.46, x1=j + 0.46, y0=i - 0.46, y1=i + 0.46, line=dict(color=NOISY, width=3))
    fig.update_layout(title=title, xaxis_title="suggested class (the model's prediction)", yaxis_title="given class",
                      **{**_LAYOUT, "height": height})
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=names, showgrid=False, zeroline=False)
    fig.update_xaxes(range=[-0.5, n - 0.5], constrain="domain", **ticks)
    fig.update_yaxes(range=[n - 0.5, -0.5], scaleanchor="x", scaleratio=1, constrain="domain", **ticks)
    return fig


def selected_points(selection: object) -> list:
    """The points of a chart's selection as Streamlit hands it over (``{"selection": {"points": [...]}}``), the first
    `MAX_SELECTED_POINTS` of them; [] for anything else (the selection is the browser's data)."""
    try:
        points = selection["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError, IndexError):
        return []
    return list(points[:MAX_SELECTED_POINTS]) if isinstance(points, (list, tuple)) else []


def class_pair_of_selection(selection: object, matrix: np.ndarray) -> tuple[int, int, int] | None:
    """The off-diagonal cell (given, suggested, count) of ``matrix`` that a click on `class_pair_map` selected, else
    None. The selection is the browser's: only trace 0's points count, each through its customdata's first two items
    alone, when they name an off-diagonal cell of ``matrix`` by two integers; the count is the matrix's, not theirs."""
    m = np.asarray(matrix)
    for point in selected_points(selection):
        if not isinstance(point, Mapping) or type(point.get("curve_number")) is not int or point["curve_number"]:
            continue
        cell = point.get("customdata")
        if not isinstance(cell, (list, tuple)) or len(cell) < 2 or any(type(k) is not int for k in cell[:2]):
            continue
        i, j = cell[:2]
        if i != j and 0 <= i < m.shape[0] and 0 <= j < m.shape[1]:
            return i, j, int(m[i, j])
    return None
