"""What the CLI's commands (`cli`: score and the listings; `evaluate.cli`: experiment) share: the argument groups,
reading them into settings, progress on stderr, and the project a run works in. Like every front end, it reaches the
library only through the `project.Project` facade (tests/test_imports.py checks)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from .errors import InfluenceError, disk_error
from .project import Project, TrainConfig, default_architecture, memorisation_warning


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``InfluenceError``) instead of usage + message."""

    def error(self, message: str) -> None:
        raise InfluenceError(f"{message} (see: {self.prog} --help)")


def run_command(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` with the parser ``build_parser`` makes and run the chosen command; what a user can fix (and a
    file the machine refuses) is one line on stderr and status 2, never a traceback."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except InfluenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `... | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0
    except (OSError, sqlite3.Error) as err:  # a file the machine refused (--out's folder, a full disk): one line
        mapped = disk_error(err, "write")
        where = f": {err.filename}" if getattr(err, "filename", None) else ""
        print(f"error: {mapped or (getattr(err, 'strerror', None) or str(err)) + where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def progress_printer(enabled: bool) -> Callable[[float, str], None] | None:
    """A progress callback printing to stderr (None when not ``enabled``): an updating line on a terminal, a line per
    10% in a log file."""
    if not enabled:
        return None
    last = {"pct": -1}
    tty = sys.stderr.isatty()
    step = 1 if tty else 10  # a log file gets a line per 10%, a terminal an updating line

    def show(fraction: float, message: str) -> None:
        pct = int(fraction * 100) // step * step
        if pct != last["pct"]:
            last["pct"] = pct
            if tty:
                print(f"\r[{pct:3d}%] {message:<50}", end="\n" if pct >= 100 else "", file=sys.stderr, flush=True)
            else:
                print(f"[{pct:3d}%] {message}", file=sys.stderr, flush=True)

    return show


def parse_sets(pairs: Sequence[str], flag: str = "--set") -> dict:
    """``key=value`` pairs as a dict, each value read as JSON when it is JSON, else kept as text (``-`` in a key: ``_``)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise InfluenceError(f"{flag} expects key=value, got '{pair}'")
        key, raw = pair.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = raw
    return out


def whole_number(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low`` (argparse says which flag in one line otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number is needed, not '{text[:40]}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    parse.__name__ = f"whole number ≥ {low}"
    return parse


def add_data_model_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by every command that loads data and trains or loads a model."""
    p.add_argument("--dataset", required=True, help="a registered data set (see `datasets`) or a path to a .csv / .parquet / .zip")
    p.add_argument("--model", help="architecture (see `models`; default: cnn for image data, text-linear for text, "
                                   "mlp otherwise)")
    p.add_argument("--seed", type=whole_number(0), default=0, help="seed for the data and the training (default 0)")
    p.add_argument("--label-column", help="CSV: the label column (default: the one named label, y, target or class, else the last)")
    p.add_argument("--sensitive-column", help="CSV: the binary sensitive attribute column")
    p.add_argument("--text-column", dest="text_columns", action="append", metavar="NAME",
                   help="CSV: a free-text column (TF-IDF features, model text-linear); repeatable for sentence pairs, "
                        "joined with a separator (default: the text columns found)")
    p.add_argument("--perturbed-column", metavar="NAME",
                   help="text CSV: each row's counterfactual twin (the text with its demographic words swapped) for "
                        "the counterfactual impact (default: twins from the built-in word-swap list)")
    p.add_argument("--ngram-max", type=int, help="text: TF-IDF word n-grams 1..N (default 2, at most 3)")
    p.add_argument("--min-df", type=int, help="text: TF-IDF terms in at least this many training texts (default 2)")
    p.add_argument("--max-features", type=int,
                   help="text: TF-IDF keeps the N most frequent terms (default 16,384, at most 65,536)")


    p.add_argument("--annotator-column", dest="annotator_columns", action="append", metavar="NAME",
                   help="CSV: another annotator's label column (repeatable; empty cells allowed): cleanlab's consensus "
                        "of the annotators joins the scores (CIFAR-10N: random1-3 always)")
    p.add_argument("--image-size", type=int, help="image zip: pixels a side (default: the backbone's own size, else 32)")
    p.add_argument("--backbone", help="image zip: a frozen torchvision backbone (resnet18, resnet50, efficientnet_b0, "
                                      "convnext_tiny, vit_b_16) whose embeddings become the features (train a logreg "
                                      "or mlp head on them)")
    p.add_argument("--backbone-weights", help="with --backbone: random (default), a torchvision weights name such as "
                                              "IMAGENET1K_V1, or a name from server.toml's [server.backbone_weights]")
    p.add_argument("--max-tokens", type=int, default=128, help="text with an hf: model: tokens per text, cut or padded (default 128)")
    p.add_argument("--val-fraction", type=float, help="fraction of training data held out for validation (default 0.2 "
                                                      "for tables and texts, 0.1 for images)")
    p.add_argument("--label-set", help="CIFAR-10N: aggregate, random1, random2, random3 or worst")
    p.add_argument("--max-train", type=int, help="CIFAR-N: use only the first N training images (quick runs)")
    p.add_argument("--images", help="CIFAR-N: a torchvision CIFAR folder (or .npz) with the images")
    p.add_argument("--download", action="store_true", help="fetch missing public data (CIFAR images, CIFAR-N labels, UCI files)")
    p.add_argument("--missing", choices=["impute", "refuse"], help="CSV: missing feature values (default impute: median / 'missing')")
    p.add_argument("--epochs", type=whole_number(1), help="training epochs (architecture default otherwise)")
    p.add_argument("--lr", type=float, help="learning rate (architecture default otherwise)")
    p.add_argument("--l2", "--weight-decay", dest="l2", type=float,
                   help="L2 regularisation (weight decay) of the training objective (architecture default otherwise)")
    p.add_argument("--patience", type=whole_number(0),
                   help="early stopping: epochs without a better validation loss before stopping, best epoch kept "
                        "(0 = off; default: on for neural networks)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="images: random crop (4-pixel padding) and horizontal flip while training (default: on for CNNs)")
    p.add_argument("--checkpoint-every", type=whole_number(0), default=0,
                   help="save a checkpoint every k epochs (TracIn and TDA need them; 0 = none)")
    p.add_argument("--weights", help="use these trained weights instead of training (state_dict: .safetensors / .pt)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--workspace", help="the workspace: cached models and scores, and the projects "
                                       "(default: $INFLUENCE_WORKSPACE or ./workspace)")
    p.add_argument("--project", default="cli",
                   help="the project this run works in (default: cli); the app opens it at ?project=NAME")
    p.add_argument("--user", help="who runs this: the owner of a project it makes and the decided_by of its decisions "
                                  "(default: the OS login name)")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the workspace: work in a temporary one, deleted at the end")


DATASET_ARGUMENTS = ("label_column", "sensitive_column", "val_fraction", "label_set", "max_train", "images", "download",
                     "missing", "text_columns", "image_size", "backbone", "backbone_weights", "ngram_max", "min_df",
                     "max_features", "annotator_columns", "perturbed_column")


def dataset_arguments(args: argparse.Namespace) -> dict:
    """The loader keywords the shared data arguments give (those set; ``load_dataset`` drops what a loader does
    not take): one place for `score`, `experiment` and any command using `add_data_model_arguments`."""
    out = {k: getattr(args, k, None) for k in DATASET_ARGUMENTS}
    out["download"] = out["download"] or None  # a store_true flag: unset means the loader's default
    return {k: v for k, v in out.items() if v is not None}


def add_impact_arguments(p: argparse.ArgumentParser, attack_flags: bool = True) -> None:
    """The impact settings: ``--impact-set key=value`` for any of them, and the older named flags feeding the same
    settings (``attack_flags``: add --c / --epsilon too; `experiment` has its own, shared with its attacks)."""
    p.add_argument("--impact-set", action="append", metavar="KEY=VALUE",
                   help="an impact setting, value as JSON (repeatable), e.g. --impact-set epsilon=0.2 --impact-set val_trim=0 "
                        "(see `impacts`)")
    if attack_flags:
        p.add_argument("--c", type=float, help="robustness (linear models): attack strength c (default 1.3)")
        p.add_argument("--epsilon", type=float, help="robustness (other models): FGSM step size (default 0.1)")
    p.add_argument("--positive-class", type=int, help="fairness: the class whose rate is compared (default 1)")
    p.add_argument("--odds-label", type=int, choices=(0, 1),
                   help="equalized_odds: the gap restricted to one label — 1 the true-positive-rate gap, 0 the "
                        "false-positive-rate gap (default: both)")
    p.add_argument("--val-trim", type=float,
                   help="utility / robustness: share of validation samples with the highest loss left out of the target "
                        "(default 0.1: a noisy validation label would steer it)")
    p.add_argument("--trust-val", action="store_true", help="the validation labels are clean: the target uses all of them")


def impact_settings_from_args(args: argparse.Namespace, impact: str, named: bool = True) -> dict:
    """The settings of ``impact`` the arguments give: the named flags that apply to it (others are ignored, as they
    are meant for another impact), then every ``--impact-set`` (a key the impact does not take is an error).
    ``named=False`` leaves out --c / --epsilon (for `experiment`, where they set the evaluation's attacks)."""
    maybe = {"positive_class": getattr(args, "positive_class", None), "label": getattr(args, "odds_label", None),
             "val_trim": 0.0 if getattr(args, "trust_val", False) else getattr(args, "val_trim", None)}
    if named:
        maybe.update(c=getattr(args, "c", None), epsilon=getattr(args, "epsilon", None))
    explicit = {k: v for k, v in parse_sets(getattr(args, "impact_set", None) or [], "--impact-set").items() if v is not None}
    return Project.impact_settings(impact, maybe, explicit)


def open_project(args: argparse.Namespace, root: str | None = None) -> Project:
    """The project the arguments name (``--project``, default "cli") in ``root`` (default: ``--workspace``)."""
    return Project.open(getattr(args, "project", None) or "cli", root or getattr(args, "workspace", None),
                        user=getattr(args, "user", None))


@contextmanager
def project_for(args: argparse.Namespace) -> Iterator[Project]:
    """The project a run works in: `open_project`, or with ``--no-cache`` the same in a temporary workspace deleted
    afterwards — one pipeline either way; nothing is read from or left in a workspace."""
    if not getattr(args, "no_cache", False):
        yield open_project(args)
        return
    with tempfile.TemporaryDirectory(prefix="influence-no-cache-") as root:
        yield open_project(args, root)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(seed=args.seed, epochs=args.epochs, lr=args.lr, l2=args.l2, patience=args.patience,
                       augment=args.augment, checkpoint_every=getattr(args, "checkpoint_every", 0) or 0)


def load_data_and_model(args: argparse.Namespace, project: Project):
    """(dataset, fitted model) as the shared arguments ask — train (cached), or load weights — made the project's
    current data set and model."""
    Project.check_device(args.device)  # also when the model and scores come from the cache
    show = progress_printer(not args.quiet)
    progress = (lambda rec: show(rec["fraction"], f"training: epoch {rec['epoch']} loss {rec['loss']:.4f}")) if show else None
    given = dataset_arguments(args)
    unused = Project.unused_dataset_arguments(args.dataset, given)
    if unused:  # said even with --quiet: the user asked for something that will not happen
        flags = ", ".join("--" + k.removesuffix("_columns").replace("_", "-") + ("-column" if k.endswith("_columns") else "")
                          for k in unused)
        print(f"warning: {flags} {'does' if len(unused) == 1 else 'do'} not apply to data set '{args.dataset}': ignored",
              file=sys.stderr)
    dataset = project.use_dataset(args.dataset, seed=args.seed, **given)
    args.model = args.model or default_architecture(dataset.kind)
    TrainConfig().resolved(args.model)  # an unknown architecture: one line
    if dataset.kind == "text":  # e.g. robustness on token ids: refused before any training
        Project.check_impact_for_model(getattr(args, "impact", None) or "", args.model)
    if args.model.startswith("hf:") and dataset.kind == "text":  # they read their own tokenizer's ids (issue 18)
        project.use_hf_model(args.model, getattr(args, "max_tokens", 128))
        dataset = project.dataset()
    if args.weights:
        return dataset, project.use_weights(args.weights, args.model)
    _automatic_checkpoints(args)
    fitted = project.train(args.model, train_config_from_args(args), progress=progress, device=args.device)
    warning = memorisation_warning(fitted.metrics)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return dataset, fitted


def _automatic_checkpoints(args: argparse.Namespace) -> None:
    """TracIn / TDA sum over the training trajectory: train with about five checkpoints instead of refusing."""
    if not getattr(args, "needs_checkpoints", False) or args.checkpoint_every:
        return
    epochs = args.epochs or TrainConfig().resolved(args.model).epochs
    args.checkpoint_every = max(1, int(epochs) // 5)
    if not args.quiet:
        print(f"note: {args.method} needs training checkpoints: training with --checkpoint-every "
              f"{args.checkpoint_every}", file=sys.stderr)
