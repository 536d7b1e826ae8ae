"""The facade every front end uses (like kronfluence's ``Analyzer``): a named project in a workspace holds the
chosen data set, model, score runs, decisions, jobs and exports, and exposes the pipeline as methods.

    project = Project.open("cifar-audit")                  # <workspace>/projects/cifar-audit/
    project.use_dataset("moons", seed=0)
    project.train("mlp")                                   # cached: the same data and settings train once
    scores = project.score(ScoreRun("ip_combined"))        # lower = more detrimental
    project.record([3, 17], "remove", session="me")        # SQLite, this project's decisions only
    project.undo(session="me")                             # takes back this session's last batch only

The CLI, every page of the app and the experiment runner go through this class; adding an impact setting or a
loader argument touches the settings types here and in ``state.py``, not the front ends. The project folder holds
``state.json`` (what is chosen), ``decisions.sqlite``, ``jobs/`` (background jobs' records), ``uploads/`` and
``exports/``; slow results (models, fold models, scores, views) live in the workspace's content-addressed cache,
shared by the projects of one workspace (a key holds the data's fingerprint, so no project sees another's data).

The class is thin: each area of it is one module of this package, a mixin whose methods delegate to the library
module of that area (``base`` — the folder, access and state file; ``datasets``; ``modelling``; ``scoring``;
``exploring``; ``reviewing``; ``issues``; ``exporting``; ``background`` — jobs and experiments). No area module
imports another: they meet only in `Project` (tests/test_project_layout.py checks both, and each method's size).
"""

from __future__ import annotations

import os  # noqa: F401  (tests reach the OS through this module)

from ..access import ROLES, Access, Members  # noqa: F401
from ..data.registry import DATASETS, PATH_LOADERS, is_size  # noqa: F401
from ..errors import InfluenceError  # noqa: F401
from ..impacts import IMPACTS, JOINT_RANKINGS, describe_impact, resolve_val_trim  # noqa: F401
from ..jobs import Job, JobHandle  # noqa: F401
from ..memo import MEMORY  # noqa: F401  (tests clear the in-memory layer through this module)
from ..methods import METHODS  # noqa: F401
from ..models.registry import MODELS, default_architecture  # noqa: F401
from ..models.train import TrainConfig, memorisation_warning  # noqa: F401
from ..review import ACTIONS as DECISION_ACTIONS  # noqa: F401
from ..state import ScoreRun, Selection, workspace_root  # noqa: F401
from ..workspace import format_bytes  # noqa: F401
from ..annotators import CONSENSUS_RANKING  # noqa: F401  (issue 20 §4: the annotators' consensus as a ranking)
from ..project_files import DEFAULT_PROJECT, project_names, valid_project_name  # noqa: F401
from .background import JobsMixin
from .base import ProjectBase
from .datasets import DatasetsMixin
from .exploring import ExploreMixin
from .exporting import ExportMixin
from .issues import IssuesMixin
from .modelling import ModelMixin
from .reviewing import ReviewMixin
from .scoring import ScoringMixin

# What front ends need besides the class: settings types and the catalogues of data sets, models, methods, impacts and
# actions (so a page imports this module only).
from ..evaluate.actions import ACTIONS as CLEANING_ACTIONS  # noqa: E402
from ..evaluate.retrain import AttackSettings  # noqa: E402
from ..evaluate.runner import ExperimentResult, ExperimentSettings, cleaned_split_table, format_table  # noqa: E402
from ..evaluate.baselines import ARMS as BASELINE_ARMS  # noqa: E402,F401  (issue 17: Evaluate's baseline arms)
from ..views import ReviewView  # noqa: E402,F401  (issue 20: Review's filters, a page builds them)

__all__ = ["Project", "ScoreRun", "Selection", "TrainConfig", "ExperimentSettings", "ExperimentResult", "AttackSettings",
           "DATASETS", "PATH_LOADERS", "METHODS", "IMPACTS", "MODELS", "DECISION_ACTIONS", "CLEANING_ACTIONS", "Job",
           "JobHandle", "InfluenceError", "memorisation_warning", "resolve_val_trim", "workspace_root", "project_names",
           "DEFAULT_PROJECT", "valid_project_name", "format_table", "cleaned_split_table", "format_bytes", "is_size",
           "Access", "ROLES", "Members",
           "default_architecture", "JOINT_RANKINGS", "describe_impact"]


class Project(ProjectBase, DatasetsMixin, ModelMixin, ScoringMixin, ExploreMixin, ReviewMixin, IssuesMixin,
              ExportMixin, JobsMixin):
    """One named project: its state on disk, the shared cache, its decision log and background jobs."""
