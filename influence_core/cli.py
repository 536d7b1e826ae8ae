"""Command line: ``python -m influence_core {score,methods,datasets,models,impacts} ...``.

Errors a user can fix print one line (``error: ...``) and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import fields
from pathlib import Path
from typing import Callable, Sequence

from .errors import InfluenceError, disk_error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise InfluenceError(f"{message} (see: {self.prog} --help)")


def _progress_printer(enabled: bool) -> Callable[[float, str], None] | None:
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


def _parse_sets(pairs: Sequence[str], flag: str = "--set") -> dict:
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


def add_data_model_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by every command that loads data and trains or loads a model."""
    p.add_argument("--dataset", required=True, help="a registered data set (see `datasets`) or a path to a .csv / .zip")
    p.add_argument("--model", help="architecture (see `models`; default: cnn for image data, mlp otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed for the data and the training")
    p.add_argument("--label-column", help="CSV: the label column")
    p.add_argument("--sensitive-column", help="CSV: the binary sensitive attribute column")
    p.add_argument("--text-column", dest="text_columns", action="append", metavar="NAME",
                   help="CSV: a free-text column (TF-IDF features, model text-linear); repeatable for sentence pairs, "
                        "joined with a separator (default: the text columns found)")
    p.add_argument("--max-tokens", type=int, default=128, help="text with an hf: model: tokens per text (cut or padded)")
    p.add_argument("--val-fraction", type=float, help="user data: fraction of training data held out for validation")
    p.add_argument("--label-set", help="CIFAR-10N: aggregate, random1, random2, random3 or worst")
    p.add_argument("--max-train", type=int, help="CIFAR-N: use only the first N training images (quick runs)")
    p.add_argument("--images", help="CIFAR-N: a torchvision CIFAR folder (or .npz) with the images")
    p.add_argument("--download", action="store_true", help="fetch missing public data (CIFAR images, CIFAR-N labels, UCI files)")
    p.add_argument("--missing", choices=["impute", "refuse"], help="CSV: missing feature values (default impute: median / 'missing')")
    p.add_argument("--epochs", type=int, help="training epochs (architecture default otherwise)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--l2", "--weight-decay", dest="l2", type=float,
                   help="L2 regularisation (weight decay) of the training objective (architecture default otherwise)")
    p.add_argument("--patience", type=int,
                   help="early stopping: epochs without a better validation loss before stopping, best epoch kept "
                        "(0 = off; default: on for neural networks)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="images: random crop (4-pixel padding) and horizontal flip while training (default: on for CNNs)")
    p.add_argument("--checkpoint-every", type=int, default=0,
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
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the workspace (no project either)")


DATASET_ARGUMENTS = ("label_column", "sensitive_column", "val_fraction", "label_set", "max_train", "images", "download",
                     "missing", "text_columns")


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
    p.add_argument("--val-trim", type=float,
                   help="utility / robustness: share of validation samples with the highest loss left out of the target "
                        "(default 0.1: a noisy validation label would steer it)")
    p.add_argument("--trust-val", action="store_true", help="the validation labels are clean: the target uses all of them")


def impact_settings_from_args(args: argparse.Namespace, impact: str, named: bool = True) -> dict:
    """The settings of ``impact`` the arguments give: the named flags that apply to it (others are ignored, as they
    are meant for another impact), then every ``--impact-set`` (a key the impact does not take is an error).
    ``named=False`` leaves out --c / --epsilon (for `experiment`, where they set the evaluation's attacks)."""
    from .impacts import impact_settings_for, make_impact

    maybe = {"positive_class": getattr(args, "positive_class", None),
             "val_trim": 0.0 if getattr(args, "trust_val", False) else getattr(args, "val_trim", None)}
    if named:
        maybe.update(c=getattr(args, "c", None), epsilon=getattr(args, "epsilon", None))
    settings = impact_settings_for(impact, **maybe)
    explicit = {k: v for k, v in _parse_sets(getattr(args, "impact_set", None) or [], "--impact-set").items() if v is not None}
    settings.update(explicit)
    make_impact(impact, **settings)  # a one-line error for an unknown key, a wrong type or a value out of range
    return settings


def open_project(args: argparse.Namespace):
    """The project the arguments name (`project.Project`), or None with --no-cache."""
    if getattr(args, "no_cache", True):
        return None
    from .project import Project

    return Project.open(getattr(args, "project", None) or "cli", getattr(args, "workspace", None),
                        user=getattr(args, "user", None))


def train_config_from_args(args: argparse.Namespace):
    from .models import TrainConfig

    return TrainConfig(seed=args.seed, epochs=args.epochs, lr=args.lr, l2=args.l2, patience=args.patience,
                       augment=args.augment, checkpoint_every=getattr(args, "checkpoint_every", 0) or 0)


def load_data_and_model(args: argparse.Namespace, project=None):
    """(dataset, fitted model) as the shared arguments ask — train, or load weights — in ``project`` when given (its
    current data set and model then; cached), else in memory."""
    from . import models
    from .data import load_dataset
    from .models.train import memorisation_warning

    show = _progress_printer(not args.quiet)
    progress = (lambda rec: show(rec["fraction"], f"training: epoch {rec['epoch']} loss {rec['loss']:.4f}")) if show else None
    if project is not None:
        dataset = project.use_dataset(args.dataset, seed=args.seed, **dataset_arguments(args))
    else:
        dataset = load_dataset(args.dataset, seed=args.seed, **dataset_arguments(args))
    args.model = args.model or models.default_architecture(dataset.kind)
    models.get_model_spec(args.model)  # an unknown name: one line
    if args.model.startswith("hf:") and project is not None:  # they read their own tokenizer's ids (issue 18)
        project.use_hf_model(args.model, args.max_tokens)
        dataset = project.dataset()
    if args.weights:
        if project is not None:
            return dataset, project.use_weights(args.weights, args.model)
        from .models import loading

        return dataset, loading.load_fitted(args.weights, args.model, dataset)
    _automatic_checkpoints(args)
    if project is not None:
        fitted = project.train(args.model, train_config_from_args(args), progress=progress, device=args.device)
    else:
        fitted = models.train_model(dataset, args.model, train_config_from_args(args), device=args.device,
                                    progress=progress)
    warning = memorisation_warning(fitted.metrics)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return dataset, fitted


def _automatic_checkpoints(args: argparse.Namespace) -> None:
    """TracIn / TDA sum over the training trajectory: train with about five checkpoints instead of refusing."""
    if not getattr(args, "needs_checkpoints", False) or args.checkpoint_every:
        return
    from .models import TrainConfig

    epochs = args.epochs or TrainConfig().resolved(args.model).epochs
    args.checkpoint_every = max(1, int(epochs) // 5)
    if not args.quiet:
        print(f"note: {args.method} needs training checkpoints: training with --checkpoint-every "
              f"{args.checkpoint_every}", file=sys.stderr)


def _cmd_score(args: argparse.Namespace) -> int:
    from .api import compute_scores, describe_target, scores_frame
    from .methods import METHODS, get_method

    method_cls = METHODS.get(args.method)
    if method_cls is None:
        get_method(args.method)  # raises the one-line "unknown method" error
    known = {f.name for f in fields(method_cls.Settings)}
    settings = {k: v for k, v in {"ensemble_size": args.ensemble_size, "dropout": args.dropout,
                                   "damping": args.damping}.items() if v is not None and k in known}
    settings.update(_parse_sets(args.set or []))
    method_cls(**settings)  # unknown keys, wrong types and values out of range: one line, before any training
    impact_settings = impact_settings_from_args(args, args.impact)
    if args.folds is not None and (args.folds == 1 or args.folds < 0):
        raise InfluenceError("--folds takes 0 (in-sample) or a number of folds ≥ 2")
    from .workspace import sharded

    if args.cluster or args.scheduler:
        from .distributed import parse_cluster

        parse_cluster(args.cluster, args.scheduler)  # a one-line error for a malformed value, before any training
        if not sharded(args.method, args.cluster, args.scheduler) and not args.quiet:
            print(f"note: {args.method} scores all samples at once and runs in this process, not sharded",
                  file=sys.stderr)
    args.needs_checkpoints = method_cls.needs_checkpoints
    project = open_project(args)
    dataset, fitted = load_data_and_model(args, project)
    if method_cls.uses_impact and not args.quiet:
        _print_target(describe_target(dataset, fitted, args.impact, impact_settings))
    folds = args.folds or 0
    details: dict = {}
    if project is not None:
        from .session import ScoreRun

        run = ScoreRun(args.method, args.impact, args.params, settings, folds=folds, impact_settings=impact_settings)
        scores = project.score(run, _progress_printer(not args.quiet), details=details, device=args.device,
                               batch_size=args.batch_size, cluster=args.cluster, scheduler=args.scheduler)
    elif sharded(args.method, args.cluster, args.scheduler):  # --no-cache: the shards in a temporary folder
        import tempfile

        from .distributed import score_sharded

        with tempfile.TemporaryDirectory() as shards:
            scores = score_sharded(dataset, fitted, args.method, args.impact, out_dir=shards, settings=settings,
                                   impact_settings=impact_settings, params=args.params, folds=folds,
                                   cluster=args.cluster, scheduler=args.scheduler, batch_size=args.batch_size,
                                   progress=_progress_printer(not args.quiet), device=args.device, details=details)
    else:
        scores = compute_scores(dataset, fitted, args.method, args.impact, params=args.params, device=args.device,
                                batch_size=args.batch_size, progress=_progress_printer(not args.quiet),
                                impact_settings=impact_settings, folds=folds or None, details=details, **settings)
    if details.get("note"):
        print(f"warning: {details['note']}", file=sys.stderr)
    frame = scores_frame(dataset, scores)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        print(f"wrote {len(frame)} scores to {args.out} (lower = more detrimental)", file=sys.stderr)
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def _print_target(target: dict) -> None:
    """Say which validation samples the impact target is measured on (a noisy validation label steers it)."""
    left = len(target["left_out"])
    line = f"target ({target['impact']}): {target['n_used']} of {target['n_val']} validation samples"
    if left:
        shown = ", ".join(str(i) for i in target["left_out_index"][:10]) + (" …" if left > 10 else "")
        line += f"; {left} left out as least plausible (highest loss; samples {shown} of the data)"
    print(line, file=sys.stderr)


def _cmd_methods(args: argparse.Namespace) -> int:
    from .methods import METHODS

    rows = [cls.describe() for _, cls in sorted(METHODS.items())]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'method':<19} {'type':<15} {'cost':<32} parameters (defaults)")
    for r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items()) or "-"
        print(f"{r['name']:<19} {r['kind']:<15} {r['cost']:<32} {params}")
    print("\nAll scores: lower = more detrimental.")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from .data import DATASETS, PATH_LOADERS

    for name, spec in sorted(DATASETS.items()):
        print(f"{name:<12} {spec.description}")
    if PATH_LOADERS:
        print(f"{'<path>':<12} a file of type: {', '.join(sorted(PATH_LOADERS))}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import MODELS

    for name, spec in sorted(MODELS.items()):
        print(f"{name:<10} {spec.description} (inputs: {', '.join(spec.input_kinds)})")
    return 0


def _cmd_usage(args: argparse.Namespace) -> int:
    """The workspace's bytes per project (with its owner), per cache kind, and in all."""
    from .project import Project
    from .workspace import format_bytes

    usage = Project.storage_usage(args.workspace)
    for name, size in sorted(usage["projects"].items(), key=lambda kv: -kv[1]):
        print(f"project  {name:<32} {format_bytes(size):>10}  owner {usage['project_owners'][name]}")
    for kind, size in sorted(usage["kinds"].items(), key=lambda kv: -kv[1]):
        print(f"cache    {kind:<32} {format_bytes(size):>10}")
    print(f"total    {'':<32} {format_bytes(usage['total']):>10}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    """Delete (or with --dry-run list) the cache entries no project refers to, and say what was freed."""
    from .project import Project
    from .workspace import format_bytes

    freed = Project.collect_garbage(args.workspace, dry_run=args.dry_run)
    for path, size in freed:
        print(f"{'would free' if args.dry_run else 'freed'}  {format_bytes(size):>10}  {path}")
    total = format_bytes(sum(size for _, size in freed))
    print(f"{'would free' if args.dry_run else 'freed'} {total} in {len(freed)} entries")
    return 0


def _cmd_impacts(args: argparse.Namespace) -> int:
    from .impacts import IMPACTS

    for name, cls in IMPACTS.items():
        defaults = ", ".join(f"{k}={getattr(cls(), k)}" for k in cls.setting_names()) or "-"
        print(f"{name:<11} {cls.description:<45} settings: {defaults}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m influence_core", description="Hessian-free influence scores (lower = more detrimental).")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("score", help="score every training sample and write a CSV")
    add_data_model_arguments(p)
    p.add_argument("--method", default="ip", help="influence method (see `methods`)")
    p.add_argument("--impact", default="utility", help="utility, fairness, robustness, counterfactual, or a joint ranking a+b (e.g. utility+counterfactual)")
    p.add_argument("--params", default="all", help="parameters to differentiate: all, head, or a name prefix; hf: models also lora and last:k")
    p.add_argument("--ensemble-size", type=int, help="IP Ensemble: number of dropout models K")
    p.add_argument("--dropout", type=float, help="IP Ensemble: dropout rate p")
    p.add_argument("--damping", type=float, help="Hessian-based methods: damping λ")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other method setting (repeatable)")
    add_impact_arguments(p)
    p.add_argument("--folds", type=int, default=0,
                   help="out of fold: K models, each trained on K-1 folds, score the samples they did not see (0 = in-sample)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--cluster", help="shard the scoring over a local Dask cluster: local:N (N worker processes), "
                                     "local-cuda[:N] (one worker per GPU) or none")
    p.add_argument("--scheduler", help="shard the scoring over a running Dask cluster: tcp://HOST:PORT "
                                       "(default: $INFLUENCE_DASK_SCHEDULER when set)")
    p.add_argument("--out", help="CSV path (default: stdout)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("methods", help="list the influence methods")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_methods)
    sub.add_parser("datasets", help="list the data sets").set_defaults(func=_cmd_datasets)
    sub.add_parser("models", help="list the architectures").set_defaults(func=_cmd_models)
    sub.add_parser("impacts", help="list the impact functions").set_defaults(func=_cmd_impacts)
    p = sub.add_parser("usage", help="disk space per project and per cache kind")
    p.add_argument("--workspace", help="the workspace (default: $INFLUENCE_WORKSPACE or ./workspace)")
    p.set_defaults(func=_cmd_usage)
    p = sub.add_parser("gc", help="delete the cache entries no project refers to, printing what was freed")
    p.add_argument("--workspace", help="the workspace (default: $INFLUENCE_WORKSPACE or ./workspace)")
    p.add_argument("--dry-run", action="store_true", help="list what would be freed, delete nothing")
    p.set_defaults(func=_cmd_gc)
    from .evaluate import cli as _evaluate_cli  # the `experiment` command (evaluate/)

    if _evaluate_cli.register not in EXTRA_COMMANDS:
        EXTRA_COMMANDS.append(_evaluate_cli.register)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Other packages add subcommands here: each entry takes the subparsers object and adds its parser.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
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
