"""Data issues beyond wrong labels (issue 20): cleanlab's Datalab findings as rankings, duplicate groups'
influence, and the annotators' report where a data set has several annotators."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import write_text_atomic
from ..errors import InfluenceError, writing
from ..grads import Progress
from ..memo import MEMORY
from ..jobs import Job, JobHandle

if TYPE_CHECKING:
    from ..data_issues import DataIssues


class IssuesMixin:
    """Data issues (Datalab) and annotators, as rankings. A part of `Project`."""

    def find_data_issues(self, folds: int = 0, progress: Progress | None = None, settings=None) -> "DataIssues":
        """Datalab's findings on the current data and model (`data_issues.find_data_issues`; out of fold with
        ``folds`` ≥ 2; ``settings``: `DataIssueSettings` or a dict of its fields), stored and memoised; what
        `data_issues` and `issue_rankings` return from now on."""
        from dataclasses import asdict

        from ..data_issues import LAST_RUN_FILE, make_settings

        self.require("decide")  # it writes the project's last run (what Review lists); a viewer reads `data_issues`
        settings = make_settings(settings)
        found = self._data_issues(self._current_model(), int(folds), settings, progress)
        with writing("the data issues' settings"):
            write_text_atomic(self.folder / LAST_RUN_FILE, json.dumps({"folds": int(folds), "settings": asdict(settings)}))
        return found

    def _data_issues(self, current: tuple, folds: int, settings, progress: Progress | None = None, *,
                     stored_only: bool = False):
        from ..data_issues import has_stored_data_issues, stored_data_issues

        _, dataset, fitted = current
        if stored_only and not has_stored_data_issues(self.cache, dataset, fitted, folds=folds, settings=settings):
            return None
        return stored_data_issues(self.cache, dataset, fitted, folds=folds, settings=settings, progress=progress,
                                  memo_scope=str(self.root),
                                  fold_models=lambda report: self.engine.fold_models(dataset, fitted, folds, report))

    def data_issues(self) -> "DataIssues | None":
        """The stored findings for the current data and model (with the folds and settings of the last run), None if
        not run."""
        from ..data_issues import last_run

        state = self.state()
        if not state.has_model:
            return None
        return self._data_issues(self._current_model(state), *last_run(self.folder), stored_only=True)

    def data_issues_in_background(self, folds: int = 0, settings=None) -> Job:
        """`find_data_issues` as the "data_issues" job, with progress (fold models first when ``folds`` ≥ 2)."""
        from ..data_issues import make_settings

        settings = make_settings(settings)  # a bad setting: one line now, not in the job

        def run(handle: JobHandle) -> dict:
            def progress(fraction: float, message: str) -> None:
                handle.check()
                handle.report(fraction, message)

            found = self.find_data_issues(folds, progress, settings)
            return {"flagged": found.summary().set_index("issue")["count"].to_dict(),
                    "folds": int(folds)}

        return self.start_job("data_issues", "Finding data issues with Datalab" + (f" ({folds} folds)" if folds else ""), run)

    def issue_rankings(self) -> dict[str, np.ndarray]:
        """Each issue type Datalab checked as a ranking, "issue: near duplicate" → one score per training row (lower
        = more likely an issue); {} until `find_data_issues` has run on the current data and model."""
        from ..data_issues import issue_label

        found = self.data_issues()
        return {} if found is None else {issue_label(k): v for k, v in found.rankings().items()}

    @staticmethod
    def data_issue_settings(settings=None):
        """``settings`` (a dict of `DataIssueSettings` fields) checked and made settings; a bad one: one line."""
        from ..data_issues import make_settings

        return make_settings(settings)

    def duplicate_group_influence(self):
        """(run label, table) of `data_issues.group_influence`: each duplicate group's summed score of the first
        computed run whose scores add up over a group (IP, exact, ...); None without duplicates or such a run."""
        from ..data_issues import ADDITIVE_METHODS, group_influence

        found = self.data_issues()
        run = next((r for r in self.state().runs if r.method in ADDITIVE_METHODS), None)
        if found is None or run is None or not found.duplicate_sets:
            return None
        return run.label, group_influence(found.duplicate_sets, self.scores()[run.label], self.source_index(), run.impact)

    def annotator_names(self) -> list[str]:
        """The current data set's annotators (CIFAR-10N: random1-3; an upload: its annotator columns); [] if none."""
        return list(self.dataset().annotator_names or [])

    def annotator_labels(self, rows) -> list[str]:
        """What each annotator said for training rows ``rows``, one line per row ("random1: cat · random2: dog");
        "" for every row of a data set without annotators."""
        from ..annotators import describe_labels

        dataset, rows = self.dataset(), np.asarray(rows, dtype=np.int64).reshape(-1)
        if dataset.annotators is None:
            return [""] * len(rows)
        return describe_labels(dataset.annotators[rows], list(dataset.annotator_names), dataset.classes)

    def annotator_report(self, folds: int = 0, progress: Progress | None = None) -> dict[str, np.ndarray]:
        """cleanlab's multi-annotator report (`annotators.annotator_report`) on the current model's probabilities,
        out of fold with ``folds`` ≥ 2 (fold models trained once and cached); stored in the workspace, memoised."""
        from ..annotators import AnnotatorSettings, annotator_report
        from ..keys import annotator_key, hash_key

        _, dataset, fitted = self._current_model()
        if dataset.annotators is None:
            raise InfluenceError("this data set has no annotators' labels (CIFAR-10N has three; an upload names its "
                                 "annotator columns)")

        def compute() -> dict[str, np.ndarray]:
            probs = self.train_probabilities(folds, progress)  # in-sample: the Review cards' probabilities
            return annotator_report(dataset.annotators, probs, dataset.annotator_names)

        key = annotator_key(dataset, fitted, folds, AnnotatorSettings())
        return dict(MEMORY.get("results", f"annotators:{hash_key(key)}",
                               lambda: self.cache.get_or_compute_arrays("annotators", key, compute)))

    def annotator_table(self, folds: int = 0):
        """Each annotator's quality, agreement with the consensus, samples labelled and worst class (a table, the
        lowest quality first)."""
        from ..annotators import annotator_table

        return annotator_table(self.annotator_report(folds), self.dataset().classes)

    def annotator_ranking(self, folds: int = 0) -> np.ndarray:
        """The consensus label's quality per training sample as a ranking (lower = more likely wrong)."""
        from ..annotators import consensus_ranking

        return consensus_ranking(self.annotator_report(folds))

    def _issue_table(self):
        """Datalab's issue table (columns sample, index, issue, score, is_issue), None before it ran."""
        found = self.data_issues()
        return found.table if found is not None else None
