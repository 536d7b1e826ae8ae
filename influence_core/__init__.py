"""influence_core: Hessian-free influence functions (IP, IP Ensemble) and their baselines, as a plain library.

The public API is what this module exports (``__all__``), and only that:

    import influence_core as ic
    ds = ic.load_dataset("moons", seed=0)
    table = ic.score_table(ds, ic.train_model(ds, "mlp"), method="ip_ensemble")   # one row per training sample
    project = ic.Project.open("demo")      # the same pipeline, cached, with decisions: what the app and the CLI use

Every submodule (``influence_core.api``, ``.workspace``, ``.methods.*``, ...) is internal: its names may change
between versions (the README names a few for those who extend the library: a data set, a method, an upload). Sign convention everywhere: a score is (up to a positive factor) the change in the impact
function when the sample is removed from training. Lower = more detrimental.
"""

from .api import compute_scores, describe_target, estimate_label_issues, score_table, scores_frame
from .data import DATASETS, Dataset, Split, load_dataset
from .errors import InfluenceError
from .impacts import IMPACTS, Impact, make_impact
from .methods import METHODS, InfluenceMethod, ScoringContext, get_method
from .models import MODELS, FittedModel, TrainConfig, train_model
from .project import Project, ScoreRun
from .version import __version__

__all__ = [
    "load_dataset", "train_model", "score_table", "compute_scores", "Project", "ScoreRun", "describe_target",
    "estimate_label_issues", "scores_frame", "DATASETS", "Dataset", "Split", "InfluenceError", "IMPACTS", "Impact",
    "make_impact", "METHODS", "InfluenceMethod", "ScoringContext", "get_method", "MODELS", "FittedModel",
    "TrainConfig", "__version__",
]
