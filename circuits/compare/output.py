"""The comparison's output directory, written whole or not at all."""

import json
import shutil
from pathlib import Path

from circuits.compare.comparison import Comparison
from circuits.errors import CompareError
from circuits.paths import atomic_dir, check_output_dir


def check_out(out: Path, comparison: Comparison) -> None:
    """Refuse an output directory this tool may not replace, or whose replacement would delete
    one of the runs compared."""
    target = out.resolve()
    for entry in comparison.models:
        run = entry.run.path.resolve()
        if run == target or target in run.parents:
            raise CompareError(
                f"--out {out} would replace the run directory {entry.run.path}; choose another"
            )
    check_output_dir(out, kind=COMPARISON_KIND)


COMPARISON_KIND = "circuit_comparison"
"""The artifact kind of a comparison directory (its marker), what `--out` may replace."""


def write_comparison(comparison: Comparison, out: Path) -> list[str]:
    """Write report.md, compare.json, components.png, curves.png and each run's graph.svg as
    graph-<model>.svg to `out`, replacing an earlier comparison there. Returns the file names
    written."""
    from circuits.compare.plots import plot_components, plot_curves
    from circuits.compare.report import render_report

    check_out(out, comparison)
    with atomic_dir(out, kind=COMPARISON_KIND) as tmp:
        for entry in comparison.models:
            svg = entry.run.path / "graph.svg"
            if svg.exists():
                shutil.copyfile(svg, tmp / entry.graph_file)
        plot_components(comparison, tmp / "components.png")
        plot_curves(comparison, tmp / "curves.png")
        (tmp / "compare.json").write_text(json.dumps(comparison.to_json(), indent=1) + "\n")
        (tmp / "report.md").write_text(render_report(comparison))
        names = sorted(p.name for p in tmp.iterdir())
    return names
