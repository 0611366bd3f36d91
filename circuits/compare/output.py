"""The comparison's output directory, written whole or not at all."""

import json
import shutil
import tempfile
from pathlib import Path

from circuits.compare.comparison import Comparison
from circuits.errors import CompareError


def check_out(out: Path, comparison: Comparison) -> None:
    """Refuse an output directory whose replacement would delete one of the runs compared."""
    target = out.resolve()
    for entry in comparison.models:
        run = entry.run.path.resolve()
        if run == target or target in run.parents:
            raise CompareError(
                f"--out {out} would replace the run directory {entry.run.path}; choose another"
            )


def write_comparison(comparison: Comparison, out: Path) -> list[str]:
    """Write report.md, compare.json, components.png, curves.png and each run's graph.svg as
    graph-<model>.svg to `out`, replacing what was there. Returns the file names written."""
    from circuits.compare.plots import plot_components, plot_curves
    from circuits.compare.report import render_report
    from circuits.run.pipeline import replace_dir

    check_out(out, comparison)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    try:
        for entry in comparison.models:
            svg = entry.run.path / "graph.svg"
            if svg.exists():
                shutil.copyfile(svg, tmp / entry.graph_file)
        plot_components(comparison, tmp / "components.png")
        plot_curves(comparison, tmp / "curves.png")
        (tmp / "compare.json").write_text(json.dumps(comparison.to_json(), indent=1) + "\n")
        (tmp / "report.md").write_text(render_report(comparison))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    names = sorted(p.name for p in tmp.iterdir())
    replace_dir(tmp, out)
    return names
