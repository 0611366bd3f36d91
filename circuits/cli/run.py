"""`circuits run TASK`: a task file in, a validated circuit out (SVG, JSON, report)."""

import argparse
import logging
from pathlib import Path

from circuits.arguments import add_threads, positive_int, unit_fraction
from circuits.run.config import ENGINES, RunConfig

DEFAULTS = RunConfig()

EPILOG = """examples:
  circuits run tasks/ioi.toml                          shipped model and transcoders -> out/ioi/
  circuits run tasks/greater_than.toml --count 10      fewer prompts, faster
  circuits run tasks/ioi.toml --model zoo:small --out out/ioi-small
  circuits run tasks/ioi.toml --engine recursive       expand from the metric instead of full graphs

Writes graph.svg (and .png), graph.json (for the common graph viewer), circuit.json,
components.json (the influence each attention head and MLP layer carries), features.json
(top contexts, promoted and input tokens of the circuit's features), the first
prompt's attribution graph (graphs/prompt-0/), faithfulness.png, report.md and summary.json.
Validation ablates nodes by resampling them from each prompt's paired corrupted prompt.
--out must be a new directory or an earlier run directory (which is replaced); anything else
is refused. The directory appears only when every file is written. Without a drawing
renderer the run still writes every other file and says what it skipped.
"""

log = logging.getLogger(__name__)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="find, validate and draw the circuit of a task",
        description="Find the circuit behind a task: attribution graphs of its prompts merged "
        "by role, pruned by influence, validated by interventions on the real model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", type=Path, help="task file (TOML), e.g. tasks/ioi.toml")
    parser.add_argument("--model", help="model spec (default: the task's, else zoo:default)")
    parser.add_argument(
        "--transcoders",
        type=Path,
        help="transcoder set: a directory in any format of docs/formats.md (this project's, "
        "circuit-tracer, Gemma Scope, sparsify, SAELens, Dunefsky et al.) or a hub name",
    )
    parser.add_argument("--out", type=Path, help="output directory (default: out/<task>/)")
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULTS.engine)
    parser.add_argument(
        "--count", type=positive_int, help="number of prompts (default: the task's)"
    )
    parser.add_argument(
        "--node-threshold",
        type=unit_fraction,
        default=DEFAULTS.node_threshold,
        help="share of the total node score the circuit may stop at, in (0, 1] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--max-feature-share",
        type=unit_fraction,
        default=DEFAULTS.max_feature_share,
        help="most circuit features, as a share of the active features per prompt, in (0, 1] "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--min-gap",
        type=float,
        default=DEFAULTS.min_gap,
        help="smallest |clean - corrupted| mean metric on the model, in the metric's units, "
        "that a run measures against; a smaller gap is refused (default: %(default)s)",
    )
    parser.add_argument(
        "--draw-nodes",
        type=positive_int,
        default=40,
        help="most nodes drawn in graph.svg (default: %(default)s)",
    )
    add_threads(parser)
    parser.set_defaults(run=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    from circuits.run.config import RunConfig
    from circuits.run_directory import check_run_dir
    from circuits.tasks import check_count, load_task

    # everything that can fail cheaply fails before the model loads
    spec = load_task(args.task)
    out = args.out or Path("out") / spec.name
    check_run_dir(out)
    if args.count is not None:
        check_count(args.count)
    try:
        config = RunConfig(
            engine=args.engine,
            count=args.count,
            node_threshold=args.node_threshold,
            max_feature_share=args.max_feature_share,
            min_gap=args.min_gap,
        )
    except ValueError as err:
        args.parser.error(str(err))
    return run_checked(args, spec, out, config)


def run_checked(args: argparse.Namespace, spec, out: Path, config) -> int:
    import torch

    from circuits.attribution.replacement import ReplacementModel
    from circuits.models import load_model
    from circuits.run.pipeline import run_task
    from circuits.run_directory import write_run
    from circuits.tasks import build_prompt_set
    from transcoders.formats import load_any, resolve
    from transcoders.transcoder_set import default_transcoders_dir, model_id

    torch.set_num_threads(args.threads)
    model_spec = args.model or spec.default_model or "zoo:default"
    tset_dir = (
        args.transcoders
        or (Path(spec.default_transcoders) if spec.default_transcoders else None)
        or default_transcoders_dir(model_spec)
    )
    tset_dir = resolve(tset_dir)  # a hub name becomes its downloaded directory
    bridge = load_model(model_spec)
    tset = load_any(tset_dir, bridge=bridge, model=model_id(model_spec))
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=args.count)
    model = ReplacementModel(bridge, tset, transcoders_id=str(tset_dir))
    atlas = feature_atlas(model_spec, bridge, tset, tset_dir)
    labels = atlas.labels if atlas is not None else None
    result = run_task(spec, prompt_set, model, model_spec=model_spec, config=config, labels=labels)
    written = write_run(result, out, atlas=atlas, draw_nodes=args.draw_nodes)
    s = result.summary
    print(
        f"{spec.name} on {model_spec}: metric {s['metric_clean']:.3f} clean, "
        f"{s['metric_corrupt']:.3f} corrupted; faithfulness {s['validation.faithfulness']:.3f} "
        f"with {s['circuit_features']} features ({100 * s['circuit_feature_share']:.1f}% of "
        f"active), completeness {s['validation.completeness']:.3f}, {s['seconds']:.0f} s"
    )
    print(f"wrote {out}/: {', '.join(written.files)}")
    for line in written.skipped:
        print(f"skipped: {line}")
    return 0


def feature_atlas(model_spec, bridge, tset, tset_dir):
    """The (cached) feature atlas of the set, or None (with a warning) if it cannot be built
    here: it needs the corpus the model was trained on."""
    from circuits.errors import CircuitsError
    from circuits.features import load_or_build_atlas

    try:
        atlas = load_or_build_atlas(model_spec, bridge, tset, tset_dir)
    except CircuitsError as err:
        log.warning("features are shown without descriptions: %s", err)
        return None
    return atlas
