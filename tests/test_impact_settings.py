"""Impact settings (issue 10): frozen, type-checked like method settings; an unknown setting is a one-line error;
None means "the default"; the workspace score key is stable for equal settings and covers every setting."""

from __future__ import annotations

import dataclasses

import pytest

from influence_core import InfluenceError
from influence_core.impacts import (IMPACTS, FairnessImpact, RobustnessImpact, UtilityImpact, impact_settings_for,
                                    make_impact)
from influence_core.keys import score_key


def test_impacts_are_frozen_and_equal_settings_compare_equal():
    imp = make_impact("robustness", epsilon=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        imp.epsilon = 0.3
    assert imp == RobustnessImpact(epsilon=0.2) and hash(imp) == hash(RobustnessImpact(epsilon=0.2))
    assert make_impact(imp) is imp and make_impact(imp, c=2.0) == RobustnessImpact(c=2.0, epsilon=0.2)


@pytest.mark.parametrize("name, key, takes", [("utility", "c", "val_trim"), ("fairness", "val_trim", "positive_class"),
                                              ("robustness", "positive_class", "c, epsilon, val_trim"),
                                              ("utility", "bogus", "val_trim")])
def test_an_unknown_setting_is_a_one_line_error_naming_what_the_impact_takes(name, key, takes):
    with pytest.raises(InfluenceError) as err:
        make_impact(name, **{key: 1})
    msg = str(err.value)
    assert "\n" not in msg and f"impact '{name}' has no setting {key}" in msg and msg.endswith(f"it takes: {takes}")


def test_none_values_are_accepted_and_mean_the_default():
    common = {"c": None, "epsilon": None, "positive_class": None, "val_trim": None}
    for name, cls in IMPACTS.items():
        assert make_impact(name, **common) == cls()


@pytest.mark.parametrize("name, settings, message", [
    ("utility", {"val_trim": "x"}, "setting val_trim must be a float"),
    ("utility", {"val_trim": True}, "setting val_trim must be a float"),
    ("utility", {"val_trim": 1.5}, "val_trim must be in [0, 1)"),
    ("fairness", {"positive_class": 1.5}, "positive_class must be a whole number"),
    ("fairness", {"positive_class": -1}, "positive_class must be a class index"),
    ("robustness", {"epsilon": -0.1}, "epsilon must be ≥ 0"),
    ("robustness", {"c": 0}, "c must be positive"),
])
def test_settings_are_type_and_range_checked(name, settings, message):
    with pytest.raises(InfluenceError) as err:
        make_impact(name, **settings)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_direct_construction_is_checked_and_numbers_are_coerced():
    with pytest.raises(InfluenceError, match="must be a float"):
        UtilityImpact(val_trim="0.1")
    imp = make_impact("robustness", c=2, epsilon=1, val_trim=0)
    assert (type(imp.c), type(imp.epsilon), type(imp.val_trim)) == (float, float, float)
    assert type(FairnessImpact(positive_class=1.0).positive_class) is int


def test_impact_settings_for_keeps_only_what_the_impact_takes():
    common = {"c": 1.5, "epsilon": 0.2, "positive_class": 0, "val_trim": None}
    assert impact_settings_for("utility", **common) == {}
    assert impact_settings_for("fairness", **common) == {"positive_class": 0}
    assert impact_settings_for("robustness", **common) == {"c": 1.5, "epsilon": 0.2}
    with pytest.raises(InfluenceError, match="unknown impact 'speed'"):
        impact_settings_for("speed", c=1.0)


def test_score_key_is_stable_for_equal_settings_and_covers_every_setting(blobs, blobs_logreg_fit):
    def key(impact, **imp):
        return score_key(blobs, blobs_logreg_fit, "ip", impact, impact_settings=imp or None)

    # equal settings, however written: int or float, None, the default spelled out
    assert key("robustness") == key("robustness", c=1.3, epsilon=0.1, val_trim=None) == key("robustness", c=None)
    assert key("robustness", val_trim=0) == key("robustness", val_trim=0.0)
    assert key("fairness", positive_class=1) == key("fairness") == key("fairness", positive_class=1.0)
    # every setting of every impact changes the key
    for name, cls in IMPACTS.items():
        for f in dataclasses.fields(cls):
            other = {"c": 2.0, "epsilon": 0.3, "positive_class": 0, "val_trim": 0.25, "label": 0}[f.name]
            assert key(name, **{f.name: other}) != key(name), (name, f.name)
