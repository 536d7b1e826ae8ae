"""The project's background jobs (one per kind, kept in ``jobs/``) and the long work that runs as one: training,
scoring, views, the experiment (clean, retrain, compare) and its cleaned split."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from ..grads import Progress
from ..jobs import Job, JobHandle, check_not_running, forget_job, get_job, start_job
from ..state import ScoreRun

LOOKING_JOBS = ("view:", "why")  # jobs that only look at the project: a viewer may start them


class JobsMixin:
    """The project's background jobs and the long work run as one. A part of `Project`."""

    @property
    def jobs_folder(self) -> Path:
        return self.folder / "jobs"

    def start_job(self, kind: str, title: str, fn: Callable[[JobHandle], Any]) -> Job:
        """Run ``fn(handle)`` in the background as this project's ``kind`` job (one at a time per kind); its progress
        and JSON result are kept in the project, so a refresh or a restart shows them. A viewer may start only the
        jobs that look (a feature map, "why flagged"), not those that train, score or change the project."""
        if not kind.startswith(LOOKING_JOBS):
            self.require("decide")
        return start_job(kind, title, fn, store=self.jobs_folder)

    def job(self, kind: str) -> Job | None:
        """This project's ``kind`` job: running, finished (with its result), or "interrupted" by a restart."""
        return get_job(kind, store=self.jobs_folder)

    def forget_job(self, kind: str) -> None:
        forget_job(kind, store=self.jobs_folder)

    def jobs(self) -> list[Job]:
        out = []
        for path in sorted(self.jobs_folder.glob("*.json")):
            try:
                key = json.loads(path.read_text()).get("key")
            except (OSError, ValueError):
                continue
            job = self.job(key) if key else None
            if job is not None:
                out.append(job)
        return out

    def train_in_background(self, arch: str, config: dict) -> Job:
        """Train as the "train" job: an epoch log for the live curve, Stop at the next epoch. Progress is reported as
        data (``detail``: stage "epoch", epoch, loss, val_accuracy); a front end words it."""
        def run(handle: JobHandle) -> dict:
            def progress(rec: dict) -> None:
                handle.report(rec["fraction"], f"epoch {rec['epoch']}", record=rec,
                              detail={"stage": "epoch", **{k: rec.get(k) for k in ("epoch", "loss", "val_accuracy")}})

            fitted = self.train(arch, config, progress=progress, should_stop=handle.should_stop)
            if handle.should_stop():
                return {"cancelled": True, "epochs": len(fitted.history)}
            return {"cancelled": False, "val_accuracy": fitted.metrics.get("val_accuracy")}

        return self.start_job("train", f"Training {arch}", run)

    def dask_clusters(self) -> list[str]:
        """The names of the Dask clusters a browser user may score on, "this process" first: ``local:N`` and those
        the server's administrator named (`server_config`); the names only, never an address."""
        from ..cluster import cluster_choices

        return list(cluster_choices(self.server_config()))

    @staticmethod
    def shardable_methods() -> list[str]:
        from ..distributed import shardable_methods

        return shardable_methods()

    def score_in_background(self, runs: list[ScoreRun], cluster: str | None = None) -> Job:
        """Compute ``runs`` one after another as the "score" job; each finished run is kept even when stopped.
        ``cluster``: one of `dask_clusters` by name (None: this process); anything else, an address above all, is
        refused with one line before any connection (a Dask cluster receives the data and model, and its results
        are unpickled here). While one is running (started in another tab, say) a second is refused in one line,
        never silently dropped."""
        from ..cluster import resolve_cluster

        spec = resolve_cluster(cluster, self.server_config())
        check_not_running(self.job("score"), "scores are already being computed")

        def run(handle: JobHandle) -> dict:
            for i, r in enumerate(runs):
                def progress(fraction: float, message: str, i=i, r=r) -> None:
                    handle.check()  # Stop takes effect inside a method, at its next progress report
                    handle.report((i + fraction) / len(runs), message, detail={
                        "stage": "run", "run": dict(vars(r)), "label": r.label, "index": i, "count": len(runs)})

                self.score(r, progress, cluster=spec)
            self.set_primary(None)  # Review orders by the default choice again, among the new runs too
            return {"runs": [r.label for r in runs]}

        return self.start_job("score", "Scoring " + ", ".join(r.label for r in runs), run)

    def view_in_background(self, name: str, **settings) -> Job:
        """Compute a view ("angles" or "umap") as a job of that name; the page draws it from the cache when done."""
        def run(handle: JobHandle) -> dict:
            def progress(fraction: float, message: str) -> None:
                handle.check()
                handle.report(fraction, message, detail={"stage": "view", "view": name})

            if name == "angles":
                self.angle_view(settings.get("impact", "utility"), settings.get("params", "all"), progress=progress)
            else:
                self.feature_map(progress=progress)
            return {"view": name}

        title = "Gradient angles" if name == "angles" else "UMAP feature map"
        return self.start_job(f"view:{name}", title, run)

    def experiment(self, settings, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                   device: str | None = None, *, out: str | os.PathLike | None = None, current_model: bool = True,
                   journal: str | os.PathLike | None = None):
        """Trim / relabel / reweight by each method, retrain, compare (`evaluate.runner.run_experiment`) on the current
        data set — with the current model as the base (``current_model``), else the one ``settings`` describe. Scores
        come from the same cache as the Scores page's; finished runs from the project's journal (or ``journal``), so a
        rerun resumes. The result's JSON goes to ``out`` (default: the project's ``experiments/latest.json``)."""
        from ..evaluate.runner import run_experiment

        state, dataset = self._current()
        base = self._require_model(state, dataset) if current_model else None
        folder = self.folder / "experiments"
        return run_experiment(settings, out or folder / "latest.json", dataset=dataset, base=base, progress=progress,
                              should_stop=should_stop, device=device, journal=journal or folder / "journal.jsonl",
                              workspace=self.cache)

    def experiment_in_background(self, settings) -> Job:
        """The experiment as the "experiment" job; its result (settings, table rows, runs) is kept as JSON. The job's
        log starts with ``{"settings": ...}``, so a page can say what is running, or refill its form to resume an
        interrupted run."""
        def run(handle: JobHandle) -> dict:
            handle.report(0.0, "starting", record={"settings": settings.as_dict()})
            result = self.experiment(settings, progress=lambda f, m: handle.report(f, m), should_stop=handle.should_stop)
            return result.to_json()

        return self.start_job("experiment", "Experiment", run)

    def cleaned_split(self, result, method: str):
        """The training split ``method``'s action produced in ``result`` (`cleaned_split_table`: index, given and final
        label, action, weight, score — lower = more detrimental), also for a result read back from JSON: the action is
        applied again to the method's cached scores. A one-line error when ``result`` is of another data set or model."""
        from ..evaluate.runner import cleaned_split_again

        _, dataset, base = self._current_model()
        return cleaned_split_again(result, method, dataset, base, self.engine)
