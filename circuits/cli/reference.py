"""`circuits reference TASK`: measure and store a task's causal reference on a model."""

import argparse
import shlex
from pathlib import Path

from circuits.arguments import add_threads, positive_int, unit_fraction

EPILOG = """examples:
  circuits reference tasks/ioi.toml --model zoo:small      -> out/reference/small/ioi.json
  circuits reference tasks/ioi.toml --model zoo:small --into-model   -> next to its model card
  circuits reference tasks/greater_than.toml               the task's default model
  circuits reference tasks/ioi.toml --model ./my-model --count 128 --out ref/ioi.json

Benchmarks read the references stored next to a model's card (`--into-model`).

Patches every attention head and MLP from each prompt's corrupted twin (all positions), mean-
ablates each at every role position, and path-patches every pair of components, then applies
the task's head-role rules (IOI: name movers, negative name movers, S-inhibition, induction,
duplicate-token and previous-token heads). Effects are shares of the clean-minus-corrupt gap.
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reference",
        help="measure a task's causal reference circuit by patching every head and MLP",
        description="Measure the causal reference of a task on a model (the slow, exhaustive "
        "patching that recovered circuits are scored against) and store it with the model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", type=Path, help="task file (TOML), e.g. tasks/ioi.toml")
    parser.add_argument("--model", help="model spec (default: the task's, else zoo:default)")
    parser.add_argument(
        "--count", type=positive_int, default=64, help="prompts to average over (default: 64)"
    )
    parser.add_argument(
        "--threshold",
        type=unit_fraction,
        default=0.1,
        help="smallest effect, as a share of the clean-corrupt gap, that puts a component "
        "in the reference circuit (default: 0.1)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--out", type=Path, help="output file (default: out/reference/<model>/<task>.json)"
    )
    where.add_argument(
        "--into-model",
        action="store_true",
        help="store it next to the model's card (<model dir>/reference/<task>.json), replacing "
        "the reference there",
    )
    add_threads(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from circuits.causal.compute import compute_reference
    from circuits.models import load_model
    from circuits.paths import check_output_file
    from circuits.tasks import build_prompt_set, check_count, load_task

    spec = load_task(args.task)
    model_spec = args.model or spec.default_model or "zoo:default"
    out = args.out or default_out(model_spec, spec.name, into_model=args.into_model)
    check_output_file(out, kind="causal_reference")
    check_count(args.count)
    torch.set_num_threads(args.threads)
    bridge = load_model(model_spec)
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=args.count)
    command = shlex.join(
        [
            "circuits", "reference", str(args.task), "--model", model_spec,
            "--count", str(args.count), "--threshold", str(args.threshold),
            *(["--out", str(args.out)] if args.out else []),
            *(["--into-model"] if args.into_model else []),
        ]
    )  # fmt: skip
    reference = compute_reference(
        bridge, prompt_set, model_spec=model_spec, threshold=args.threshold, command=command
    )
    reference.save(out)
    print(
        f"{spec.name} on {model_spec}: metric {reference.metric_clean:.3f} clean, "
        f"{reference.metric_corrupt:.3f} corrupted; reference circuit "
        f"{', '.join(reference.circuit)}"
    )
    for role, heads in reference.roles.items():
        print(f"  {role}: {', '.join(heads) or '-'}")
    print(f"wrote {out} ({reference.seconds:.0f} s)")
    return 0


def default_out(model_spec: str, task: str, *, into_model: bool) -> Path:
    """Next to the model's card with `into_model`, else out/reference/<model>/<task>.json."""
    from circuits.causal.reference import reference_path
    from circuits.errors import CircuitsError
    from circuits.models import resolve_model_dir
    from circuits.paths import model_slug

    if not into_model:
        return Path("out") / "reference" / model_slug(model_spec) / f"{task}.json"
    model_dir = resolve_model_dir(model_spec)
    if model_dir is None:
        raise CircuitsError(f"{model_spec} is a hub model: say where to write with --out FILE")
    return reference_path(model_dir, task)
