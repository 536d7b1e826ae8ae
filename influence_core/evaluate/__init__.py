"""Close the loop: act on the most detrimental samples (trim / relabel / reweight), retrain, and compare
with the full data and a random control. Scores everywhere: lower = more detrimental."""

from .actions import (ACTIONS, ActionResult, ActionSettings, apply_action, most_detrimental, relabel, reweight,
                      softmax_weights, trim)
from .retrain import AttackSettings, attack_subsets, evaluate_module, fairness_gap, retrain_and_evaluate
from .runner import (ExperimentResult, ExperimentSettings, cleaned_split_table, format_table, journal_path,
                     run_experiment)

__all__ = [
    "ACTIONS", "ActionResult", "ActionSettings", "apply_action", "most_detrimental", "relabel", "reweight",
    "softmax_weights", "trim", "AttackSettings", "attack_subsets", "evaluate_module", "fairness_gap",
    "retrain_and_evaluate", "ExperimentResult", "ExperimentSettings", "cleaned_split_table", "format_table",
    "journal_path", "run_experiment",
]
