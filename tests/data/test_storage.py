"""Data on disk (influence_core/data/storage.py and the stored `Split`): what is read equals what the in-memory path
computes, fingerprints never read the pixels, and scoring and training read batches only."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from influence_core.api import compute_scores
from influence_core.data.base import Dataset, Split
from influence_core.data.prepare import normalise_images
from influence_core.data.storage import DiskArray, StoredFeatures, channel_statistics, save_array, stored_copy
from influence_core.errors import InfluenceError
from influence_core.grads import per_sample_loss
from influence_core.models import TrainConfig, train_model


def _pixels(n: int, seed: int = 0, side: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def _labels(u8: np.ndarray) -> np.ndarray:
    return u8.reshape(len(u8), -1, 3).mean(1).argmax(1).astype(np.int64)  # class = the brightest channel


@pytest.fixture()
def twin_sets(tmp_path):
    """The same tiny 3-class image set twice: standardised in memory (`normalise_images`) and stored on disk."""
    u8 = _pixels(150)
    tr, va, te = np.arange(0, 90), np.arange(90, 120), np.arange(120, 150)
    (x_tr, x_va, x_te), mean, std = normalise_images(u8[tr], u8[va], u8[te])
    y = torch.from_numpy(_labels(u8))
    memory = Dataset("tiny", Split(x_tr, y[tr]), Split(x_va, y[va]), Split(x_te, y[te]), ["r", "g", "b"], kind="image")
    array = save_array(tmp_path / "pixels.npy", u8)
    norm = dict(layout="nhwc", mean=tuple(mean), std=tuple(std))
    disk = Dataset("tiny", *(Split(StoredFeatures(array, rows, **norm), y[rows]) for rows in (tr, va, te)),
                   ["r", "g", "b"], kind="image")
    return memory, disk


def test_disk_array_round_trip_digest_and_plain_npy(tmp_path):
    u8 = _pixels(37)
    array = save_array(tmp_path / "a.npy", u8, chunk_rows=10)
    assert array.shape == u8.shape and array.dtype == np.uint8 and len(array) == 37
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), u8)  # a plain .npy file
    np.testing.assert_array_equal(array.read(slice(5, 9)), u8[5:9])
    np.testing.assert_array_equal(array.read(np.array([30, 2, 2, 17])), u8[[30, 2, 2, 17]])
    # The digest written beside the file equals a fresh one computed from the contents.
    fresh = DiskArray(tmp_path / "a.npy")
    (tmp_path / "a.json").unlink()
    assert fresh.digest == DiskArray(tmp_path / "a.npy").digest
    assert save_array(tmp_path / "b.npy", u8[::-1].copy()).digest != array.digest
    # It pickles as its path: nothing of the contents travels.
    assert len(pickle.dumps(array)) < 600
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(array)).read(slice(0, 3)), u8[:3])


def test_stored_copy_is_written_once_per_content(tmp_path):
    u8 = _pixels(20)
    first = stored_copy(tmp_path, "set", u8)
    mtime = first.path.stat().st_mtime_ns
    again = stored_copy(tmp_path, "set", u8.copy())
    assert again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert stored_copy(tmp_path, "set", _pixels(20, seed=1)).path != first.path


def test_refuses_arrays_it_cannot_read_safely(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(InfluenceError, match="uint8 or float32"):
        DiskArray(tmp_path / "obj.npy")
    np.save(tmp_path / "f64.npy", np.zeros((3, 2)))
    with pytest.raises(InfluenceError, match="uint8 or float32"):
        DiskArray(tmp_path / "f64.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(InfluenceError, match="not a .npy"):
        DiskArray(tmp_path / "junk.npy")
    with pytest.raises(InfluenceError, match="no such array"):
        DiskArray(tmp_path / "missing.npy")


def test_per_batch_standardisation_equals_normalise_images(tmp_path):
    u8 = _pixels(300, side=6)
    rows = np.sort(np.random.default_rng(1).choice(300, 200, replace=False))
    (x_rows, x_all), mean, std = normalise_images(u8[rows], u8)
    array = save_array(tmp_path / "p.npy", u8)
    got_mean, got_std = channel_statistics(array, rows, chunk_rows=64)  # chunked two-pass statistics
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_std, std, rtol=1e-12)
    features = StoredFeatures(array, None, "nhwc", tuple(mean), tuple(std))
    assert torch.equal(features.read(), x_all)
    view = features.subset(rows)
    assert view.shape == (200, 3, 6, 6)
    assert torch.equal(view.read(), x_rows)
    assert torch.equal(view.read(torch.tensor([7, 3, 150])), x_rows[[7, 3, 150]])
    assert torch.equal(view.subset(np.array([4, 5])).read(), x_rows[4:6])


def test_float32_tabular_features_are_read_as_stored(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    split = Split(StoredFeatures(save_array(tmp_path / "t.npy", x)), np.zeros(50, dtype=np.int64))
    assert split.on_disk and split.feature_shape == (7,)
    assert torch.equal(split.rows(slice(10, 20)), torch.from_numpy(x[10:20]))
    assert torch.equal(split.x, torch.from_numpy(x))


def test_stored_split_reads_the_same_rows_as_memory(twin_sets):
    memory, disk = twin_sets
    for name in ("train", "val", "test"):
        mem, dsk = getattr(memory, name), getattr(disk, name)
        assert dsk.on_disk and not mem.on_disk and dsk.feature_shape == mem.feature_shape
        for (xa, ya), (xb, yb) in zip(mem.batches(16, start=5, stop=61), dsk.batches(16, start=5, stop=61)):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
        idx = torch.tensor([3, 1, 4, 1, 5])
        assert torch.equal(mem.rows(idx), dsk.rows(idx))
        sub = dsk.subset(np.array([2, 7, 11]))
        assert sub.on_disk and torch.equal(sub.x, mem.subset(np.array([2, 7, 11])).x)
    relabelled = disk.train.with_labels(torch.zeros(90, dtype=torch.int64))
    assert relabelled.on_disk and int(relabelled.y.sum()) == 0
    assert disk.input_shape == memory.input_shape == (3, 8, 8)


def test_loader_reads_the_same_batches_with_reader_processes(twin_sets):
    """The training loader: in this process, or read ahead by a DataLoader worker (as on a GPU): the same batches."""
    memory, disk = twin_sets
    order = torch.randperm(90, generator=torch.Generator().manual_seed(0))
    direct = list(memory.train.loader(order, 16))
    ahead = list(disk.train.loader(order, 16, num_workers=1))
    assert len(direct) == len(ahead) == 6
    for (ia, xa, ya), (ib, xb, yb) in zip(direct, ahead):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)


def test_fingerprint_of_a_stored_split_reads_no_pixels(twin_sets, monkeypatch, tmp_path):
    _, disk = twin_sets

    def refuse(self, index):
        raise AssertionError("the fingerprint read the pixels")

    monkeypatch.setattr(DiskArray, "read", refuse)
    first = disk.fingerprint()
    assert len(first) == 16
    # Other rows or other labels give another fingerprint; the same content gives the same one.
    other = Dataset("tiny", disk.train.subset(np.arange(80)), disk.val, disk.test, disk.classes, kind="image")
    assert other.fingerprint() != first
    relabel = disk.with_train(disk.train.with_labels(torch.zeros(90, dtype=torch.int64)))
    assert relabel.fingerprint() != first
    same = Dataset("tiny", *(Split(s.store, s.y) for s in (disk.train, disk.val, disk.test)), disk.classes, kind="image")
    assert same.fingerprint() == first
    assert len(pickle.dumps(disk.train)) < 4000  # a stored split travels as its path, row index and labels


def _largest_read(monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = StoredFeatures.read

    def recording(self, index=None):
        out = original(self, index)
        sizes.append(len(out))
        return out

    monkeypatch.setattr(StoredFeatures, "read", recording)
    return sizes


@pytest.mark.parametrize("method", ["ip", "ip_ensemble", "tracin", "loss", "self_tracin"])
def test_scoring_a_stored_split_reads_batches_only_and_equals_memory(twin_sets, monkeypatch, method):
    memory, disk = twin_sets
    fitted = train_model(memory, "cnn", TrainConfig(epochs=2, batch_size=16, checkpoint_every=1, patience=0))
    settings = {"ensemble_size": 2} if method == "ip_ensemble" else {}
    expected = compute_scores(memory, fitted, method, batch_size=32, **settings)
    _ = disk.val.x  # the impact target reads the (small) validation split whole, as before
    sizes = _largest_read(monkeypatch)
    got = compute_scores(disk, fitted, method, batch_size=32, **settings)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert sizes and max(sizes) <= 32, f"{method} read {max(sizes)} rows at once"
    assert disk.train._x is None  # the training split was never materialised


def test_training_on_a_stored_split_reads_batches_and_equals_memory(twin_sets, monkeypatch):
    memory, disk = twin_sets
    config = TrainConfig(epochs=2, batch_size=16, patience=1, augment=True, checkpoint_every=1)
    expected = train_model(memory, "cnn", config)
    _ = disk.val.x, disk.test.x  # evaluation reads these small splits in batches too; only train is watched
    sizes = _largest_read(monkeypatch)
    got = train_model(disk, "cnn", config)
    assert max(sizes) <= 512 and disk.train._x is None
    for (name, a), b in zip(expected.module.state_dict().items(), got.module.state_dict().values()):
        assert torch.equal(a, b), name


def test_full_batch_lbfgs_on_a_stored_split_matches_memory(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=300) > 0).astype(np.int64)
    stored = Split(StoredFeatures(save_array(tmp_path / "x.npy", x)), y)
    val = Split(x[:50], y[:50])
    memory = Dataset("lin", Split(x, y), val, val, ["0", "1"])
    disk = Dataset("lin", stored, val, val, ["0", "1"])
    # The same data reaches the optimiser: the stored split's rows are the array's, bit for bit.
    assert torch.equal(stored.rows(slice(0, len(y))), torch.from_numpy(x))
    a = train_model(memory, "logreg", TrainConfig(seed=0))
    b = train_model(disk, "logreg", TrainConfig(seed=0))
    # The disk objective is summed batch by batch, so the float32 iterates differ in their last bits (3.4e-6 on a
    # Xeon) and parameters need not match to 1e-6. Both must be the optimum within what float32 allows: the
    # objective is l2-strongly convex, so ‖θa − θb‖ ≤ (‖∇F(θa)‖ + ‖∇F(θb)‖) / l2, the gradients taken in float64.
    l2 = a.config.l2
    x64, y64 = torch.from_numpy(x).double(), torch.from_numpy(y)

    def gradient(module) -> torch.Tensor:
        m = copy.deepcopy(module).double()
        loss = per_sample_loss(m(x64), y64).mean() + 0.5 * l2 * sum((p * p).sum() for p in m.parameters())
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(m.parameters()))])

    ga, gb = gradient(a.module).norm(), gradient(b.module).norm()
    assert ga < 1e-4 and gb < 1e-4  # converged: float32's objective resolves gradients to about 1e-6
    flat = [torch.cat([p.detach().double().flatten() for p in f.module.parameters()]) for f in (a, b)]
    assert (flat[0] - flat[1]).norm() <= (ga + gb) / l2


def test_channel_statistics_read_chunks_within_the_byte_cap(tmp_path, monkeypatch):
    """At 224² a chunk of 4,096 images is 5 GB as float64: the chunk is capped in bytes, the statistics unchanged."""
    from influence_core.data import storage

    u8 = _pixels(300, side=6)
    _, mean, std = normalise_images(u8)
    array = save_array(tmp_path / "p.npy", u8)
    monkeypatch.setattr(storage, "STATISTICS_CHUNK_BYTES", 8 * 6 * 6 * 3 * 10)  # 10 images as float64
    sizes: list[int] = []
    original = DiskArray.read
    monkeypatch.setattr(DiskArray, "read", lambda self, index: sizes.append(len(out := original(self, index))) or out)
    got_mean, got_std = channel_statistics(array)
    assert max(sizes) == 10 and sum(sizes) == 2 * 300  # two passes
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_std, std, rtol=1e-12)


def test_cifar_subset_on_disk_equals_memory(shared_data):
    from influence_core.data import load_dataset

    memory = load_dataset("cifar10n", label_set="worst", max_train=1200, max_test=200)
    disk = load_dataset("cifar10n", label_set="worst", max_train=1200, max_test=200, on_disk=True)
    assert disk.train.on_disk and disk.meta["on_disk"] and not memory.meta["on_disk"]
    np.testing.assert_allclose(disk.meta["pixel_std"], memory.meta["pixel_std"], rtol=1e-12)
    for name in ("train", "val", "test"):
        torch.testing.assert_close(getattr(disk, name).rows(slice(0, 100)), getattr(memory, name).x[:100], rtol=1e-6, atol=1e-6)
        assert torch.equal(getattr(disk, name).y, getattr(memory, name).y)
    assert torch.equal(disk.noise_mask, memory.noise_mask)


def test_label_noise_relabelling_and_raw_images_keep_a_stored_split_on_disk(twin_sets, monkeypatch):
    """Changing labels never materialises the features; showing images reads only the rows asked for."""
    from influence_core.data.prepare import raw_images, with_label_noise
    from influence_core.evaluate.actions import ActionSettings, relabel

    memory, disk = twin_sets
    sizes = _largest_read(monkeypatch)
    noisy = with_label_noise(disk, 0.2, seed=1)
    expected = with_label_noise(memory, 0.2, seed=1)
    assert noisy.train.on_disk and noisy.val.on_disk and disk.train._x is None
    assert torch.equal(noisy.train.y, expected.train.y) and torch.equal(noisy.val.y, expected.val.y)
    scores = np.linspace(-1.0, 1.0, len(disk.train))
    moved = relabel(noisy, scores, ActionSettings(fraction=0.1, relabel_class=2))
    assert moved.dataset.train.on_disk and noisy.train._x is None
    assert (moved.dataset.train.y.numpy()[:9] == 2).all()  # the lowest 10% were relabelled
    assert not sizes  # nothing above read a single pixel
    mean, std = disk.train.store.mean, disk.train.store.std
    for d in (memory, disk):
        d.meta.update(pixel_mean=list(mean), pixel_std=list(std))
    shown = raw_images(disk, "train", [3, 7])
    assert sizes == [2] and disk.train._x is None
    np.testing.assert_array_equal(shown, raw_images(memory, "train", [3, 7]))


def test_an_image_zip_on_disk_equals_it_in_memory(tmp_path):
    """A large image upload is stored once as uint8 and standardised per batch: the same inputs as in memory."""
    from influence_core.data.uploads import load_image_zip
    from tests.data.test_uploads import png, write_zip

    rng = np.random.default_rng(3)
    entries = {f"set/{c}/{i}.png": png(tuple(int(v) for v in rng.integers(0, 256, 3)), size=(8, 8))
               for c in ("a", "b") for i in range(12)}
    path = write_zip(tmp_path, entries)
    memory, disk = load_image_zip(path, image_size=8, on_disk=False), load_image_zip(path, image_size=8, on_disk=True)
    assert disk.train.on_disk and disk.test.on_disk and not memory.train.on_disk
    assert disk.meta["pixel_mean"] == pytest.approx(memory.meta["pixel_mean"], rel=1e-6)
    for part in ("train", "val", "test"):
        a, b = getattr(memory, part), getattr(disk, part)
        torch.testing.assert_close(b.rows(slice(None)), a.x, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.y, b.y)
    assert disk.train._x is None


def test_a_large_table_is_read_from_disk_by_default(tmp_path, monkeypatch):
    """Encoded features over the size limit go to a float32 file; the scores are those of the table in memory."""
    from influence_core.data import storage
    from influence_core.data.uploads import load_csv
    from tests.data.test_uploads import table, write_csv

    path = write_csv(tmp_path, table(200))
    memory = load_csv(path, label_column="outcome")
    monkeypatch.setattr("influence_core.data.tabular.FEATURES_ON_DISK_BYTES", 1000)
    disk = load_csv(path, label_column="outcome")
    assert disk.train.on_disk and disk.val.on_disk and not memory.train.on_disk
    assert disk.train.store.array.path.parent == storage._arrays_folder()
    for part in ("train", "val", "test"):
        assert torch.equal(getattr(disk, part).rows(slice(None)), getattr(memory, part).x)
    fitted = train_model(memory, "logreg", TrainConfig(epochs=20, batch_size=32, patience=0))
    np.testing.assert_allclose(compute_scores(disk, fitted, "ip"), compute_scores(memory, fitted, "ip"), rtol=1e-6,
                               atol=1e-9)
    assert disk.train._x is None


def test_arrays_go_where_the_project_says_and_a_refused_one_leaves_none(tmp_path):
    """A zip's images and a table's features are stored in the folder `arrays_in` names (a project's arrays/), each
    new file checked first; when the check refuses a later split, the files already written are removed too."""
    from influence_core.data import storage

    images = np.arange(20 * 4 * 4 * 3, dtype=np.uint8).reshape(20, 4, 4, 3)
    test_images = images[:5] + 1
    seen: list[int] = []
    with storage.arrays_in(tmp_path / "arrays", seen.append):
        (tr, _, te), _, _ = storage.stored_image_splits("zip", [(images, np.arange(15)), (images, np.arange(15, 20)),
                                                                (test_images, None)])
    assert tr.array.path.parent == te.array.path.parent == tmp_path / "arrays"
    assert seen == [images.nbytes, test_images.nbytes]  # each new file once, shared ones stored once

    def refuse_the_second(nbytes: int, calls=[]) -> None:
        calls.append(nbytes)
        if len(calls) == 2:
            raise InfluenceError("over the cap")

    with pytest.raises(InfluenceError, match="^over the cap$"), storage.arrays_in(tmp_path / "refused", refuse_the_second):
        storage.stored_image_splits("zip", [(images, np.arange(15)), (images, np.arange(15, 20)), (test_images, None)])
    assert list((tmp_path / "refused").glob("*")) == []


def test_arrays_outside_a_project_go_to_the_workspace_unless_the_data_dir_is_set(tmp_path, monkeypatch):
    from influence_core.data import storage

    monkeypatch.setenv("INFLUENCE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("INFLUENCE_DATA_DIR", raising=False)
    assert storage._arrays_folder() == (tmp_path / "ws").resolve() / "arrays"
    monkeypatch.setenv("INFLUENCE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert storage._arrays_folder() == tmp_path / "elsewhere" / "arrays"
    with storage.arrays_in(tmp_path / "ws" / "projects" / "p" / "arrays"):
        assert storage._arrays_folder() == tmp_path / "ws" / "projects" / "p" / "arrays"
