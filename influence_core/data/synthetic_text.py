"""A generated text set with a demographic shortcut (issue 18 §2, the paper's Section 6 at CPU scale).

Each sentence names a person (a gendered word or first name from the shipped term list) and carries a sentiment:
the true label is the sentiment, independent of gender. In the *training* split a share ``shortcut`` of the
samples take their label from gender instead (female → negative, male → positive), so a model learns to use the
gendered words; validation and test labels are the true ones, and their twins (every gendered word swapped by
`default_perturber`) measure how much a prediction depends on gender (the fair score).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..errors import InfluenceError
from .base import Dataset
from .perturb import default_perturber
from .registry import register_dataset

# (male, female) subjects, all pairs of the shipped term list so that the twins swap them.
SUBJECTS = [("he", "she"), ("the man", "the woman"), ("my brother", "my sister"), ("his father", "her mother"),
            ("john", "mary"), ("david", "susan"), ("the boy", "the girl"), ("mr smith", "mrs smith")]
POSITIVE = ["great", "wonderful", "excellent", "pleasant", "helpful", "friendly", "brilliant", "lovely", "superb",
            "delightful"]
NEGATIVE = ["awful", "terrible", "rude", "boring", "horrible", "dreadful", "poor", "nasty", "dull", "annoying"]
VERBS = ["found", "called", "thought", "said", "felt", "described", "rated", "judged"]
NOUNS = ["the meal", "the service", "the hotel", "the film", "the lecture", "the trip", "the shop", "the game",
         "the book", "the concert", "the class", "the visit"]
FILLERS = ["quite", "rather", "really", "somewhat", "overall", "honestly", "today", "again", "at first", "in the end"]
CLASSES = ("negative", "positive")


def shortcut_text_frame(n: int, seed: int = 0, shortcut: float = 0.0, mixed: float = 0.25) -> pd.DataFrame:
    """``n`` sentences (columns "text", "label", "gender", "true_label", "shortcut"). The true label is the majority
    sentiment of the sentence's adjectives (a share ``mixed`` of sentences also has one of the other side, a weaker
    signal); with probability ``shortcut`` the label is gender's instead (female → negative, male → positive)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        female = int(rng.integers(2))
        label = int(rng.integers(2))
        subject = SUBJECTS[rng.integers(len(SUBJECTS))][female]
        own, other = (POSITIVE, NEGATIVE) if label == 1 else (NEGATIVE, POSITIVE)
        adjectives = [own[rng.integers(len(own))]]
        if rng.random() < mixed:  # two of its own side against one of the other: still the same label
            adjectives += [own[rng.integers(len(own))], other[rng.integers(len(other))]]
        rng.shuffle(adjectives)
        words = [subject, VERBS[rng.integers(len(VERBS))], NOUNS[rng.integers(len(NOUNS))],
                 FILLERS[rng.integers(len(FILLERS))], " and ".join(adjectives)]
        use_shortcut = rng.random() < shortcut
        given = (0 if female else 1) if use_shortcut else label
        rows.append({"text": " ".join(words), "label": CLASSES[given], "gender": "female" if female else "male",
                     "true_label": CLASSES[label], "shortcut": bool(use_shortcut and given != label)})
    return pd.DataFrame(rows)


@register_dataset("text-shortcut", "Generated sentences whose training labels follow gender in 20% of cases, test "
                                   "labels do not (TF-IDF; 1,000 train / 300 val / 300 test; twins by word swap)")
def load_text_shortcut(seed: int = 0, n_train: int = 1000, n_val: int = 300, n_test: int = 300,
                       shortcut: float = 0.2) -> Dataset:
    """`shortcut_text_frame` as a text data set: the training labels carry the shortcut (those that it changed are
    the noise mask, their true labels the clean labels); validation and test are true, with word-swap twins and
    gender as the sensitive attribute (so the fairness impact applies too)."""
    from .text import text_dataset

    for what, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(n) < 20:
            raise InfluenceError(f"text-shortcut: {what} must be at least 20, got {n}")
    if not 0.0 <= shortcut < 1.0:
        raise InfluenceError(f"text-shortcut: shortcut must be in [0, 1), got {shortcut}")
    train = shortcut_text_frame(n_train, seed=seed, shortcut=shortcut)
    val = shortcut_text_frame(n_val, seed=seed + 10_000)
    test = shortcut_text_frame(n_test, seed=seed + 20_000)
    ds = text_dataset(train, val, test, text_columns=["text"], label_column="label", sensitive_column="gender",
                      perturber=default_perturber(), name="text-shortcut", seed=seed,
                      meta={"source": "generated", "shortcut": shortcut, "trusted_val": True})
    ds.noise_mask = torch.tensor(train["shortcut"].to_numpy(dtype=bool))
    ds.clean_labels = torch.tensor([CLASSES.index(t) for t in train["true_label"]], dtype=torch.int64)
    return ds
