"""`circuits zoo`: list, train, evaluate and locate the project's own small language models."""

import argparse
import dataclasses
import json
from pathlib import Path

from circuits.arguments import positive_int
from circuits.errors import ModelSpecError
from circuits.zoo.card import read_card
from circuits.zoo.registry import DEFAULT, ZOO, is_trained, zoo_model, zoo_path

EPILOG = """examples:
  circuits zoo list                  a table of the zoo
  circuits zoo list --names          one name per line (for scripts)
  circuits zoo train small           train (or resume) `small` into out/zoo/small/
  circuits zoo train small --into-zoo   replace the zoo's own `small` (zoo:small)
  circuits zoo eval tiny --json      task scores on held-out prompts, as JSON
  circuits zoo path default          the directory of the shipped model
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser(
        "zoo", help="the project's small language models", epilog=EPILOG, formatter_class=fmt
    )
    sub = parser.add_subparsers(dest="zoo_command", required=True, metavar="COMMAND")

    listing = sub.add_parser(
        "list", help="list the zoo's models", epilog=EPILOG, formatter_class=fmt
    )
    listing.add_argument("--names", action="store_true", help="print one name per line")
    listing.set_defaults(run=run_list)

    train = sub.add_parser(
        "train",
        help="train a model (resumes from its checkpoint)",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    train.add_argument("name", help="zoo model name (see `circuits zoo list`)")
    train.add_argument("--steps", type=positive_int, help="override the number of optimizer steps")
    where = train.add_mutually_exclusive_group()
    where.add_argument(
        "--out",
        type=Path,
        help="output directory (default: out/zoo/<name>/; use it as --model DIR)",
    )
    where.add_argument(
        "--into-zoo",
        action="store_true",
        help="replace the zoo's own model directory (what zoo:<name> loads), dropping the "
        "transcoders and references trained on its old weights",
    )
    train.add_argument(
        "--fresh", action="store_true", help="discard an existing checkpoint and start from step 0"
    )
    train.set_defaults(run=run_train)

    evaluate = sub.add_parser(
        "eval", help="task scores on held-out prompts", epilog=EPILOG, formatter_class=fmt
    )
    evaluate.add_argument("name", help="zoo model name, or `default`")
    evaluate.add_argument("--json", action="store_true", help="print JSON for machines")
    evaluate.add_argument(
        "--n-prompts", type=positive_int, default=200, help="prompts per task (default: 200)"
    )
    evaluate.set_defaults(run=run_eval)

    path = sub.add_parser(
        "path", help="print a model's directory", epilog=EPILOG, formatter_class=fmt
    )
    path.add_argument("name", help="zoo model name, or `default`")
    path.set_defaults(run=run_path)


def run_list(args: argparse.Namespace) -> int:
    if args.names:
        print("\n".join(ZOO))
        return 0
    header = (
        f"{'name':<8} {'layers':>6} {'d_model':>7} {'heads':>5} {'status':<9} "
        f"{'ioi.logit_diff':>14} {'ioi.acc':>7} {'gt.prob_diff':>12}"
    )
    print(header)
    for name, spec in ZOO.items():
        status, ioi, acc, gt = "untrained", "-", "-", "-"
        if is_trained(name):
            scores = read_card(zoo_path(name)).get("scores", {})
            status = "shipped" if spec.shipped else "trained"
            ioi = f"{scores['ioi.logit_diff']:.2f}"
            acc = f"{scores['ioi.accuracy']:.2f}"
            gt = f"{scores['greater_than.prob_diff']:.2f}"
        label = f"{name}*" if name == DEFAULT else name
        print(
            f"{label:<8} {spec.n_layers:>6} {spec.d_model:>7} {spec.n_heads:>5} {status:<9} "
            f"{ioi:>14} {acc:>7} {gt:>12}"
        )
    print("* zoo:default")
    return 0


def run_train(args: argparse.Namespace) -> int:
    import shutil

    from circuits.paths import cache_dir, check_output_dir
    from circuits.zoo.train import CHECKPOINT, LOG, ZOO_MODEL_KIND, train

    spec = zoo_model(args.name)
    if args.steps is not None:
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, n_steps=args.steps))
    out = zoo_path(spec.name) if args.into_zoo else args.out or Path("out") / "zoo" / spec.name
    check_output_dir(out, kind=ZOO_MODEL_KIND)
    work = cache_dir() / "zoo-training" / spec.name  # outlives the work tree, for resuming
    if args.fresh:
        shutil.rmtree(work / CHECKPOINT, ignore_errors=True)
        (work / LOG).unlink(missing_ok=True)
    train(spec, out, work=work)
    card = read_card(out)
    print(f"trained {spec.name} in {card['wall_time_s'] / 60:.1f} min -> {out}")
    print(json.dumps(card["scores"], indent=2))
    if args.into_zoo:
        print(f"zoo:{spec.name} now loads it; train its transcoders and references again")
    else:
        print(f"use it with --model {out} (or train it with --into-zoo to replace zoo:{spec.name})")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from circuits.models import load_model
    from circuits.zoo.scores import task_scores

    name = zoo_model(args.name).name
    bridge = load_model(f"zoo:{name}")
    scores = task_scores(lambda ids: bridge(ids), bridge.tokenizer, n_prompts=args.n_prompts)
    if args.json:
        print(json.dumps({"model": f"zoo:{name}", **scores}, indent=2))
    else:
        for key, value in scores.items():
            print(f"{key:<28} {value:8.3f}")
    return 0


def run_path(args: argparse.Namespace) -> int:
    name = zoo_model(args.name).name
    if not is_trained(name):
        raise ModelSpecError(
            f"zoo model {name!r} is not trained yet; run `circuits zoo train {name}`"
        )
    print(zoo_path(name))
    return 0
