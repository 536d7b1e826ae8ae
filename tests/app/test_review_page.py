"""Review page: relabel / remove / keep per sample and in batches, undo; all saved to SQLite at once."""


from influence_core.data import load_dataset
from influence_core.review import DecisionLog
from influence_core.session import decision_scope

from .conftest import no_errors, open_page, shown


def _log(root):
    ds = load_dataset("moons", seed=0)
    return DecisionLog(root / "decisions.sqlite").current(decision_scope(ds))


def test_without_model_links_to_the_model_page(workspace):
    at = open_page("5_Review.py")
    assert not at.exception
    assert any("train or upload a model first" in i.value for i in at.info)


def test_decisions_per_sample_batch_and_undo(scored):
    at = open_page("5_Review.py")
    no_errors(at)
    keys = [b.key for b in at.button if b.key and b.key.startswith("relabel-")]
    first, second = int(keys[0].split("-")[1]), int(keys[1].split("-")[1])
    at.button(key=f"relabel-{first}").click().run()
    at.button(key=f"remove-{second}").click().run()
    no_errors(at)
    current = _log(scored)
    given = int(load_dataset("moons", seed=0).train.y[first])
    assert current[first].action == "relabel" and current[first].new_label == 1 - given
    assert current[second].action == "remove"
    # decided samples left the "to review" list
    assert f"relabel-{first}" not in [b.key for b in at.button]
    # batch keep of two more, then undo takes back exactly that batch
    rest = [int(k.split("-")[1]) for k in (b.key for b in at.button) if k and k.startswith("keep-")][:2]
    at.multiselect(key="batch-rows").set_value(rest).run()
    next(b for b in at.button if b.label == "Keep all").click().run()
    assert {r: _log(scored)[r].action for r in rest} == {r: "keep" for r in rest}
    next(b for b in at.button if b.label == "Undo").click().run()
    after = _log(scored)
    assert set(after) == {first, second}
    # "Why flagged" lists the score under each method
    assert at.dataframe[0].value["method"].tolist() == ["ip"]


def test_a_lasso_selection_from_explore_arrives_as_a_batch(scored):
    at = open_page("5_Review.py")
    at.session_state["review_batch"] = [3, 4, 200]
    at.run()
    no_errors(at)
    assert any("3 samples selected on the Explore map" in i.value for i in at.info)
    assert at.multiselect(key="batch-rows").value == [3, 4, 200]
    next(b for b in at.button if b.label == "Remove all").click().run()
    assert {r: d.action for r, d in _log(scored).items()} == {3: "remove", 4: "remove", 200: "remove"}
    assert at.multiselect(key="batch-rows").value == []  # the batch is cleared after the action


def _visible(at):
    return [int(b.key.split("-")[1]) for b in at.button if b.key and b.key.startswith("keep-")]


def _ordered_by(at):
    return [shown(m.value).replace("**", "") for m in at.markdown if "Ordered by:" in m.value]


def test_order_by_any_computed_run_says_which_and_is_kept(scored):
    import numpy as np

    from influence_core.session import ScoreRun, get_workspace, load_selection, save_selection

    ds = load_dataset("moons", seed=0)
    sel = load_selection(scored)
    ws = get_workspace(scored)
    fitted = ws.get_or_train(ds, "mlp", sel.train_config())
    ip = ws.get_or_score(ds, fitted, "ip")
    loss_oof = ws.get_or_score(ds, fitted, "loss", folds=2)
    sel.add_run(ScoreRun("loss", folds=2))
    save_selection(sel, scored)
    at = open_page("5_Review.py")
    no_errors(at)
    # default: the selection's primary run
    assert _ordered_by(at) == ["Ordered by: IP, in-sample"]
    assert _visible(at) == np.argsort(ip, kind="stable")[: len(_visible(at))].tolist()
    at.selectbox[0].set_value("loss·oof2").run()
    no_errors(at)
    assert _ordered_by(at) == ["Ordered by: Loss, out of fold (2)"]
    rows = _visible(at)
    assert rows == np.argsort(loss_oof, kind="stable")[: len(rows)].tolist()
    assert rows != np.argsort(ip, kind="stable")[: len(rows)].tolist()  # a different order than the default
    assert load_selection(scored).primary == "loss·oof2"
    # a fresh session (restart) keeps the choice
    again = open_page("5_Review.py")
    assert again.selectbox[0].value == "loss·oof2" and _visible(again) == rows
