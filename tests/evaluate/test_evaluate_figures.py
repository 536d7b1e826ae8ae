"""Figure builders: the right traces, the reference cross, the inverted axis, the shaded quadrant."""

import pytest

from influence_core.errors import InfluenceError
from influence_core.evaluate.figures import attack_boxplot, pareto_figure


def _stat(mean, std=0.01):
    return {"mean": mean, "std": std}


RESULT = {
    "results": {
        "full": {"label": "full", "accuracy": _stat(0.80), "fairness_gap": _stat(0.20), "attacked_accuracy": _stat(0.7)},
        "random": {"label": "random", "accuracy": _stat(0.79), "fairness_gap": _stat(0.21), "attacked_accuracy": _stat(0.7)},
        "ip": {"label": "IP", "accuracy": _stat(0.83), "fairness_gap": _stat(0.15), "attacked_accuracy": _stat(0.75)},
        "bad": {"label": "Bad", "error": "failed", "accuracy": None, "fairness_gap": None, "attacked_accuracy": None},
    },
    "runs": [
        {"method": "full", "seed": 0, "accuracy": 0.8, "attack_accuracies": [0.70, 0.72]},
        {"method": "full", "seed": 1, "accuracy": 0.81, "attack_accuracies": [0.69, 0.71]},
        {"method": "ip", "seed": 0, "accuracy": 0.83, "attack_accuracies": [0.75, 0.76]},
    ],
}


def test_pareto_has_the_reference_cross_inverted_axis_and_shaded_quadrant():
    fig = pareto_figure(RESULT)
    names = [t.name for t in fig.data]
    assert names == ["full data", "random", "IP"]  # the failed method has no point
    cross = fig.data[0]
    assert list(cross.x) == [pytest.approx(80.0)] and list(cross.y) == [pytest.approx(20.0)]
    assert cross.marker.symbol == "x"
    ip = fig.data[2]
    assert (ip.x[0], ip.y[0]) == (pytest.approx(83.0), pytest.approx(15.0))
    assert fig.layout.yaxis.autorange == "reversed"
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1
    r = rects[0]
    # more accurate (x right of the cross) and a smaller gap (y below 20, shown above it on the reversed axis)
    assert r.x0 == pytest.approx(80.0) and r.x1 > 83.0
    assert r.y0 == pytest.approx(20.0) and r.y1 < 15.0
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert {(s.x0 == s.x1) for s in lines} == {True, False}  # one vertical, one horizontal through the cross


def test_pareto_needs_a_fairness_gap():
    no_gap = {"results": {"full": {"accuracy": _stat(0.8), "fairness_gap": None}}}
    with pytest.raises(InfluenceError):
        pareto_figure(no_gap)


def test_attack_boxplot_has_pre_post_and_method_boxes():
    fig = attack_boxplot(RESULT)
    assert [t.name for t in fig.data] == ["pre-attack (full)", "post-attack (full)", "IP"]
    assert list(fig.data[0].y) == pytest.approx([80.0, 81.0])
    assert list(fig.data[1].y) == pytest.approx([70.0, 72.0, 69.0, 71.0])
    assert list(fig.data[2].y) == pytest.approx([75.0, 76.0])


def _row(label, acc, gap, std=0.01, n=3):
    return {"label": label, "accuracy": {"mean": acc, "std": std, "n": n}, "fairness_gap": {"mean": gap, "std": std, "n": n}}


def test_pareto_names_methods_in_the_legend_with_one_colour_each_and_seed_error_bars():
    from influence_core.figures import method_colour

    rows = {"full": _row("full", 0.80, 0.20), "random": _row("random", 0.80, 0.20),
            "ip": _row("IP", 0.82, 0.15), "ip_ensemble": _row("IP Ensemble", 0.82, 0.15)}  # two methods on one point
    fig = pareto_figure({"results": rows})
    points = fig.data[1:]
    assert [t.name for t in points] == ["random", "IP", "IP Ensemble"]
    for t, name in zip(points, ["random", "ip", "ip_ensemble"]):
        assert "text" not in t.mode and not t.text  # no labels printed on the plot: they cannot collide
        assert t.showlegend is not False
        assert t.marker.color == method_colour(name)
        assert t.error_x.array[0] == pytest.approx(1.0) and t.error_y.array[0] == pytest.approx(1.0)  # std × 100
    # Methods on one point stay distinguishable: different open symbols, the random control's among them.
    assert len({t.marker.symbol for t in points}) == 3 and all(str(t.marker.symbol).endswith("-open") for t in points)
    # One seed: no spread to show, so no error bars.
    one = pareto_figure({"results": {k: _row(v["label"], v["accuracy"]["mean"], v["fairness_gap"]["mean"], std=0.0, n=1)
                                     for k, v in rows.items()}})
    assert all(t.error_x.array is None and t.error_y.array is None for t in one.data)
    # Several seeds of one convex model (logistic regression: every seed the same optimum): no zero-length bars.
    same = pareto_figure({"results": {k: _row(v["label"], v["accuracy"]["mean"], v["fairness_gap"]["mean"], std=0.0, n=3)
                                      for k, v in rows.items()}})
    assert all(t.error_x.array is None and t.error_y.array is None for t in same.data)


def test_attack_boxes_count_each_model_once_in_the_methods_colour():
    from influence_core.figures import method_colour

    result = {
        "results": {"full": _row("full", 0.8, 0.2), "ip": _row("IP", 0.83, 0.15)},
        "runs": [  # logistic regression: one model for every seed (reused, or identical records)
            {"method": "full", "seed": 0, "accuracy": 0.8, "attack_accuracies": [0.70, 0.72]},
            {"method": "full", "seed": 1, "accuracy": 0.8, "attack_accuracies": [0.70, 0.72], "reused_from_seed": 0},
            {"method": "ip", "seed": 0, "accuracy": 0.83, "attack_accuracies": [0.75, 0.76]},
            {"method": "ip", "seed": 1, "accuracy": 0.83, "attack_accuracies": [0.75, 0.76]},
        ],
    }
    fig = attack_boxplot(result)
    assert list(fig.data[0].y) == pytest.approx([80.0])
    assert list(fig.data[1].y) == pytest.approx([70.0, 72.0])
    assert list(fig.data[2].y) == pytest.approx([75.0, 76.0])
    assert [t.marker.color for t in fig.data] == [method_colour("full"), method_colour("full"), method_colour("ip")]


def test_no_attack_chart_when_the_attacks_change_nothing():
    from influence_core.evaluate.figures import attacks_without_effect

    result = {"results": {"full": _row("full", 0.8, 0.2), "ip": _row("IP", 0.83, 0.15)},
              "runs": [{"method": "full", "seed": 0, "accuracy": 0.8, "attack_accuracies": [0.8, 0.8]},
                       {"method": "ip", "seed": 0, "accuracy": 0.83, "attack_accuracies": [0.83, 0.83]}]}
    assert "changed no prediction" in attacks_without_effect(result)
    with pytest.raises(InfluenceError, match="changed no prediction"):
        attack_boxplot(result)
    assert attacks_without_effect(RESULT) is None


def _acc_result(full_accs, ip_accs):
    import numpy as np

    def stat(v):
        return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}

    return {"results": {"full": {"label": "full", "accuracy": stat(full_accs)},
                        "ip": {"label": "IP", "accuracy": stat(ip_accs)}},
            "runs": [{"method": "full", "seed": i, "accuracy": a} for i, a in enumerate(full_accs)]
                    + [{"method": "ip", "seed": i, "accuracy": a} for i, a in enumerate(ip_accs)]}


def test_accuracy_chart_shows_each_arms_clean_accuracy_with_the_seeds_spread():
    """Issue 21: the only chart was accuracy under attack; clean test accuracy after trimming had none."""
    from influence_core.evaluate.figures import accuracy_figure

    result = _acc_result([0.70, 0.75], [0.74, 0.76])
    fig = accuracy_figure(result)
    means = {t.name: t for t in fig.data if t.error_y is not None and t.name in ("full", "IP")}
    assert list(means["full"].y) == pytest.approx([72.5]) and list(means["IP"].y) == pytest.approx([75.0])
    assert list(means["full"].error_y.array) == pytest.approx([100 * result["results"]["full"]["accuracy"]["std"]])
    seeds = next(t for t in fig.data if t.name == "full: seeds")
    assert list(seeds.y) == pytest.approx([70.0, 75.0])  # each seed's accuracy is on the chart
    assert "no attack" in fig.layout.yaxis.title.text


def test_a_sentence_when_the_seeds_spread_is_as_large_as_the_gain():
    from influence_core.evaluate.figures import spread_note

    noisy = spread_note(_acc_result([0.70, 0.75], [0.74, 0.76]))  # gain 2.5 points, full's std 3.54 points
    assert noisy is not None and noisy.startswith("With 2 seeds") and "IP +2.50" in noisy and "±3.54" in noisy
    assert spread_note(_acc_result([0.700, 0.701], [0.80, 0.801])) is None  # a gain far beyond the spread
    assert spread_note(_acc_result([0.70], [0.71])) is None  # one seed: no spread to compare with
