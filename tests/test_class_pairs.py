"""The class-pair map (influence_core/class_pairs.py): the confident joint is cleanlab's called directly (in-sample
and out of fold), flagged pairs and the top off-diagonal cells are counted by hand, the map has one clickable point per
off-diagonal cell (outlining the top ones), and a click's selection maps back only to a valid cell."""

from __future__ import annotations

import json

import numpy as np
import pytest

from influence_core.class_pairs import ClassPairs, confident_joint, flagged_pairs, top_pairs
from influence_core.errors import InfluenceError
from influence_core.figures import class_pair_map, class_pair_of_selection, selected_points
from influence_core.project import Project, ScoreRun


def test_confident_joint_is_cleanlabs():
    from cleanlab.count import compute_confident_joint

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.5, size=300)
    labels = np.concatenate([np.arange(4), rng.integers(0, 4, 296)])
    ours = confident_joint(labels, probs)
    assert ours.dtype == np.int64 and ours.shape == (4, 4)
    np.testing.assert_array_equal(ours, compute_confident_joint(labels, probs))
    # by hand for one clear case: every sample confidently its label's successor → the mass one step off the
    # diagonal, but for the one sample per class that cleanlab keeps on the diagonal (each class keeps a clean label)
    sure = np.full((40, 4), 0.02)
    y = np.arange(40) % 4
    sure[np.arange(40), (y + 1) % 4] = 0.94
    expected = np.zeros((4, 4), dtype=np.int64)
    for i in range(4):
        expected[i, (i + 1) % 4], expected[i, i] = 9, 1
    np.testing.assert_array_equal(confident_joint(y, sure), expected)


def test_confident_joint_refuses_mismatched_shapes_in_one_line():
    with pytest.raises(InfluenceError, match="N×C probabilities"):
        confident_joint(np.array([0, 1, 1]), np.ones((2, 2)) / 2)


def test_flagged_pairs_and_top_cells_by_hand():
    given = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1, 2])
    predicted = np.array([1, 1, 0, 1, 0, 0, 2, 2, 2, 1])
    rows = np.array([0, 1, 2, 3, 4, 5, 7])  # 6, 8, 9 not flagged
    m = flagged_pairs(given, predicted, rows, 3)
    expected = np.array([[0, 2, 1],  # rows 0, 1 → (0,1); row 7 → (0,2)
                         [1, 1, 0],  # row 2 → (1,0); row 3 → (1,1)
                         [2, 0, 0]])  # rows 4, 5 → (2,0)
    np.testing.assert_array_equal(m, expected)
    assert top_pairs(m, 3) == [(0, 1, 2), (2, 0, 2), (0, 2, 1)]  # the diagonal (1,1) never counts; ties by cell
    assert top_pairs(m, 10) == [(0, 1, 2), (2, 0, 2), (0, 2, 1), (1, 0, 1)]  # empty cells left out
    assert ClassPairs(m, "flagged", ("a", "b", "c")).top(1) == [(0, 1, 2)]


def test_the_map_has_one_selectable_point_per_off_diagonal_cell_and_outlines_the_top_cells():
    m = np.array([[50, 7, 0], [1, 40, 9], [0, 3, 30]])
    fig = class_pair_map(m, ["cat", "dog", "<b>x</b>"], top_pairs(m, 2), "given → suggested")
    cells, diagonal = fig.data
    assert cells.type == diagonal.type == "scatter"  # Plotly selects scatter points on a click, not heatmap cells
    off = [(i, j) for i in range(3) for j in range(3) if i != j]
    names = ["cat", "dog", "&lt;b&gt;x&lt;/b&gt;"]  # class names as text, never markup
    # one point per off-diagonal cell: [given, suggested, count, their names], drawn at its cell, coloured by count
    assert [tuple(c) for c in cells.customdata] == [(i, j, m[i, j], names[i], names[j]) for i, j in off]
    assert list(cells.y) == [i for i, _ in off] and list(cells.x) == [j for _, j in off]
    assert list(cells.marker.color) == [m[i, j] for i, j in off] and cells.texttemplate == "%{customdata[2]}"
    custom = json.loads(fig.to_json())["data"][0]["customdata"]  # what the browser gets: plain JSON lists
    assert custom[1] == [0, 2, 0, "cat", names[2]]
    assert list(diagonal.text) == ["50", "40", "30"] and diagonal.customdata is None  # no pair to open there
    assert list(fig.layout.yaxis.ticktext) == list(fig.layout.xaxis.ticktext) == names
    assert fig.layout.yaxis.range == (2.5, -0.5)  # given class 0 at the top
    boxes = sorted((round((s.y0 + s.y1) / 2), round((s.x0 + s.x1) / 2)) for s in fig.layout.shapes)
    assert boxes == [(0, 1), (1, 2)]


def _click(*points):
    return {"selection": {"points": list(points), "point_indices": [], "box": [], "lasso": []}}


def test_a_click_maps_back_only_to_an_off_diagonal_cell_of_this_matrix():
    m = np.array([[50, 7, 0], [1, 40, 9], [0, 3, 30]])
    assert class_pair_of_selection(_click({"curve_number": 0, "point_index": 1, "customdata": [0, 2]}), m) == (0, 2, 0)
    assert class_pair_of_selection(_click({"curve_number": 0, "customdata": [2, 1, 0, "x", "dog"]}), m) == (2, 1, 3)
    # the count is the matrix's, whatever the browser says; several points: the first valid one
    assert class_pair_of_selection(_click({"curve_number": 1, "customdata": [1, 1]},
                                          {"curve_number": 0, "customdata": [1, 2], "text": "999"}), m) == (1, 2, 9)
    garbage = [None, "x", 3, [], {}, {"selection": None}, {"selection": {"points": "0,1"}}, _click(),
               _click({"curve_number": 1, "customdata": [1, 1]}),  # the diagonal trace
               _click({"curve_number": 0, "customdata": [1, 1]}),  # a diagonal cell, however it is named
               *(_click({"curve_number": 0, "customdata": cell}) for cell in  # no off-diagonal cell of m
                 ([0, 3], [-1, 0], [0.0, 1.0], [True, 0], ["0", "1"], [0], {"0": 0, "1": 1}, "0,1", None)),
               _click({"curve_number": "0", "customdata": [0, 1]}),
               _click({"curve_number": 0}), _click({"customdata": [0, 1]}), _click("cell 0,1"), _click([0, 1]),
               _click(*[{"curve_number": 1, "customdata": [0, 1]}] * 100, {"curve_number": 0, "customdata": [0, 1]})]
    for selection in garbage:
        assert class_pair_of_selection(selection, m) is None, selection
    assert selected_points(_click({"a": 1})) == [{"a": 1}] and selected_points("nope") == []


def test_the_projects_maps_match_their_definitions(tmp_path):
    from cleanlab.count import compute_confident_joint

    proj = Project.open("p", tmp_path)
    ds = proj.use_dataset("moons", seed=0)
    proj.train("mlp", {"epochs": 20, "lr": 0.01, "seed": 0, "checkpoint_every": 0})
    proj.score(ScoreRun("loss"))
    y = ds.train.y.numpy()
    preds, probs = proj.predictions()
    joint = proj.class_pairs("confident_joint")
    np.testing.assert_array_equal(joint.matrix, compute_confident_joint(y, probs))
    assert joint.classes == tuple(ds.classes) and not joint.out_of_fold
    flagged = proj.class_pairs("flagged")
    rows = proj.flagged()
    assert flagged.matrix.sum() == len(rows)
    assert flagged.matrix[0, 1] == int(((y[rows] == 0) & (preds[rows] == 1)).sum())
    with pytest.raises(InfluenceError, match="not 'nope'"):
        proj.class_pairs("nope")
    # out of fold: cleanlab on probabilities of fold models trained here, outside the project's engine and cache
    from influence_core.api import fold_models_for, out_of_fold_probabilities
    from influence_core.folds import FoldSettings

    settings = FoldSettings(2)
    oof = out_of_fold_probabilities(ds, fold_models_for(ds, proj.model(), settings), settings)
    joint = proj.class_pairs("confident_joint", folds=2)
    assert joint.out_of_fold
    np.testing.assert_array_equal(joint.matrix, compute_confident_joint(y, oof))
