"""Scores page: says what is missing; computes methods in the background; table has a column per method."""

import numpy as np

from influence_core.api import compute_scores
from influence_core.data import load_dataset
from influence_core.session import get_workspace, load_selection

from .conftest import no_errors, open_page, settle


def test_without_model_links_to_the_model_page(workspace):
    at = open_page("3_Scores.py")
    assert not at.exception
    assert any("train or upload a model first" in i.value for i in at.info)


def test_compute_ip_ensemble_adds_a_column_equal_to_the_library(scored):
    at = open_page("3_Scores.py")
    at.multiselect[0].set_value(["ip", "ip_ensemble"]).run()
    next(b for b in at.button if b.label == "Compute scores").click().run()
    at = settle(at)
    no_errors(at)
    sel = load_selection(scored)
    assert [r.label for r in sel.runs] == ["ip", "ip_ensemble"]
    table = at.dataframe[-1].value
    ds = load_dataset("moons", seed=0)
    fitted = get_workspace(scored).get_or_train(ds, "mlp", sel.train_config())
    expected = compute_scores(ds, fitted, "ip_ensemble", "utility")
    np.testing.assert_allclose(table.sort_values("index")["ip_ensemble"].to_numpy(), expected, rtol=1e-6)
    # sorted most detrimental first by the primary method
    assert np.all(np.diff(table["ip"].to_numpy()) >= 0)
    quality = at.dataframe[0].value
    assert set(quality["method"]) == {"ip", "ip_ensemble"} and (quality["AUROC (noisy vs clean)"] > 0.8).all()
