"""Score runs and rankings: computing and reading the runs' scores (the engine decides how), which ranking Review
orders and flags by, cleanlab's estimate, cost estimates, and the checks a front end makes before scoring."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..data.base import Dataset
from ..errors import InfluenceError
from ..grads import Progress
from ..impacts import IMPACTS, JOINT_RANKINGS, impacts_refused, twins_that_differ
from ..keys import score_key
from ..memo import MEMORY
from ..methods import METHODS
from ..models.train import FittedModel
from ..state import ScoreRun, Selection, flagged_rows
from ..annotators import CONSENSUS_RANKING


class ScoringMixin:
    """The project's score runs and rankings, and the checks made before scoring. A part of `Project`."""

    def score(self, run: ScoreRun, progress: Progress | None = None, *, details: dict | None = None,
              device: str | None = None, batch_size: int = 256, add: bool = True, cluster: Any = None,
              scheduler: str | None = None) -> np.ndarray:
        """Scores of every training sample by ``run`` (lower = more detrimental), from the cache or computed; ``add``
        keeps the run among the project's score columns (unless the model changed meanwhile). ``cluster`` ("local:N"
        or a `ClusterSpec`) / ``scheduler`` (or ``$INFLUENCE_DASK_SCHEDULER``): methods that can be sharded run on
        Dask, with progress per shard. For the library and the CLI (the machine's user); a page passes a cluster's
        name to `score_in_background`."""
        state, dataset, fitted = self._current_model()
        scores = self.engine.scores(dataset, fitted, progress=progress, details=details, device=device,
                                         batch_size=batch_size, cluster=cluster, scheduler=scheduler,
                                         **run.score_kwargs())
        if add:
            self._update_state(lambda s: s.add_run(run), only_if=lambda s: s.model_hash == state.model_hash)
        return scores

    def _run_result(self, dataset: Dataset, fitted: FittedModel, run: ScoreRun) -> tuple[np.ndarray, dict]:
        kwargs = run.score_kwargs()
        key = score_key(dataset, fitted, kwargs["method"], kwargs["impact"], kwargs["params"],
                                   kwargs["settings"], kwargs["impact_settings"], kwargs["folds"])

        def load() -> tuple[np.ndarray, dict]:
            details: dict = {}
            return self.engine.scores(dataset, fitted, details=details, **kwargs), details

        return MEMORY.get("results", f"{self.root}:{key}", load)

    def scores(self, state: Selection | None = None) -> dict[str, np.ndarray]:
        """Every computed run's scores (lower = more detrimental), by column label; of the runs in ``state`` when a
        reader needs its runs, scores and primary run from one reading (a background job adds runs meanwhile)."""
        state = state or self.state()
        if not state.runs:
            return {}
        _, dataset, fitted = self._current_model(state)
        return {run.label: self._run_result(dataset, fitted, run)[0] for run in state.runs}

    def notes(self) -> dict[str, str]:
        """What computed runs found that the user must know (e.g. exact influence on a Hessian that is not positive
        definite), by column label; stored with the scores."""
        state = self.state()
        if not state.runs:
            return {}
        _, dataset, fitted = self._current_model(state)
        out = {}
        for run in state.runs:
            note = self._run_result(dataset, fitted, run)[1].get("note")
            if note:
                out[run.label] = note
        return out

    def set_primary(self, label: str | None) -> None:
        """Order Review by the run ``label`` (None: the default choice again, see `primary_run`)."""
        self._update_state(lambda s: setattr(s, "primary", label))

    def primary_run(self, state: Selection | None = None) -> ScoreRun | None:
        """The ranking Review orders by and flags with: the one chosen there (`set_primary`); else, where the wrong
        labels are known, the computed ranking that finds them best (the Scores page's leaderboard, by AUROC); else
        the ranking the benchmark supports (README "Which ranking to trust": the loss, in-sample first); else the
        newest run. Computing runs hands the choice back to this default, so a new run can reach Review. Chosen among
        the runs of ``state`` (default: read now), as `scores` reads them."""
        state = state or self.state()
        chosen = next((r for r in state.runs if r.label == state.primary), None)
        if chosen is not None or not state.runs:
            return chosen
        _, dataset = self._current(state)
        if dataset.noise_mask is not None and dataset.noise_mask.any():
            from ..figures import detection_auroc

            noisy, scores = dataset.noise_mask.numpy().astype(bool), self.scores(state)
            return max(state.runs, key=lambda r: detection_auroc(scores[r.label], noisy))  # the first of equals
        losses = sorted((r for r in state.runs if r.method == "loss"), key=lambda r: r.folds)
        return losses[0] if losses else state.runs[-1]

    def set_flag_share(self, share: float) -> None:
        self._update_state(lambda s: setattr(s, "flag_share", float(share)))

    def flagged(self, label: str | None = None) -> np.ndarray:
        """Rows of the flagged samples: the ``flag_share`` lowest scores of ``label`` (default: the primary run)."""
        state = self.state()  # one reading: a job adding runs meanwhile never leaves the run without its scores
        run = self.primary_run(state) if label is None else next((r for r in state.runs if r.label == label), None)
        if run is None:
            issues = self.extra_rankings() if label is not None else {}  # an issue type as a ranking (issue 20)
            return flagged_rows(issues[label], state.flag_share) if label in issues else np.zeros(0, dtype=np.int64)
        return flagged_rows(self.scores(state)[run.label], state.flag_share)

    def describe_target(self, impact: str = "utility", impact_settings: dict | None = None) -> dict:
        """Which validation samples the impact target uses (`api.describe_target`), memoised per data and model."""
        from ..api import describe_target

        _, dataset, fitted = self._current_model()
        key = f"target:{dataset.fingerprint()}:{fitted.fingerprint()}:{impact}:{json.dumps(impact_settings, sort_keys=True)}"
        return dict(MEMORY.get("results", key, lambda: describe_target(dataset, fitted, impact, impact_settings)))

    def label_issues(self, folds: int = 0) -> dict:
        """cleanlab's estimate of how many labels are wrong (out of fold with ``folds`` ≥ 2, as cleanlab intends),
        memoised per data and model."""
        from ..api import estimate_label_issues

        _, dataset, fitted = self._current_model()

        def estimate() -> dict:
            fold_models = self.engine.fold_models(dataset, fitted, folds) if folds else None
            return estimate_label_issues(dataset, fitted, fold_models=fold_models, folds=folds or None)

        return dict(MEMORY.get("results", f"label-issues:{dataset.fingerprint()}:{fitted.fingerprint()}:{folds}", estimate))

    def method_costs(self, params: str = "all", folds: int = 0, settings: dict[str, dict] | None = None) -> dict[str, float]:
        """Rough seconds each method (with ``settings[name]``) would take on the current data set and model: one
        forward + backward timed on this model (memoised), scaled by each method's cost class
        (`analysis.estimate_seconds`). For labels next to method names, not promises: a factor of two either way."""
        from ..analysis import cost_units, estimate_seconds

        _, dataset, fitted = self._current_model()
        units = MEMORY.get("results", f"cost:{fitted.fingerprint()}:{dataset.fingerprint()}:{params}",
                           lambda: cost_units(dataset, fitted, params))
        checkpoints = len(fitted.checkpoints or [])
        return {name: estimate_seconds(name, units, (settings or {}).get(name), folds, checkpoints) for name in METHODS}

    def angle_view_seconds(self, params: str = "all") -> float:
        """Rough seconds `angle_view` would take on the current model (`analysis.angle_view_seconds`), said before
        it starts; the model's timing is memoised with `method_costs`'."""
        from ..analysis import angle_view_seconds, cost_units

        _, dataset, fitted = self._current_model()
        units = MEMORY.get("results", f"cost:{fitted.fingerprint()}:{dataset.fingerprint()}:{params}",
                           lambda: cost_units(dataset, fitted, params))
        return angle_view_seconds(units)

    @staticmethod
    def check_method(method: str, settings: dict | None = None) -> dict:
        """What ``method`` is (`InfluenceMethod.describe`: parameters, needs_checkpoints, uses_impact, ...) once its
        name and ``settings`` are checked: an unknown name or key, a wrong type, a value out of range is one line."""
        from ..methods import get_method

        return type(get_method(method, **(settings or {}))).describe()

    @staticmethod
    def impact_settings(impact: str, applicable: dict, explicit: dict) -> dict:
        """``impact``'s settings: those of ``applicable`` it takes (values meant for any impact, e.g. the CLI's named
        flags; the rest ignored), then ``explicit``, checked (a key it does not take, a wrong type: one line)."""
        from ..impacts import impact_settings_for, make_impact

        settings = {**impact_settings_for(impact, **applicable), **explicit}
        make_impact(impact, **settings)
        return settings

    @staticmethod
    def sharded(method: str, cluster: str | None = None, scheduler: str | None = None) -> bool:
        """Whether `score` shards ``method`` on Dask with this ``cluster`` / ``scheduler``; a malformed one is refused
        in one line, before any connection."""
        from ..cluster import parse_cluster
        from ..engine import sharded

        parse_cluster(cluster, scheduler)
        return sharded(method, cluster, scheduler)

    def score_table(self, scores: np.ndarray, column: str = "score"):
        """``scores`` of the current data set's training samples as a table: index (row in the original data), label,
        score (lower = more detrimental), rank (1 = most detrimental) and, when known, is_noisy and clean_label."""
        from ..api import scores_frame

        return scores_frame(self.dataset(), scores, column)

    def flagged_cells(self, label: str | None = None):
        """(table, sentence) of `evaluate.baselines.flagged_cells` for the flagged samples of run ``label`` (default:
        the primary run); None when the data set has no sensitive attribute or nothing is scored."""
        from ..evaluate.baselines import flagged_cells

        _, dataset = self._current()
        rows = self.flagged(label)
        if dataset.train.sensitive is None or (label is None and self.primary_run() is None):
            return None
        return flagged_cells(dataset.train.y.numpy(), dataset.train.sensitive.numpy(), rows, dataset.classes,
                             dataset.sensitive_name or "group")

    @staticmethod
    def impacts_offered(dataset: Dataset, fitted: FittedModel) -> list[str]:
        """The impacts and joint rankings ``fitted`` on ``dataset`` can be scored for (`impacts_refused` says why
        not the others: no sensitive attribute, no twins that differ, token ids)."""
        refused = ScoringMixin.impacts_refused(dataset, fitted)
        return [n for n in (*IMPACTS, *JOINT_RANKINGS) if n not in refused]

    @staticmethod
    def impacts_refused(dataset: Dataset, fitted: FittedModel) -> dict[str, str]:
        """Each impact the app would offer that cannot be scored here, with its one-line reason (each impact's check)."""
        return impacts_refused(dataset, bool(getattr(fitted.module, "discrete_inputs", False)))

    @staticmethod
    def counterfactual_pairs(dataset: Dataset) -> tuple[int, int] | None:
        """(validation texts whose twin differs, validation texts) for the counterfactual impact; None without twins."""
        differ = twins_that_differ(dataset)
        return None if differ is None else (differ, len(dataset.val))

    @staticmethod
    def check_impact_for_model(impact: str, arch: str) -> None:
        """A one-line refusal, before any training, of an impact architecture ``arch`` cannot be scored for: the
        robustness impact on an ``hf:`` model (it reads token ids: no gradient step exists on them)."""
        from ..impacts import TOKEN_IDS_REFUSAL

        if "robustness" in impact.split("+") and arch.startswith("hf:"):
            raise InfluenceError(TOKEN_IDS_REFUSAL)

    def rankings(self, state: Selection | None = None) -> dict[str, np.ndarray]:
        """Every ranking a page may order or colour by: the computed runs' scores (of ``state``'s runs, see `scores`),
        then each data issue type's (`issue_rankings`); lower = more detrimental / more likely an issue."""
        return {**self.scores(state), **self.extra_rankings()}

    def extra_rankings(self) -> dict[str, np.ndarray]:
        """The rankings that are not score runs: each data issue type (`issue_rankings`) and, where the data set has
        several annotators, the quality of their consensus label ("annotators: consensus quality", in-sample)."""
        out = dict(self.issue_rankings())
        if self.annotator_names() and self.model() is not None:
            out[CONSENSUS_RANKING] = self.annotator_ranking(0)
        return out

    def primary_ranking(self, state: Selection | None = None) -> str | None:
        """The label Review orders by: an issue ranking chosen there (`set_primary`), else `primary_run`'s (among
        ``state``'s runs, as `rankings` reads them)."""
        state = state or self.state()
        if state.primary and state.primary in self.extra_rankings():
            return state.primary
        run = self.primary_run(state)
        return None if run is None else run.label
