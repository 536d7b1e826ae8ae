"""The trainer's defaults against memorisation: early stopping keeps the best validation epoch, images are
augmented, and a model that fits its training labels far better than new data is flagged."""

from __future__ import annotations

import numpy as np
import torch

import influence_core as ic
from influence_core.data.base import Dataset, Split
from influence_core.models import TrainConfig, train_model
from influence_core.models.train import augment_images, evaluate_split, memorisation_warning


def test_early_stopping_restores_the_best_validation_epoch():
    ds = ic.load_dataset("moons", seed=0)
    fitted = train_model(ds, "mlp", TrainConfig(epochs=200, patience=5, checkpoint_every=10))
    losses = [h["val_loss"] for h in fitted.history]
    best = int(np.argmin(losses)) + 1
    assert fitted.metrics["best_epoch"] == best and len(losses) == best + 5  # stopped 5 epochs after the best
    # The returned weights are the best epoch's: their validation loss is the logged minimum.
    assert abs(evaluate_split(fitted.module, ds.val)["loss"] - min(losses)) < 1e-6
    # TracIn's checkpoints end at the model that is scored.
    assert fitted.checkpoints[-1].epoch == best
    assert all(c.epoch <= best for c in fitted.checkpoints)
    final = fitted.module.state_dict()
    assert all(torch.equal(fitted.checkpoints[-1].state[k], final[k]) for k in final)


def test_neural_networks_stop_early_and_augment_by_default():
    assert TrainConfig().resolved("cnn").patience > 0 and TrainConfig().resolved("cnn").augment
    assert TrainConfig().resolved("mlp").patience > 0 and not TrainConfig().resolved("mlp").augment
    assert TrainConfig().resolved("logreg").patience == 0
    assert TrainConfig(patience=0, augment=False).resolved("cnn").patience == 0


def test_augmentation_is_a_padded_crop_and_a_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    gen = torch.Generator().manual_seed(0)
    out = augment_images(x, gen, pad=4)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):  # each output is some 8×8 window of the padded image, maybe mirrored
        windows = [padded[i, :, r : r + 8, c : c + 8] for r in range(9) for c in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    many = augment_images(x.repeat(50, 1, 1, 1), gen)
    assert not all(torch.equal(m, x[0]) for m in many[::2])  # not the identity


def test_memorisation_warning_fires_on_random_labels_not_on_moons():
    gen = torch.Generator().manual_seed(0)

    def split(n):
        return Split(torch.randn(n, 150, generator=gen), torch.randint(0, 2, (n,), generator=gen))

    # 100 points in 150 dimensions: a linear model can fit any labels, and random labels carry nothing to learn.
    noise = Dataset("random-labels", split(100), split(200), split(100), ["a", "b"])
    memorised = train_model(noise, "logreg", TrainConfig(l2=1e-6))
    assert memorised.metrics["train_accuracy"] - memorised.metrics["val_accuracy"] > 0.2
    warning = memorisation_warning(memorised.metrics)
    assert warning and "use out-of-fold scoring" in warning
    moons = ic.load_dataset("moons", seed=0)
    assert memorisation_warning(train_model(moons, "mlp").metrics) is None
