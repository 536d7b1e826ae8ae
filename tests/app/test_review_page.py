"""Review page: relabel / remove / keep per sample and in batches, undo; all saved to SQLite at once."""


from influence_core.data import load_dataset
from influence_core.review import DecisionLog
from influence_core.session import decision_scope

from .conftest import no_errors, open_page


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
