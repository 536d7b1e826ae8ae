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
