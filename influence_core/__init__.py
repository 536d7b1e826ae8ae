"""influence_core: Hessian-free influence functions (IP, IP Ensemble) and their baselines, as a plain library.

Sign convention everywhere: a score is (up to a positive factor) the change in the impact function when the
sample is removed from training. Lower = more detrimental.
"""

from .api import compute_scores, describe_target, estimate_label_issues, score_table, scores_frame
from .data import DATASETS, Dataset, Split, load_dataset
from .errors import InfluenceError
from .impacts import IMPACTS, Impact, make_impact
from .methods import METHODS, InfluenceMethod, ScoringContext, get_method
from .models import MODELS, FittedModel, TrainConfig, train_model

__version__ = "0.1.0"

__all__ = [
    "compute_scores", "describe_target", "estimate_label_issues", "score_table", "scores_frame", "DATASETS", "Dataset", "Split", "load_dataset",
    "InfluenceError", "IMPACTS", "Impact", "make_impact", "METHODS", "InfluenceMethod", "ScoringContext",
    "get_method", "MODELS", "FittedModel", "TrainConfig", "train_model", "__version__",
]
