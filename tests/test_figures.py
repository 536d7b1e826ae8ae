"""Figure builders and the numbers in them, checked against brute-force counts and scipy / sklearn."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import stats

from influence_core import figures


def _brute_region(a: float, b: float) -> int:
    if a < 0 and b < 0:
        return 1
    if a >= 0 and b < 0:
        return 2
    if a >= 0 and b >= 0:
        return 3
    return 4


def test_region_counts_equal_a_sign_count():
    rng = np.random.default_rng(0)
    gu, gw = rng.normal(size=500), rng.normal(size=500)
    gu[:5] = 0.0  # boundary values go to the ≥ 0 side
    brute = {name: 0 for name in figures.REGION_NAMES}
    for a, b in zip(gu, gw):
        brute[figures.REGION_NAMES[_brute_region(a, b) - 1]] += 1
    assert figures.region_counts(gu, gw) == brute
    assert sum(brute.values()) == 500


def test_order_consistency_equals_a_pair_loop_and_kendall():
    rng = np.random.default_rng(1)
    a = rng.normal(size=70)
    b = a + rng.normal(scale=0.8, size=70)
    agree = total = 0
    for i in range(70):
        for j in range(i + 1, 70):
            total += 1
            agree += (a[i] - a[j]) * (b[i] - b[j]) >= 0
    assert figures.order_consistency(a, b) == pytest.approx(agree / total)
    tau = stats.kendalltau(a, b)[0]  # no ties: share of concordant pairs = (1 + τ) / 2
    assert figures.order_consistency(a, b) == pytest.approx((1 + tau) / 2)
    assert figures.order_consistency(a, -a) == 0.0


def test_scatter_title_carries_scipy_correlations():
    rng = np.random.default_rng(2)
    a = rng.normal(size=200)
    b = np.exp(a) + rng.normal(scale=0.3, size=200)
    noisy = rng.random(200) < 0.1
    fig = figures.score_scatter(a, b, "ip", "exact", noisy)
    r, rho = map(float, re.findall(r"= (-?[0-9.]+)", fig.layout.title.text))
    assert r == pytest.approx(stats.pearsonr(a, b)[0], abs=5e-4)
    assert rho == pytest.approx(stats.spearmanr(a, b)[0], abs=5e-4)
    noisy_trace = next(t for t in fig.data if t.name == "noisy label")
    assert sorted(noisy_trace.customdata.tolist()) == np.flatnonzero(noisy).tolist()


def test_auroc_and_precision_at_k_by_hand():
    scores = np.array([-3.0, -2.0, -1.0, 0.5, 1.0, 2.0])
    noisy = np.array([True, False, True, False, False, True])
    # AUROC = P(a noisy sample scores lower than a clean one), counted over all 9 noisy-clean pairs.
    pairs = [(s_n < s_c) for s_n in scores[noisy] for s_c in scores[~noisy]]
    assert figures.detection_auroc(scores, noisy) == pytest.approx(np.mean(pairs))
    assert figures.precision_at_k(scores, noisy, 3) == pytest.approx(2 / 3)
    assert np.isnan(figures.detection_auroc(scores, np.zeros(6, bool)))


def test_distribution_title_lists_each_method():
    rng = np.random.default_rng(3)
    noisy = rng.random(300) < 0.1
    s = rng.normal(size=300) - 3 * noisy
    fig = figures.score_distributions({"ip": s, "exact": -s}, noisy)
    panel_titles = [a.text for a in fig.layout.annotations]
    assert panel_titles[0].startswith(f"ip: AUROC {figures.detection_auroc(s, noisy):.3f}")
    assert panel_titles[1].startswith(f"exact: AUROC {figures.detection_auroc(-s, noisy):.3f}")
    assert f"precision@{noisy.sum()} {figures.precision_at_k(s, noisy, int(noisy.sum())):.2f}" in panel_titles[0]
    noisy_trace = next(t for t in fig.data if t.name == "noisy label")
    assert sorted(noisy_trace.x.tolist()) == sorted(s[noisy].tolist())  # noisy panel holds exactly the noisy scores
    assert len(fig.data) == 4  # clean and noisy histogram per method


def test_embedding_and_boundary_figures_keep_rows_and_sample_ids():
    xy = np.arange(20, dtype=float).reshape(10, 2)
    noisy = np.arange(10) % 4 == 0
    fig = figures.embedding_figure(xy, np.linspace(-1, 1, 10), "ip", noisy, index=np.arange(100, 110),
                                   labels=[f"c{i % 2}" for i in range(10)])
    points = np.concatenate([np.asarray(t.customdata, dtype=object) for t in fig.data])
    by_row = {int(p[0]): p for p in points}
    assert sorted(by_row) == list(range(10))  # every training row once: what a selection hands to Review
    assert [int(by_row[r][1]) for r in range(10)] == list(range(100, 110))  # the sample id shown on hover
    assert [by_row[r][4] for r in range(10)] == [f"c{i % 2}" for i in range(10)]
    assert all("sample %{customdata[1]}" in t.hovertemplate for t in fig.data)
    assert fig.layout.dragmode is None  # Streamlit: pan, where a click selects a point; lasso in the toolbar
    xs = ys = np.linspace(0, 1, 5)
    fig = figures.decision_boundary_figure(xs, ys, np.zeros((5, 5)), xy, np.arange(10) % 2, np.array([2, 7]),
                                           index=np.arange(100, 110))
    flagged = next(t for t in fig.data if t.name == "flagged")
    assert flagged.x.tolist() == [xy[2, 0], xy[7, 0]]
    label0 = next(t for t in fig.data if t.name == "label 0")
    assert label0.customdata.tolist() == [100, 102, 104, 106, 108] and "sample %{customdata}" in label0.hovertemplate


def _luminance(colour: str) -> float:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_feature_map_markers_are_filled_and_coloured_by_rank_on_a_visible_scale():
    """Issue 12: the map was near-white hollow markers (raw scores near 0 on a scale white in the middle)."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1e-4, 95), [-5.0, -3.0, 2.0, 4.0, 9.0]])  # most scores near 0
    noisy = np.zeros(100, bool)
    noisy[[95, 96]] = True
    fig = figures.embedding_figure(rng.normal(size=(100, 2)), scores, "ip", noisy)
    for trace in fig.data:
        assert "open" not in str(trace.marker.symbol) and trace.marker.opacity >= 0.85
        rows = np.array([int(p[0]) for p in trace.customdata])
        np.testing.assert_allclose(trace.marker.color, figures.score_ranks(scores)[rows])
        assert [int(p[3]) for p in trace.customdata] == (stats.rankdata(scores, method="ordinal")[rows]).tolist()
    assert {t.name: t.marker.symbol for t in fig.data} == {"clean": "circle", "known wrong label": "x"}
    ranks = figures.score_ranks(scores)
    assert ranks.min() == 0.0 and ranks.max() == 1.0 and ranks[95] == 0.0  # the lowest score is rank 0 (red)
    # colours spread evenly although the scores bunch at 0: the middle half of the samples spans half the scale
    assert np.ptp(np.sort(ranks)[25:75]) > 0.45
    scale = fig.layout.coloraxis.colorscale
    assert scale[0][1] == figures.RANK_COLOURS[0][1] and fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == 1
    assert max(_luminance(c) for _, c in scale) < 0.75  # no near-white colour anywhere on the scale
    assert fig.layout.coloraxis.colorbar.ticktext[0] == "lowest"


def test_durations_read_as_rough_estimates():
    cases = {0.2: "< 1 s", 4.4: "≈ 4 s", 37: "≈ 40 s", 59: "≈ 1 min", 119: "≈ 2 min", 1000: "≈ 15 min",
             7200: "≈ 2.0 h", float("nan"): "unknown"}
    assert {k: figures.format_duration(k) for k in cases} == cases


def test_names_from_the_data_are_plain_text_in_plotly_labels():
    fig = figures.class_balance({"<a href='http://x'>cat</a>": 3, "dog & co": 2})
    assert list(fig.data[0].x) == ["&lt;a href='http://x'&gt;cat&lt;/a&gt;", "dog &amp; co"]
    xy = np.random.default_rng(0).normal(size=(10, 2))
    fig = figures.decision_boundary_figure(np.arange(5.0), np.arange(5.0), np.zeros((5, 5)), xy, np.arange(10) % 2,
                                           np.array([2]), classes=["<b>no</b>", "yes"])
    assert "label &lt;b&gt;no&lt;/b&gt;" in [t.name for t in fig.data]


def _angle_case(degrees: float, w_length: float, seed: int = 5, off_u: float = 1.0):
    """u and w in a 9-D space at ``degrees`` to each other, w ``w_length`` times as long; 400 sample gradients whose
    component in span(u, w) orthogonal to u is ``off_u`` times the size of the one along u."""
    from influence_core.analysis import plane_coordinates

    rng = np.random.default_rng(seed)
    u = rng.normal(size=9)
    other = rng.normal(size=9)
    other -= (other @ u) / (u @ u) * u
    t = np.radians(degrees)
    w = w_length * np.linalg.norm(u) * (np.cos(t) * u / np.linalg.norm(u) + np.sin(t) * other / np.linalg.norm(other))
    g = rng.normal(size=(400, 9)) * np.linspace(0.2, 3.0, 9)
    e1, e2 = u / np.linalg.norm(u), other / np.linalg.norm(other)
    a1, a2 = g @ e1, g @ e2
    g = g - np.outer(a1, e1) - np.outer(a2, e2) + np.outer(a1, e1) + off_u * np.outer(a2, e2)
    gu, gw = g @ u, g @ w
    _, u_xy, w_xy = plane_coordinates(gu, gw, u @ u, u @ w, w @ w)
    return g, u, w, gu, gw, u_xy, w_xy


@pytest.mark.parametrize("degrees, w_length, off_u", [(89.9, 1000.0, 1e-3), (30.0, 40.0, 1.0)])
def test_angle_figure_places_each_sample_by_its_components_along_u_and_w_readably(degrees, w_length, off_u):
    """Issue 21: with u and w at 89.9° and the gradients' components along w a thousandth of those along u, the
    to-scale drawing put all 250 moons samples on one axis. Each sample sits at (gᵀu/‖u‖, gᵀw/‖w‖), each axis spans
    its points, the regions are the quadrants, the true angle is named."""
    g, u, w, gu, gw, u_xy, w_xy = _angle_case(degrees, w_length, off_u=off_u)
    fig = figures.angle_regions_figure(gu, gw, u_xy, w_xy)
    points = next(t for t in fig.data if t.name == "samples")
    x, y = np.asarray(points.x), np.asarray(points.y)
    np.testing.assert_allclose(x, g @ (u / np.linalg.norm(u)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(y, g @ (w / np.linalg.norm(w)), rtol=1e-9, atol=1e-12)
    for values, axis in ((x, fig.layout.xaxis), (y, fig.layout.yaxis)):  # readable: the points fill each axis
        lo, hi = axis.range
        assert lo < values.min() and values.max() < hi and np.ptp(values) > 0.7 * (hi - lo)
        assert lo < 0 < hi  # the boundary (0) is in view
    assert f"angle(u, w) = {degrees:.1f}°" in fig.layout.title.text
    # Each sample's region (hover) matches the signs of gᵀu and gᵀw, and so does the quadrant it is drawn in.
    region = np.asarray(points.customdata)[:, 3].astype(int)
    brute = np.array([_brute_region(a, b) for a, b in zip(gu, gw)])
    assert np.array_equal(region, brute)
    shaded = {figures.REGION_COLOURS.index(sh.fillcolor) + 1: sh for sh in fig.layout.shapes}
    assert sorted(shaded) == [1, 2, 3, 4]
    for px, py, r in zip(x, y, brute):
        box = shaded[r]
        assert min(box.x0, box.x1) <= px <= max(box.x0, box.x1) and min(box.y0, box.y1) <= py <= max(box.y0, box.y1)
    counts = figures.region_counts(gu, gw)
    assert {t.name for t in fig.data if t.name and t.name.startswith("Region")} == {f"Region {k}: {v}" for k, v in counts.items()}
    boundaries = {t.name: t for t in fig.data if t.name and t.name.startswith("gᵀ")}
    assert list(boundaries["gᵀu = 0 (IP changes sign)"].x) == [0.0, 0.0]
    assert list(boundaries["gᵀw = 0 (influence changes sign)"].y) == [0.0, 0.0]


def test_one_colour_per_method_by_name_or_label():
    from influence_core.methods import METHODS

    colours = {name: figures.method_colour(name) for name in [*METHODS, "full", "random"]}
    assert len(set(colours.values())) == len(colours)  # no two methods share a colour
    for name, cls in METHODS.items():
        assert figures.method_colour(cls.label or name) == colours[name]
    assert figures.method_colour("something new") == figures.method_colour("something new")


def test_histograms_plot_shares_and_panel_titles_wear_the_method_colour():
    rng = np.random.default_rng(6)
    noisy = rng.random(300) < 0.1
    s = rng.normal(size=300)
    for mask in (noisy, None):
        fig = figures.score_distributions({"ip": s, "exact": -s}, mask)
        assert all(t.histnorm == "probability" for t in fig.data)  # shares, as the axis says
        assert fig.layout.yaxis.title.text.startswith("share")
        assert [a.font.color for a in fig.layout.annotations] == [figures.readable_on_white(figures.method_colour(m))
                                                                 for m in ("ip", "exact")]
    fig = figures.score_distributions({"ip": s}, None)
    assert fig.data[0].marker.color == figures.method_colour("ip")


def test_training_curve_of_one_fit_is_not_an_empty_chart():
    fig = figures.training_curve([{"epoch": 1, "loss": 0.41, "val_accuracy": 0.83}])
    assert all("markers" in t.mode for t in fig.data)  # a single point is visible only as a marker
    assert any("one fit" in a.text and "0.41" in a.text and "83.0%" in a.text for a in fig.layout.annotations)
    fig = figures.training_curve([{"epoch": e, "loss": 1 / e, "val_accuracy": 0.5} for e in range(1, 40)])
    assert all(t.mode == "lines" for t in fig.data) and not fig.layout.annotations


def test_feature_map_colours_by_a_category_and_keeps_the_selection_drawn():
    """Issue 21: the map could be coloured only by score rank, and recolouring lost the lasso's highlight while the
    panel still counted the selection: the figure draws the selection itself."""
    rng = np.random.default_rng(1)
    n = 40
    classes = np.where(np.arange(n) % 3 == 0, "cat", np.where(np.arange(n) % 3 == 1, "dog", "<b>ship</b>"))
    noisy = np.arange(n) % 7 == 0
    selected = [2, 9, 14, 35]
    fig = figures.embedding_figure(rng.normal(size=(n, 2)), rng.normal(size=n), "ip", noisy, groups=classes,
                                   group_title="given class", selected=selected)
    seen, picked, colour_of = set(), set(), {}
    for trace in fig.data:
        rows = [int(p[0]) for p in trace.customdata]
        group = {str(classes[r]) for r in rows}
        assert len(group) == 1  # one class per trace, in one colour
        colour_of.setdefault(group.pop(), set()).add(trace.marker.color)
        seen.update(rows)
        picked.update(rows[i] for i in trace.selectedpoints)
    assert seen == set(range(n)) and picked == set(selected)
    assert all(len(c) == 1 for c in colour_of.values()) and len({c.pop() for c in colour_of.values()}) == 3
    assert "given class" in fig.layout.title.text and "&lt;b&gt;ship&lt;/b&gt;" in {t.name for t in fig.data}
    # by rank, too, the selection is drawn
    fig = figures.embedding_figure(rng.normal(size=(n, 2)), rng.normal(size=n), "ip", noisy, selected=selected)
    assert {int(t.customdata[i][0]) for t in fig.data for i in t.selectedpoints} == set(selected)


def test_distribution_titles_read_on_white_in_every_methods_colour():
    """Issue 21: the IP + loss panel's title was light cyan (#9edae5) on white."""
    from influence_core.methods import METHODS

    scores = {name: np.linspace(-1, 1, 20) for name in METHODS}
    fig = figures.score_distributions(scores, None)
    for annotation in fig.layout.annotations:
        colour = annotation.font.color
        r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        assert 1.05 / (0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] + 0.05) >= 4.5, (annotation.text, colour)
    ip_combined = next(a for a in fig.layout.annotations if a.text == "ip_combined")
    red, green, blue = (int(ip_combined.font.color[i : i + 2], 16) for i in (1, 3, 5))
    assert blue > red and green > red  # still its cyan hue, darker
