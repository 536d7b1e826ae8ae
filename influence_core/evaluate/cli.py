"""``python -m influence_core experiment ...``: trim / relabel / reweight by each method, retrain, compare."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import (_parse_sets, _progress_printer, add_data_model_arguments, add_impact_arguments, dataset_arguments,
                   impact_settings_from_args, open_project)
from ..errors import InfluenceError
from ..models.train import TrainConfig
from .actions import ACTIONS
from .retrain import AttackSettings
from .runner import ExperimentSettings, format_table, run_experiment


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``experiment`` subcommand to the CLI."""
    p = sub.add_parser("experiment", help="act on the most detrimental samples by each method, retrain, compare (paper Tables 1-2)")
    add_data_model_arguments(p)
    p.add_argument("--methods", default="ip,ip_ensemble", help="comma-separated methods (see `methods`)")
    p.add_argument("--action", default="trim", choices=ACTIONS, help="what to do with the flagged samples")
    p.add_argument("--fraction", type=float, default=0.05, help="share of the training set flagged (lowest scores)")
    p.add_argument("--seeds", type=int, default=3, help="retrainings per method (training seeds 0..R-1)")
    p.add_argument("--impact", default="utility", help="impact the methods score against: utility, fairness, robustness")
    p.add_argument("--temperature", type=float, default=1.0, help="reweight: softmax temperature on standardised scores")
    p.add_argument("--raw-scores", action="store_true", help="reweight: softmax over raw scores (no standardising)")
    p.add_argument("--downweight-only", action="store_true", help="reweight: never weight a sample above 1·(mean score)")
    p.add_argument("--relabel-class", type=int, help="relabel (multiclass): this class instead of the model's prediction")
    p.add_argument("--attacks", type=int, default=5, help="random evasion attacks per retrained model (5-25%% of test)")
    p.add_argument("--c", type=float, default=1.3, help="linear attack: step past the boundary (×margin)")
    p.add_argument("--epsilon", type=float, default=0.1, help="FGSM attack step")
    add_impact_arguments(p, attack_flags=False)  # --c / --epsilon above also set the robustness impact's attack
    p.add_argument("--attack-against", default="base", choices=("base", "each"),
                   help="craft the attacks against the full-data base model (default) or each retrained model")
    p.add_argument("--params", default="all", help="parameters the scores use: all, head, or name prefixes")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE", help="a method setting, e.g. ip_ensemble.ensemble_size=10")
    p.add_argument("--baselines", default="", help="comma-separated baseline arms (issue 17): reweighing, eg_dp, eg_eo, "
                   "threshold_dp, threshold_eo, adversarial, within_cell (each swept), or one point as NAME@VALUE")
    p.add_argument("--out", help="write results JSON here (finished runs are kept next to it, in *.runs.jsonl, for resuming)")
    p.set_defaults(func=cmd_experiment)


def settings_from_args(args: argparse.Namespace) -> ExperimentSettings:
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    method_settings: dict[str, dict] = {}
    for key, value in _parse_sets(args.set or []).items():
        if "." not in key:
            raise InfluenceError(f"--set expects METHOD.KEY=VALUE, got '{key}'")
        method, name = key.split(".", 1)
        method_settings.setdefault(method, {})[name] = value
    data_kwargs = dataset_arguments(args)
    return ExperimentSettings(
        dataset=args.dataset, model=args.model or "mlp", methods=methods, action=args.action, fraction=args.fraction,
        seeds=args.seeds, impact=args.impact, data_seed=args.seed, dataset_kwargs=data_kwargs,
        train=TrainConfig(epochs=args.epochs, lr=args.lr, l2=args.l2, patience=args.patience, augment=args.augment),
        temperature=args.temperature,
        standardize=not args.raw_scores, relabel_class=args.relabel_class, upweight=not args.downweight_only,
        attacks=AttackSettings(n_attacks=args.attacks, c=args.c, epsilon=args.epsilon, seed=args.seed,
                               against=args.attack_against),
        method_settings=method_settings, params=args.params,
        impact_settings=impact_settings_from_args(args, args.impact, named=False),
        baselines=tuple(b.strip() for b in args.baselines.split(",") if b.strip()),
    )


def cmd_experiment(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    progress = _progress_printer(not args.quiet)
    project = open_project(args)
    if project is not None:  # the project's data set (and, with --weights, its model); cache and journal shared
        project.use_dataset(settings.dataset, seed=settings.data_seed, **settings.dataset_kwargs)
        if args.weights:
            project.use_weights(args.weights, args.model)
        result = project.experiment(settings, progress, device=args.device, out=args.out, current_model=bool(args.weights))
    else:
        dataset = base = None
        if args.weights:
            from ..data import load_dataset
            from ..models import loading

            dataset = load_dataset(settings.dataset, seed=settings.data_seed, **settings.dataset_kwargs)
            base = loading.load_fitted(args.weights, args.model, dataset)
        result = run_experiment(settings, args.out, dataset=dataset, base=base, progress=progress, device=args.device)
    print(format_table(result))
    if args.out:
        journal = f"the project's journal in {project.folder / 'experiments'}" if project is not None else \
            f"{Path(args.out).stem}.runs.jsonl"
        print(f"wrote {args.out} (finished runs: {journal})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - convenience for `python -m influence_core.evaluate.cli`
    from ..cli import main as cli_main

    return cli_main(["experiment", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
