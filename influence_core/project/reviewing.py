"""Review: the decision log (record, undo, reviewers), review views (filters, the view in the URL, saved views),
the class-pair map and bulk fixes (one batch of the decision log each)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.base import Dataset
from ..errors import InfluenceError, writing
from ..review import ACTIONS as DECISION_ACTIONS, DecisionLog, check_new_label, check_rows, reviewer_agreement
from ..state import decision_scope


class ReviewMixin:
    """Review: decisions, review views, the class-pair map and bulk fixes. A part of `Project`."""

    @property
    def decisions(self) -> DecisionLog:
        return DecisionLog(self.folder / "decisions.sqlite")

    def decision_scope(self, dataset: Dataset | None = None) -> str:
        return decision_scope(dataset if dataset is not None else self.dataset())

    def record(self, rows, action: str, new_label: int | None = None, *, session: str | None = None,
               event: str | None = None, user: str | None = None) -> int:
        """Record one batch of decisions on training rows of the current data set, by ``user`` (default: this
        project's user); returns its batch number. Refuses a user without the right to decide."""
        self.require("decide")
        source = self.source_index()
        rows = check_rows(rows, len(source))
        if action == "relabel" and new_label is not None:
            check_new_label(new_label, self.dataset())
        originals = [int(source[r]) for r in rows]
        with writing("record the decisions"):
            return self.decisions.record(self.decision_scope(), rows, action, new_label, user=user or self.user,
                                         session=session, event=event, originals=originals)

    def undo(self, session: str | None = None, *, event: str | None = None) -> int:
        """Take back the last batch of ``session`` (of anyone when None); returns how many decisions it held. An undo
        already applied under ``event`` (a replayed click) takes back nothing more."""
        self.require("decide")
        return self.decisions.undo(self.decision_scope(), session=session, event=event)

    def current_decisions(self) -> dict:
        return self.decisions.current(self.decision_scope())

    def reviewers(self) -> dict:
        """Per reviewer (``decided_by``), how many samples they keep, remove and relabel (their own latest decisions),
        and, for each pair who decided the same samples, their agreement and Cohen's κ (`review.reviewer_agreement`)."""
        by_reviewer = self.decisions.by_reviewer(self.decision_scope())
        counts = {who: {a: sum(c.split(":")[0] == a for c in cats.values()) for a in DECISION_ACTIONS}
                  for who, cats in sorted(by_reviewer.items())}
        return {"counts": counts, "agreement": reviewer_agreement(by_reviewer)}

    def can_undo(self, session: str) -> bool:
        """Whether reviewer ``session`` has a decision left to take back on the current data set."""
        return self.decisions.can_undo(self.decision_scope(), session=session)

    def decision_counts(self) -> dict[str, int]:
        """How many samples of the current data set are kept, removed and relabelled now."""
        return self.decisions.counts(self.decision_scope())

    def suggested_probabilities(self, label: str | None = None) -> tuple[np.ndarray, bool]:
        """(N×C class probabilities behind the suggested labels, out of fold?): out of fold — each sample by the fold
        model that did not train on it — when ranking ``label`` (default: the primary run) is, else in-sample."""
        run = self.primary_run() if label is None else next((r for r in self.state().runs if r.label == label), None)
        folds = int(run.folds or 0) if run is not None else 0
        return self.train_probabilities(folds), bool(folds)

    def bulk_relabel_preview(self, threshold: float, label: str | None = None, rows=None):
        """What "relabel every flagged sample whose suggested label has probability ≥ ``threshold``" would do
        (`bulk.relabel_preview`; flagged by ranking ``label``, default Review's — or only ``rows``, e.g. those a
        Review view lists; decided samples left alone)."""
        from ..bulk import relabel_preview

        label = label or self.primary_ranking()
        probs, oof = self.suggested_probabilities(label)
        candidates = self.flagged(label) if rows is None else [int(r) for r in rows if 0 <= int(r) < len(probs)]
        return relabel_preview(candidates, probs, self.dataset().train.y.numpy(), threshold,
                               decided=self.current_decisions(), out_of_fold=oof, scope=self.decision_scope())

    def duplicate_sets(self) -> list[list[int]]:
        """Groups of training rows that are duplicates (Datalab's, `data_issues`); empty until it has run."""
        issues = self.data_issues() if hasattr(self, "data_issues") else None
        return [[int(r) for r in group] for group in issues.duplicate_sets] if issues is not None else []

    def bulk_dedupe_preview(self, keep: str = "best", groups: list[list[int]] | None = None, label: str | None = None):
        """What "keep one of each duplicate group" would do (`bulk.dedupe_preview`): ``groups`` (default:
        `duplicate_sets`), keeping the best-scored by ranking ``label`` (default: Review's) or the first."""
        from ..bulk import dedupe_preview

        label = label or self.primary_ranking()
        scores = self.rankings().get(label) if keep == "best" and label else None
        return dedupe_preview(self.duplicate_sets() if groups is None else groups, scores, keep,
                              decided=self.current_decisions(), scope=self.decision_scope())

    def apply_bulk_fix(self, preview, *, session: str | None = None) -> int:
        """Record a bulk fix's preview as ONE batch by this project's user (so one undo takes it all back); returns the
        batch number. Refuses an empty fix and rows or classes outside the current data set."""
        from ..bulk import check_fix

        self.require("decide")
        dataset, source = self.dataset(), self.source_index()
        preview.check_current(self.decision_scope(), self.current_decisions())  # stale: other data, newer decisions
        rows = check_fix(preview, len(source), dataset.num_classes)
        with writing("record the bulk fix"):
            return self.decisions.record(self.decision_scope(), rows, preview.action, user=self.user, session=session,
                                         event=preview.event(), originals=[int(source[r]) for r in rows],
                                         new_labels=preview.new_labels)

    def last_bulk_fix(self) -> dict | None:
        """This user's latest bulk fix not undone — ``{"batch", "count", "kind"}`` — found in the decision log, so
        a refresh or another tab finds it too; None when there is none."""
        from ..bulk import EVENT_PREFIX, kind_of_event

        found = self.decisions.latest_batch(self.decision_scope(), EVENT_PREFIX, user=self.user)
        return None if found is None else {"batch": found[0], "count": found[1], "kind": kind_of_event(found[2])}

    def undo_bulk_fix(self, batch: int | None = None) -> int:
        """Take back a whole bulk fix in one step (default: `last_bulk_fix`); returns how many decisions it held."""
        self.require("decide")
        last = self.last_bulk_fix()  # only your own latest bulk fix: never an ordinary batch nor another's (audit)
        if last is None or (batch is not None and str(batch) != str(last["batch"])):
            return 0
        return self.decisions.undo(self.decision_scope(), batch=last["batch"])

    def view_choices(self):
        """What a URL's or a saved review view may name here: classes, rankings, issue types, sample ids."""
        from ..views import ViewChoices

        dataset = self.dataset()
        table = self._issue_table()
        issues = tuple(sorted(str(i) for i in table["issue"].unique())) if table is not None else ()
        return ViewChoices(tuple(str(c) for c in dataset.classes), tuple(self.rankings()), len(dataset.train),
                           issues, self.source_index())

    def view_from_query(self, params) -> tuple[Any, list[str]]:
        """(the review view URL parameters describe, one note per parameter ignored) — `views.from_query`."""
        from ..views import from_query

        return from_query(params, self.view_choices())

    def view_query(self, view, choices=None) -> dict[str, str]:
        """``view`` as URL parameters (`views.to_query`; ``choices``: `view_choices`, when the caller has them)."""
        from ..views import to_query

        return to_query(view, choices or self.view_choices())

    def review_rows(self, view) -> np.ndarray:
        """The training rows the review ``view`` lists, most detrimental first by its ranking (`views.apply`)."""
        from ..views import ViewData, apply

        state, dataset = self._current()
        primary = self.primary_ranking(state) or ""  # the runs of one reading, as for the rankings below
        run = next((r for r in state.runs if r.label == (view.order or primary)), None)
        folds = run.folds if run is not None else 0  # cleanlab's suspected set out of fold where the ranking is
        data = ViewData(self.rankings(state), primary, dataset.train.y.numpy(),
                        self.predictions()[0], self.current_decisions(), state.flag_share,
                        self._issue_table() if view.issue else None, lambda: self.label_issues(folds)["mask"],
                        self.nearest_samples)
        return apply(view, data)

    def saved_views(self) -> dict[str, dict[str, str]]:
        """This project's saved review views: name → URL parameters (read back through `view_from_query`)."""
        from ..views import SavedViews

        return SavedViews(self.folder).all()

    def save_view(self, name: str, view) -> str:
        """Save ``view`` as ``name`` in this project (replacing one of that name); returns the stored name."""
        from ..views import SavedViews

        self.require("decide")
        return SavedViews(self.folder).save(name, self.view_query(view))

    def delete_view(self, name: str) -> bool:
        from ..views import SavedViews

        self.require("decide")
        return SavedViews(self.folder).delete(name)

    def class_pairs(self, kind: str = "flagged", label: str | None = None, folds: int = 0):
        """The class-pair map (`class_pairs.ClassPairs`): flagged samples of run ``label`` per (given, predicted)
        class, or cleanlab's confident joint (out of fold with ``folds`` ≥ 2)."""
        from ..class_pairs import ClassPairs, confident_joint, flagged_pairs

        dataset = self.dataset()
        classes, y = tuple(str(c) for c in dataset.classes), dataset.train.y.numpy()
        if kind == "flagged":
            return ClassPairs(flagged_pairs(y, self.predictions()[0], self.flagged(label), len(classes)), kind, classes)
        if kind != "confident_joint":
            raise InfluenceError(f"a class-pair map counts 'flagged' samples or the 'confident_joint', not '{kind[:20]}'")
        return ClassPairs(confident_joint(y, self.train_probabilities(folds)), kind, classes, folds >= 2)
