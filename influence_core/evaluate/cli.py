"""``python -m influence_core experiment ...``: trim / relabel / reweight by each method, retrain, compare."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..cli_args import (Parser, add_data_model_arguments, add_impact_arguments, dataset_arguments,
                        impact_settings_from_args, parse_sets, progress_printer, project_for, run_command,
                        whole_number)
from ..errors import InfluenceError
from ..project import (CLEANING_ACTIONS, AttackSettings, ExperimentSettings, TrainConfig, default_architecture,
                       format_table)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``experiment`` subcommand to the CLI."""
    p = sub.add_parser("experiment", help="act on the most detrimental samples by each method, retrain, compare (paper Tables 1-2)")
    add_data_model_arguments(p)
    p.add_argument("--methods", default="ip,ip_ensemble", help="comma-separated methods (see `methods`)")
    p.add_argument("--action", default="trim", choices=CLEANING_ACTIONS, help="what to do with the flagged samples")
    p.add_argument("--fraction", type=float, default=0.05, help="share of the training set flagged (lowest scores)")
    p.add_argument("--seeds", type=int, default=3, help="retrainings per method (training seeds 0..R-1)")
    p.add_argument("--impact", default="utility", help="impact the methods score against: utility, fairness, robustness, "
                   "counterfactual, or a joint ranking a+b (e.g. utility+counterfactual)")
    p.add_argument("--temperature", type=float, default=1.0, help="reweight: softmax temperature on standardised scores")
    p.add_argument("--raw-scores", action="store_true", help="reweight: softmax over raw scores (no standardising)")
    p.add_argument("--downweight-only", action="store_true", help="reweight: never weight a sample above 1·(mean score)")
    p.add_argument("--relabel-class", type=int, help="relabel (multiclass): this class instead of the model's prediction")
    p.add_argument("--attacks", type=whole_number(0), default=5, help="random evasion attacks per retrained model (5-25%% of test)")
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
    for key, value in parse_sets(args.set or []).items():
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
    progress = progress_printer(not args.quiet)
    # The project's data set (and, with --weights, its model); cache and journal shared. --no-cache: a temporary
    # workspace, the finished runs kept next to --out (*.runs.jsonl) for resuming.
    with project_for(args) as project:
        dataset = project.use_dataset(settings.dataset, seed=settings.data_seed, **settings.dataset_kwargs)
        if not args.model:  # the architecture the Model page and `score` default to for this kind of data (CNN for images)
            settings = replace(settings, model=default_architecture(dataset.kind))
        if args.weights:
            project.use_weights(args.weights, args.model)
        journal = Path(args.out).with_suffix(".runs.jsonl") if args.no_cache and args.out else None
        result = project.experiment(settings, progress, device=args.device, out=args.out,
                                    current_model=bool(args.weights), journal=journal)
        where = project.folder / "experiments"
    print(format_table(result))
    if args.out:
        kept = journal.name if journal is not None else f"the project's journal in {where}"
        print(f"wrote {args.out} (finished runs: {kept})", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """A parser with only the ``experiment`` command (`python -m influence_core.evaluate.cli`)."""
    parser = Parser(prog="python -m influence_core", description="act on the most detrimental samples, retrain, compare")
    register(parser.add_subparsers(dest="command", parser_class=Parser))
    return parser


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - convenience for `python -m influence_core.evaluate.cli`
    return run_command(build_parser, ["experiment", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
