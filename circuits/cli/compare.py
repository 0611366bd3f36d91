"""`circuits compare DIR...`: one task's circuits from models of different sizes, side by side."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from circuits.compare.roles import MIN_SHARE

if TYPE_CHECKING:
    from circuits.compare.comparison import ModelEntry

EPILOG = """examples:
  circuits compare out/ioi-tiny out/ioi-small          -> out/compare-ioi/
  circuits compare out/ioi-tiny out/ioi-small out/ioi-medium --out out/ioi-sizes
  circuits compare out/ioi-tiny out/ioi-small --level 0.9   sizes at faithfulness 0.9

Each DIR is the output of `circuits run`, e.g.
  circuits run tasks/ioi.toml --model zoo:small --out out/ioi-small

Writes report.md (figures, circuit size at equal faithfulness, the heads and MLPs that carry
the effect, head roles found against each model's causal reference, the drawings side by
side), compare.json, components.png (heatmaps of layers x heads and MLP), curves.png
(faithfulness against size) and graph-<model>.svg per run. Models are ordered by size.
"""


def _level(text: str) -> float:
    value = float(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"expected a faithfulness above 0, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text}")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="put one task's circuits from models of different sizes side by side",
        description="Compare the circuits `circuits run` found for one task on several models: "
        "faithfulness, size at equal faithfulness, the components that carry the effect, head "
        "roles, and the drawings, in one report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="run directories")
    parser.add_argument("--out", type=Path, help="output directory (default: out/compare-<task>/)")
    parser.add_argument(
        "--level",
        type=_level,
        help="faithfulness to read circuit sizes at (default: the lowest final faithfulness "
        "of the curves, capped at 0.8)",
    )
    parser.add_argument(
        "--top", type=int, default=8, help="components listed per model (default: 8)"
    )
    parser.add_argument(
        "--min-share",
        type=_share,
        default=MIN_SHARE,
        help="component score (share of the metric's gap) at which a reference head counts as "
        f"found (default: {MIN_SHARE})",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from circuits.compare.comparison import compare_runs
    from circuits.compare.load import load_runs
    from circuits.compare.output import write_comparison

    runs = load_runs(list(args.dirs))
    comparison = compare_runs(runs, level=args.level, n_top=args.top, min_share=args.min_share)
    out = args.out or Path("out") / f"compare-{comparison.task}"
    names = write_comparison(comparison, out)
    width = max(len(m.label) for m in comparison.models)
    for m in comparison.models:
        print(f"{m.label:<{width}}  {model_line(m, comparison.level)}")
    print(f"wrote {out}/: {', '.join(names)}")
    return 0


def model_line(m: "ModelEntry", level: float | None) -> str:
    """One model's figures on one line: shape, validation, size at the level, top components."""
    s = m.run.summary
    if m.run.curve is None:
        size = "n/a (no curve)"
    elif m.size_at_level is None:
        size = "not reached"
    else:
        size = f"{m.size_at_level:.1f} nodes"
    at = f"{level:.2f}" if level is not None else "n/a"
    top = ", ".join(f"{name} {score:.2f}" for name, score in m.top_components[:3])
    return (
        f"{m.run.n_layers}x{m.run.n_heads}: faithfulness "
        f"{s.get('validation.faithfulness', float('nan')):.3f}, completeness "
        f"{s.get('validation.completeness', float('nan')):.3f}, "
        f"{s.get('circuit_features', '?')} features, faithfulness {at} at {size}; top {top}"
    )
