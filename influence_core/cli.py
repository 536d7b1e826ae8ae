"""Command line: ``python -m influence_core {score,datalab,methods,datasets,models,impacts,usage,gc,export,versions,experiment} ...``.

A front end like the app's pages: it reaches the library only through the `project.Project` facade (and the argument
helpers in `cli_args`, shared with `evaluate.cli`); ``--no-cache`` runs the same pipeline in a temporary workspace.
Errors a user can fix print one line (``error: ...``) and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from .cli_args import (DATASET_ARGUMENTS, Parser, add_data_model_arguments, add_impact_arguments,  # noqa: F401
                       dataset_arguments, impact_settings_from_args, load_data_and_model, open_project, parse_sets,
                       progress_printer, project_for, run_command, train_config_from_args, whole_number)
from .errors import InfluenceError
from .project import DATASETS, IMPACTS, METHODS, MODELS, PATH_LOADERS, Project, ScoreRun, format_bytes


def _cmd_score(args: argparse.Namespace) -> int:
    method = Project.check_method(args.method)  # an unknown name: one line
    settings = {k: v for k, v in {"ensemble_size": args.ensemble_size, "dropout": args.dropout,
                                   "damping": args.damping}.items() if v is not None and k in method["parameters"]}
    settings.update(parse_sets(args.set or []))
    Project.check_method(args.method, settings)  # unknown keys, wrong types and values out of range: before any training
    impact_settings = impact_settings_from_args(args, args.impact)
    if args.folds is not None and (args.folds == 1 or args.folds < 0):
        raise InfluenceError("--folds takes 0 (in-sample) or a number of folds ≥ 2")
    if args.cluster or args.scheduler:  # a malformed value: one line, before any training
        if not Project.sharded(args.method, args.cluster, args.scheduler) and not args.quiet:
            print(f"note: {args.method} scores all samples at once and runs in this process, not sharded",
                  file=sys.stderr)
    args.needs_checkpoints = method["needs_checkpoints"]
    with project_for(args) as project:  # --no-cache: a temporary workspace, the same pipeline
        load_data_and_model(args, project)
        if method["uses_impact"] and not args.quiet:
            _print_target(project.describe_target(args.impact, impact_settings))
        details: dict = {}
        run = ScoreRun(args.method, args.impact, args.params, settings, folds=args.folds or 0,
                       impact_settings=impact_settings)
        scores = project.score(run, progress_printer(not args.quiet), details=details, device=args.device,
                               batch_size=args.batch_size, cluster=args.cluster, scheduler=args.scheduler)
        frame = project.score_table(scores)
        if project.annotator_names():  # issue 20 §4: the annotators' consensus (cleanlab) beside the scores
            report = project.annotator_report(args.folds or 0)
            frame["consensus_label"], frame["consensus_quality"] = report["consensus_label"], report["consensus_quality"]
    if details.get("note"):
        print(f"warning: {details['note']}", file=sys.stderr)
    return _write_csv(frame, args.out, "scores", "lower = more detrimental")


def _write_csv(frame, out: str | None, what: str, meaning: str) -> int:
    """``frame`` as CSV to ``out`` (saying so on stderr), else to stdout."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        print(f"wrote {len(frame)} {what} to {out} ({meaning})", file=sys.stderr)
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def _print_target(target: dict) -> None:
    """Say which validation samples the impact target is measured on (a noisy validation label steers it)."""
    for part in target.get("parts", [target]):  # a joint ranking: each of its impacts' targets
        left = len(part["left_out"])
        line = f"target ({part['impact']}): {part['n_used']} of {part['n_val']} validation samples"
        if left:
            shown = ", ".join(str(i) for i in part["left_out_index"][:10]) + (" …" if left > 10 else "")
            line += f"; {left} left out as least plausible (highest loss; samples {shown} of the data)"
        print(line, file=sys.stderr)


def _cmd_methods(args: argparse.Namespace) -> int:
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
    for name, spec in sorted(DATASETS.items()):
        print(f"{name:<12} {spec.description}")
    if PATH_LOADERS:
        print(f"{'<path>':<12} a file of type: {', '.join(sorted(PATH_LOADERS))}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    for name, spec in sorted(MODELS.items()):
        print(f"{name:<10} {spec.description} (inputs: {', '.join(spec.input_kinds)})")
    return 0


def _cmd_usage(args: argparse.Namespace) -> int:
    """The workspace's bytes per project (with its owner), per cache kind, and in all."""
    usage = Project.storage_usage(args.workspace)
    for name, size in sorted(usage["projects"].items(), key=lambda kv: -kv[1]):
        print(f"project  {name:<32} {format_bytes(size):>10}  owner {usage['project_owners'][name]}")
    for kind, size in sorted(usage["kinds"].items(), key=lambda kv: -kv[1]):
        print(f"cache    {kind:<32} {format_bytes(size):>10}")
    print(f"total    {'':<32} {format_bytes(usage['total']):>10}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    """Delete (or with --dry-run list) the cache entries no project refers to, and say what was freed."""
    freed = Project.collect_garbage(args.workspace, dry_run=args.dry_run)
    for path, size in freed:
        print(f"{'would free' if args.dry_run else 'freed'}  {format_bytes(size):>10}  {path}")
    total = format_bytes(sum(size for _, size in freed))
    print(f"{'would free' if args.dry_run else 'freed'} {total} in {len(freed)} entries")
    return 0


def _cmd_impacts(args: argparse.Namespace) -> int:
    for name, cls in IMPACTS.items():
        defaults = ", ".join(f"{k}={getattr(cls(), k)}" for k in cls.setting_names()) or "-"
        print(f"{name:<11} {cls.description:<45} settings: {defaults}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    """A project's data set with its decisions, model suggestions and scores in a labelling or training tool's format,
    as a zip (issue 20 §7): the cleaned training split, or with --all-rows every row with its review tag."""
    project = _existing_project(args)
    data = project.export_as(args.format, all_rows=args.all_rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(data)
    print(f"wrote the {args.format} export of project '{args.project}' to {args.out}", file=sys.stderr)
    return 0


def _existing_project(args: argparse.Namespace) -> Project:
    """The project ``--project`` names, refused in one line when the workspace has none: a command that reads or
    saves from a project's decisions never makes an empty one."""
    if not Project.exists(args.project, args.workspace):
        raise InfluenceError(f"no project '{args.project}' in the workspace; score one first (score --project NAME)")
    return open_project(args)


def _cmd_versions(args: argparse.Namespace) -> int:
    """A project's versions of the cleaned data set (issue 20): list them, save the current decisions as one, or
    say what changed from version A (or, with only B, its previous version) to B."""
    proj = _existing_project(args)
    if args.action == "list" and args.names:
        raise InfluenceError("versions list takes no name")
    if args.action == "save":
        if len(args.names) != 1:
            raise InfluenceError("versions save takes one name")
        version = proj.save_version(args.names[0])
        print(f"saved {version.name}: {len(version.removed)} removed, {len(version.relabelled)} relabelled")
    elif args.action == "list":
        for v in proj.versions():
            row = v.summary()
            print(f"{row['name']:<24} {row['created_at']}  {row['created_by']:<16} removed {row['removed']:>6}  "
                  f"relabelled {row['relabelled']:>6}  parent {row['parent'] or '-'}")
    else:
        if not 1 <= len(args.names) <= 2:
            raise InfluenceError("versions diff takes A B (or B alone: against its previous version)")
        a, b = args.names if len(args.names) == 2 else (proj.version(args.names[0]).parent, args.names[0])
        proj.version_diff(a, b).table(proj.source_index()).to_csv(sys.stdout, index=False)
    return 0


def _cmd_datalab(args: argparse.Namespace) -> int:
    """cleanlab's Datalab (and cleanvision on images) on the model's features: one row per sample and issue type."""
    if args.folds == 1 or args.folds < 0:
        raise InfluenceError("--folds takes 0 (in-sample) or a number of folds ≥ 2")
    settings = Project.data_issue_settings({"features": args.features, "k": args.neighbours,  # checked before training
                                            "near_duplicate_threshold": args.near_duplicate_threshold,
                                            "near_duplicates": args.near_duplicates})
    with project_for(args) as project:
        load_data_and_model(args, project)
        found = project.find_data_issues(args.folds, progress_printer(not args.quiet), settings)
    frame = found.table[["index", "issue", "score", "is_issue"]]
    if not args.quiet:
        for row in found.summary().itertuples():
            print(f"{row.issue:<22} {row.count:>6} flagged ({row.share:.1%})", file=sys.stderr)
    return _write_csv(frame, args.out, "rows", "score: lower = more likely an issue")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m influence_core", description="Hessian-free influence scores (lower = more detrimental).")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    p = sub.add_parser("score", help="score every training sample and write a CSV")
    add_data_model_arguments(p)
    p.add_argument("--method", default="ip", help="influence method (see `methods`; default ip)")
    p.add_argument("--impact", default="utility", help="utility, fairness, robustness, counterfactual, equalized_odds, or a joint ranking a+b (e.g. utility+counterfactual; default utility)")
    p.add_argument("--params", default="all", help="parameters to differentiate: all, head, or a name prefix; hf: models also lora and last:k; tv: models last_block (default all)")
    p.add_argument("--ensemble-size", type=int, help="IP Ensemble: number of dropout models K (default 5)")
    p.add_argument("--dropout", type=float, help="IP Ensemble: dropout rate p (default 0.01)")
    p.add_argument("--damping", type=float, help="Hessian-based methods: damping λ (default: automatic, from the Hessian's extreme eigenvalues)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other method setting (repeatable)")
    add_impact_arguments(p)
    p.add_argument("--folds", type=int, default=0,
                   help="out of fold: K models, each trained on K-1 folds, score the samples they did not see (default 0 = in-sample)")
    p.add_argument("--batch-size", type=whole_number(1), default=256,
                   help="samples per batch when scoring (memory, not results; default 256)")
    p.add_argument("--cluster", help="shard the scoring over a local Dask cluster: local:N (N worker processes), "
                                     "local-cuda[:N] (one worker per GPU) or none")
    p.add_argument("--scheduler", help="shard the scoring over a running Dask cluster: tcp://HOST:PORT "
                                       "(default: $INFLUENCE_DASK_SCHEDULER when set)")
    p.add_argument("--out", help="CSV path (default: stdout)")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("datalab", help="find other data issues (duplicates, outliers, ...) with cleanlab's Datalab; write a CSV")
    add_data_model_arguments(p)
    p.add_argument("--folds", type=int, default=0, help="out-of-fold probabilities from K fold models (default 0 = in-sample)")
    p.add_argument("--features", choices=["model", "pixels"], default="model",
                   help="what the neighbour checks compare: the model's penultimate features, or (images) 8x8 pixels")
    p.add_argument("--neighbours", type=int, default=10, help="k for Datalab's neighbour checks (default 10)")
    p.add_argument("--near-duplicate-threshold", type=float, default=None,
                   help="near duplicates: closer than this x the median neighbour distance (default: Datalab's 0.13 "
                        "on features, 0.6 on the image descriptor)")
    p.add_argument("--near-duplicates", choices=["descriptor", "features"], default="descriptor",
                   help="images: near duplicates on a crop-invariant descriptor (default) or on the features above")
    p.add_argument("--out", help="CSV path (default: stdout): index, issue, score (lower = more likely), is_issue")
    p.set_defaults(func=_cmd_datalab)

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
    p = sub.add_parser("export", help="a project's data set, labels, suggestions, scores and review tags as a zip "
                                      "for FiftyOne, Label Studio or Hugging Face datasets")
    p.add_argument("--project", required=True, help="the project to export (its data set, model and decisions)")
    p.add_argument("--format", required=True, help="fiftyone (images), label_studio or hugging_face")
    p.add_argument("--out", required=True, help="the zip to write")
    p.add_argument("--all-rows", action="store_true",
                   help="every training row with its review tag (default: the cleaned split, removed rows left out)")
    p.add_argument("--workspace", help="the workspace (default: $INFLUENCE_WORKSPACE or ./workspace)")
    p.add_argument("--user", help="who runs this (default: the OS login name)")
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("versions", help="a project's saved versions of the cleaned data set: list, save NAME, diff A B")
    p.add_argument("action", choices=("list", "save", "diff"))
    p.add_argument("names", nargs="*", help="save: the new version's name; diff: versions A and B (B alone: against "
                                             "its previous version)")
    p.add_argument("--project", default="cli", help="the project (default: cli)")
    p.add_argument("--workspace", help="the workspace (default: $INFLUENCE_WORKSPACE or ./workspace)")
    p.add_argument("--user", help="who saves a version (default: the OS login name)")
    p.set_defaults(func=_cmd_versions)
    from .evaluate import cli as _evaluate_cli  # the `experiment` command (evaluate/)

    if _evaluate_cli.register not in EXTRA_COMMANDS:
        EXTRA_COMMANDS.append(_evaluate_cli.register)
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Other packages add subcommands here: each entry takes the subparsers object and adds its parser.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser, argv)
