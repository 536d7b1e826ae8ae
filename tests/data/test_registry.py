"""The registry's classification of loader parameters: what a browser may set, and the browser check itself."""

from __future__ import annotations

import inspect
import os
import typing

import pytest

from influence_core.data.registry import DATASETS, PATH_LOADERS, check_browser_arguments, is_server_side, is_size
from influence_core.errors import InfluenceError

# Text parameters a browser may set: a fixed list of values the loader checks, or a column of the uploaded file.
# Text a browser may send: column and option names, a backbone and its weights by NAME (random, torchvision's enum, the
# server's [server.backbone_weights]; never a path: `backbone_weights_file` is server-side), and a term list's CONTENTS
# (`twin_terms`, capped; never opened as a path).
TEXT_CHOICES = {"label_set", "missing", "label_column", "sensitive_column", "text_columns", "feature_columns",
                "perturbed_column", "backbone", "backbone_weights", "twin_terms"}


def _text_parameters(loader) -> list[str]:
    """A loader's keyword parameters that take text (str, a path or None-able str): where a path could hide."""
    hints = typing.get_type_hints(loader)
    out = []
    for name, p in inspect.signature(loader).parameters.items():
        if p.default is inspect.Parameter.empty:
            continue
        hint = hints.get(name)
        args = typing.get_args(hint) or (hint,)
        if any(a is str or (isinstance(a, type) and issubclass(a, os.PathLike)) for a in args):
            out.append(name)
    return out


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_text_parameter_of_a_registered_loader_is_server_side_or_a_choice(name):
    spec = DATASETS[name]
    for param in _text_parameters(spec.loader):
        assert param in TEXT_CHOICES or is_server_side(param, spec.server_side), (name, param)
        assert (param not in spec.browser_parameters()) == is_server_side(param, spec.server_side)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_paths_and_downloads_are_never_browser_parameters(name):
    spec = DATASETS[name]
    params = set(spec.parameters())
    for hidden in ("data_path", "test_path", "images", "labels_path", "download", "on_disk"):
        if hidden in params:
            assert hidden not in spec.browser_parameters(), (name, hidden)
    assert set(spec.browser_parameters()) <= params


@pytest.mark.parametrize("suffix", sorted(PATH_LOADERS))
def test_upload_loaders_take_no_path_from_the_browser(suffix):
    loader = PATH_LOADERS[suffix]
    for param in _text_parameters(loader):
        assert param in TEXT_CHOICES or is_server_side(param), (suffix, param)


def test_sizes_are_the_sample_counts():
    assert is_size("n_train", 250) and is_size("max_rows", None) and is_size("max_train", None)
    assert not is_size("seed", 0) and not is_size("val_fraction", 0.2) and not is_size("n_train", True)


@pytest.mark.parametrize("value", ["/etc/passwd", "/no/such/file.csv"])
def test_a_server_path_is_refused_with_one_message_whether_or_not_it_exists(value):
    spec = DATASETS["adult"]
    with pytest.raises(InfluenceError) as err:
        check_browser_arguments("adult", spec.loader, {"data_path": value}, 1000, spec.server_side)
    assert str(err.value) == ("adult: 'data_path' is a server-side setting (the CLI or the server's configuration sets "
                              "it); in the app, upload a file instead")


def test_sizes_over_the_cap_and_non_numbers_are_refused_naming_the_cap():
    spec = DATASETS["moons"]
    check_browser_arguments("moons", spec.loader, {"n_train": 1000, "n_val": 500, "n_test": 500}, 2000)
    with pytest.raises(InfluenceError, match=r"^moons: 'n_train' = 10,000,000 is over this server's cap of 2,000 samples$"):
        check_browser_arguments("moons", spec.loader, {"n_train": 10**7}, 2000)
    with pytest.raises(InfluenceError, match=r"^moons: 2,001 samples in all is over this server's cap of 2,000$"):
        check_browser_arguments("moons", spec.loader, {"n_train": 1000, "n_val": 1000, "n_test": 1}, 2000)
    with pytest.raises(InfluenceError, match="must be a whole number"):
        check_browser_arguments("moons", spec.loader, {"n_train": "1e9"}, 2000)
    with pytest.raises(InfluenceError, match="takes no setting 'bogus'"):
        check_browser_arguments("moons", spec.loader, {"bogus": 1}, 2000)


@pytest.mark.parametrize("name, kwargs, message", [
    ("moons", {"seed": -1}, "moons: 'seed' must be a whole number from 0 to 4,294,967,295, not -1"),
    ("moons", {"seed": 2**40}, "moons: 'seed' must be a whole number from 0 to 4,294,967,295, not 1099511627776"),
    ("moons", {"seed": 1.5}, "moons: 'seed' must be a whole number from 0 to 4,294,967,295, not 1.5"),
    ("moons", {"seed": True}, "moons: 'seed' must be a whole number from 0 to 4,294,967,295, not True"),
    ("text-shortcut", {"shortcut": "x"}, "text-shortcut: 'shortcut' must be a number, not 'x'"),
    ("text-topics", {"label_noise": float("nan")}, "text-topics: 'label_noise' must be a number, not nan"),
    ("adult", {"drop_sensitive": "yes"}, "adult: 'drop_sensitive' must be true or false, not 'yes'"),
    ("cifar10n", {"clean_val": "no"}, "cifar10n: 'clean_val' must be true or false, not 'no'"),
    ("cifar10n", {"label_set": 5}, "cifar10n: 'label_set' must be a text, not 5"),
    (".csv", {"label_column": ["a"]}, ".csv: 'label_column' must be a text, not ['a']"),
    (".csv", {"text_columns": "text"}, ".csv: 'text_columns' must be a list of column names, not 'text'"),
    (".csv", {"text_columns": [["x"]]}, ".csv: 'text_columns' must be a list of column names, not [['x']]"),
    (".csv", {"sensitive_threshold": "x"}, ".csv: 'sensitive_threshold' must be a number, not 'x'"),
])
def test_a_browser_setting_of_the_wrong_type_or_out_of_range_is_one_line(name, kwargs, message):
    """The Data page's fields for a built-in data set: a seed of -1 (or past 2^32) was sklearn's InvalidParameterError
    ("Something went wrong"), 'x' a TypeError, NaN and the text 'no' were taken (clean_val='no' read as true)."""
    loader, marked = (PATH_LOADERS[name], frozenset()) if name in PATH_LOADERS else (DATASETS[name].loader, DATASETS[name].server_side)
    with pytest.raises(InfluenceError) as err:
        check_browser_arguments(name, loader, kwargs, 100_000, marked)
    assert str(err.value) == message


def test_browser_settings_of_the_declared_types_pass():
    check_browser_arguments("moons", DATASETS["moons"].loader, {"seed": 2**32 - 1, "flipped_per_class": 3}, 100_000)
    check_browser_arguments("text-topics", DATASETS["text-topics"].loader, {"label_noise": 0, "ngram_max": None}, 100_000)
    check_browser_arguments("cifar10n", DATASETS["cifar10n"].loader, {"clean_val": False, "val_fraction": 0.2}, 100_000,
                            DATASETS["cifar10n"].server_side)
