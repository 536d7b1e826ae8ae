"""original_rows: rows as the source file holds them, found again without a copy in memory; a moved upload is
followed, a changed or missing file refused; generated data gives its values; image zips give file names."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from influence_core.data import load_dataset, uploads
from influence_core.data.originals import label_values, original_rows, source_rows
from influence_core.errors import InfluenceError
from tests.data.test_uploads import png, write_zip


def people(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A CSV whose unique 'name' column identifies each row, one-hot, independently of the loader's bookkeeping."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "name": [f"r{i:02d}" for i in range(n)], "income": rng.normal(50, 10, n).round(3),
        "city": rng.choice(["paris", "=1+1", "-oslo"], n), "outcome": rng.choice([3, 7], n),
    })
    frame.loc[[4, 11], "income"] = np.nan  # missing cells stay missing in the originals (the loader imputes them)
    return frame


def train_names(ds) -> list[str]:
    """The 'name' of each training row, read from its one-hot features (not from source_index)."""
    cols = [i for i, f in enumerate(ds.feature_names) if f.startswith("name_")]
    hot = ds.train.x[:, cols].numpy()
    assert np.allclose(hot.sum(1), 1)
    return [ds.feature_names[cols[j]].removeprefix("name_") for j in hot.argmax(1)]


def test_csv_rows_are_the_files_rows(tmp_path):
    frame = people()
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(str(path), label_column="outcome", seed=0)
    got = original_rows(ds, np.arange(len(ds.train)))
    expected = pd.read_csv(path).set_index("name").loc[train_names(ds)].reset_index()
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected[got.columns], check_dtype=False)
    assert got.index.name == "index" and got.index.tolist() == ds.source_index.tolist()
    assert got["income"].isna().sum() == expected["income"].isna().sum()
    # Validation rows: their standardised income, undone with the training mean and scale, is the file's value.
    train_income = expected["income"].fillna(expected["income"].median())
    mu, sd = train_income.mean(), train_income.std(ddof=0)
    val = original_rows(ds, np.arange(len(ds.val)), "val")
    known = val["income"].notna().to_numpy()
    undone = ds.val.x[:, ds.feature_names.index("income")].numpy() * sd + mu
    assert np.allclose(undone[known], val["income"].to_numpy()[known], atol=1e-3)
    test = original_rows(ds, [0, len(ds.test) - 1], "test")
    assert set(test["name"]).isdisjoint(train_names(ds)) and set(test["name"]).isdisjoint(val["name"])
    assert label_values(ds) == [3, 7]  # the file's own values, not the class names "3" and "7"


def test_rows_out_of_range_and_unknown_split(tmp_path):
    path = tmp_path / "people.csv"
    people().to_csv(path, index=False)
    ds = load_dataset(str(path), seed=0)
    with pytest.raises(InfluenceError, match=rf"^row {len(ds.train)} is outside the train split of 'people' \(0\.\.{len(ds.train) - 1}\)$"):
        original_rows(ds, [0, len(ds.train)])
    with pytest.raises(InfluenceError, match="^split must be train, val or test, not 'dev'$"):
        original_rows(ds, [0], "dev")
    assert original_rows(ds, []).empty


def test_a_stored_upload_is_read_from_where_it_was_moved(tmp_path):
    data = people().to_csv(index=False).encode()
    stored = uploads.save_upload(data, "people.csv", "data", tmp_path, load=lambda p: load_dataset(str(p), seed=0))
    got = original_rows(stored.value, [0, 1])  # the staging copy it was loaded from is gone
    expected = people().set_index("name").loc[train_names(stored.value)[:2]]
    assert got["name"].tolist() == expected.index.tolist() and np.allclose(got["income"], expected["income"])


def test_a_changed_or_missing_source_is_refused(tmp_path):
    path = tmp_path / "people.csv"
    people().to_csv(path, index=False)
    ds = load_dataset(str(path), seed=0)
    people(seed=1).to_csv(path, index=False)
    os.utime(path, ns=(1, 1))
    with pytest.raises(InfluenceError, match=r"^the source file of 'people' \(people\.csv\) changed after the data set was loaded"):
        original_rows(ds, [0])
    path.unlink()
    with pytest.raises(InfluenceError, match="^the source file of 'people' is gone"):
        original_rows(ds, [0])


def test_generated_data_gives_the_values_it_holds(moons):
    got = original_rows(moons, [0, 5])
    assert got.columns.tolist() == ["x1", "x2", "label"]
    assert np.allclose(got[["x1", "x2"]].to_numpy(), moons.train.x[[0, 5]].numpy())
    assert got["label"].tolist() == [moons.classes[int(moons.train.y[i])] for i in (0, 5)]


def test_image_zip_rows_are_file_names(tmp_path):
    entries = {f"train/{c}/{c}{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(6)}
    entries.update({f"val/{c}/v{i}.png": png(col) for c, col in (("cat", "red"), ("dog", "blue")) for i in range(2)})
    ds = load_dataset(write_zip(tmp_path, entries), seed=0)
    train = original_rows(ds, np.arange(len(ds.train)))
    assert train["file"].str.startswith("train/").all()
    assert [ds.classes[int(y)] for y in ds.train.y] == [f.split("/")[1] for f in train["file"]]
    assert original_rows(ds, [0, 1], "val")["file"].tolist() == ["val/cat/v0.png", "val/cat/v1.png"]
    assert source_rows(ds, "test").tolist() == ds.meta["test_source_index"]
