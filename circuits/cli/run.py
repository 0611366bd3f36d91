"""`circuits run TASK`: a task file in, a validated circuit out (SVG, JSON, report)."""

import argparse
import logging
import tempfile
from pathlib import Path

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
    parser.add_argument("--transcoders", type=Path, help="transcoder set directory")
    parser.add_argument("--out", type=Path, help="output directory (default: out/<task>/)")
    parser.add_argument("--engine", choices=("full", "recursive"), default="full")
    parser.add_argument("--count", type=int, help="number of prompts (default: the task's)")
    parser.add_argument(
        "--node-threshold",
        type=float,
        default=0.99,
        help="share of the total node score the circuit may stop at (default: 0.99)",
    )
    parser.add_argument(
        "--max-feature-share",
        type=float,
        default=0.05,
        help="most circuit features, as a share of the active features per prompt (default: 0.05)",
    )
    parser.add_argument(
        "--draw-nodes", type=int, default=40, help="most nodes drawn in graph.svg (default: 40)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: 1, fastest here)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from circuits.attribution.replacement import ReplacementModel
    from circuits.components.from_circuit import component_view
    from circuits.models import load_model
    from circuits.run import export
    from circuits.run.config import RunConfig
    from circuits.run.pipeline import replace_dir, run_task
    from circuits.run.report import plot_curve, render_report, write_summary
    from circuits.tasks import build_prompt_set, load_task
    from transcoders.transcoder_set import default_transcoders_dir, load_transcoder_set, model_id

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = load_task(args.task)
    model_spec = args.model or spec.default_model or "zoo:default"
    tset_dir = (
        args.transcoders
        or (Path(spec.default_transcoders) if spec.default_transcoders else None)
        or default_transcoders_dir(model_spec)
    )
    out = args.out or Path("out") / spec.name
    config = RunConfig(
        engine=args.engine,
        count=args.count,
        node_threshold=args.node_threshold,
        max_feature_share=args.max_feature_share,
    )
    bridge = load_model(model_spec)
    tset = load_transcoder_set(tset_dir, bridge=bridge, model=model_id(model_spec))
    prompt_set = build_prompt_set(spec, bridge.tokenizer, n_ctx=bridge.cfg.n_ctx, count=args.count)
    model = ReplacementModel(bridge, tset, transcoders_id=str(tset_dir))
    atlas = feature_atlas(model_spec, bridge, tset, tset_dir)
    labels = atlas.labels if atlas is not None else None
    result = run_task(spec, prompt_set, model, model_spec=model_spec, config=config, labels=labels)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    circuit = result.circuit
    faith = result.summary["validation.faithfulness"]
    title = f"{spec.name} on {model_spec}: faithfulness {faith:.2f}"
    write_drawings(circuit, prompt_set.prompts[0], title, config, args.draw_nodes, tmp)
    export.write_json(circuit.to_json(), tmp / "circuit.json")
    view = component_view(circuit, bridge.cfg.n_heads)
    export.write_json(view.to_json(), tmp / "components.json")
    if atlas is not None:
        keys = sorted({(n.layer, n.feature) for n in circuit.nodes if n.feature is not None})
        descriptions = atlas.describe(keys)
        export.write_json(
            {"features": [descriptions[k].to_json() for k in keys]}, tmp / "features.json"
        )
    result.graphs[0].save(tmp / "graphs" / "prompt-0")
    n_circuit = sum(n.kind in ("feature", "error") for n in circuit.nodes)
    plot_curve(result.curve, n_circuit, tmp / "faithfulness.png")
    write_summary(
        {**result.summary, "faithfulness_curve": [list(p) for p in result.curve]},
        tmp / "summary.json",
    )
    (tmp / "report.md").write_text(render_report(circuit, result.summary, result.curve))
    replace_dir(tmp, out)
    s = result.summary
    print(
        f"{spec.name} on {model_spec}: faithfulness {s['validation.faithfulness']:.3f} with "
        f"{s['circuit_features']} features ({100 * s['circuit_feature_share']:.1f}% of active), "
        f"completeness {s['validation.completeness']:.3f}, {s['seconds']:.0f} s"
    )
    print(
        f"wrote {out}/: report.md, graph.svg, graph.png, graph.json, circuit.json, "
        "features.json, components.json, summary.json"
    )
    return 0


def write_drawings(circuit, first, title, config, max_nodes, out):
    """graph.svg and graph.png (the strongest `max_nodes` nodes, laid out by the roles of the
    first prompt `first`) and graph.json for the common graph viewer."""
    from circuits.run import export
    from circuits.run.aggregate import role_names
    from circuits.run.circuit import drawable

    role_positions = {
        name: pos for pos, name in enumerate(role_names(first.roles, len(first.tokens)))
    }
    shown = drawable(circuit, max_nodes=max_nodes)
    if len(shown.nodes) < len(circuit.nodes):
        title += f" (the {len(shown.nodes)} strongest of {len(circuit.nodes)} nodes)"
    export.render_svg(shown, out / "graph.svg", title=title, role_positions=role_positions)
    export.render_png(shown, out / "graph.png", title=title, role_positions=role_positions)
    viewer = export.viewer_json(
        circuit,
        slug=f"{circuit.task}-{circuit.model.replace(':', '-')}",
        prompt_tokens=export.role_tokens(circuit, role_positions),
        node_threshold=config.node_threshold,
        answer_id=first.answers[0],
    )
    export.write_json(viewer, out / "graph.json")


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
