"""A run directory: every artifact of a task run, written whole or not at all.

The directory appears at its path only once every file is written (`atomic_dir`), so a failure or
an interrupt leaves nothing behind, and it replaces only an earlier run directory. Drawings come
last and may fail alone: a missing renderer costs graph.svg and graph.png, never the circuit.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.errors import CircuitsError
from circuits.paths import atomic_dir, check_output_dir
from circuits.run.pipeline import RunResult

log = logging.getLogger(__name__)

RUN_KIND = "circuit_run"
"""The artifact kind of a run directory (its marker), what `--out` may replace."""
SUMMARY_SCHEMA_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class RunFiles:
    """What `write_run` wrote."""

    path: Path
    """The run directory."""
    files: list[str]
    """Names of the files and directories written, sorted."""
    skipped: list[str] = field(default_factory=list)
    """One line per artifact that could not be written (drawings), with how to get it."""


def check_run_dir(out: Path) -> Path:
    """Refuse, before any work, a `--out` that is not new and not an earlier run directory."""
    return check_output_dir(out, kind=RUN_KIND)


def write_run(result: RunResult, out: Path, *, atlas: Any = None, draw_nodes: int = 40) -> RunFiles:
    """Write `result` to the run directory `out`: circuit.json, components.json, features.json
    (with an `atlas`), graphs/prompt-0/, faithfulness.png, summary.json, report.md, graph.json,
    then graph.svg and graph.png (the strongest `draw_nodes` nodes) and graph.html (the
    interactive page, `circuits.view`)."""
    from circuits.run import export
    from circuits.run.components import component_view
    from circuits.run.report import plot_curve, render_report, write_summary

    if draw_nodes < 1:
        raise ValueError(f"draw_nodes must be >= 1, got {draw_nodes}")
    circuit = result.circuit
    with atomic_dir(out, kind=RUN_KIND) as tmp:
        export.write_json(circuit.to_json(), tmp / "circuit.json")
        view = component_view(circuit, result.n_heads)
        export.write_json(view.to_json(), tmp / "components.json")
        if atlas is not None:
            keys = sorted({(n.layer, n.feature) for n in circuit.nodes if n.feature is not None})
            descriptions = atlas.describe(keys)
            features = {"features": [descriptions[k].to_json() for k in keys]}
            export.write_json(features, tmp / "features.json")
        result.graphs[0].save(tmp / "graphs" / "prompt-0")
        n_circuit = sum(n.kind in (NodeKind.FEATURE, NodeKind.ERROR) for n in circuit.nodes)
        plot_curve(
            result.curve,
            n_circuit,
            tmp / "faithfulness.png",
            circuit_faithfulness=result.summary.get("validation.faithfulness"),
        )
        write_viewer_json(result, tmp)
        skipped = write_drawings(result, tmp, draw_nodes)
        summary = {
            "kind": RUN_KIND,
            "schema_version": SUMMARY_SCHEMA_VERSION,
            **result.summary,
            "faithfulness_curve": [list(p) for p in result.curve],
        }
        skipped += write_viewer_page(tmp, summary)
        summary["skipped"] = skipped
        write_summary(summary, tmp / "summary.json")
        report = render_report(circuit, summary, result.curve)
        (tmp / "report.md").write_text(report)
        files = sorted(p.name for p in tmp.iterdir())
    return RunFiles(path=Path(out), files=files, skipped=skipped)


def _example_roles(result: RunResult) -> list[str]:
    """The role name of each position of the first prompt."""
    from circuits.run.aggregate import role_names

    first = result.example
    return role_names(first.roles, len(first.tokens))


def _role_positions(result: RunResult) -> dict[str, int]:
    return {name: pos for pos, name in enumerate(_example_roles(result))}


def write_viewer_json(result: RunResult, out: Path) -> None:
    """graph.json, in the format of the common graph viewer: columns labelled by role, the first
    prompt's real tokens kept beside them (`circuits.run.export`)."""
    from circuits.run import export

    circuit = result.circuit
    example_roles = _example_roles(result)
    if len(example_roles) != len(circuit.example_tokens):
        example_roles = None  # a circuit without the first prompt's tokens
    viewer = export.viewer_json(
        circuit,
        slug=f"{circuit.task}-{circuit.model.replace(':', '-')}",
        prompt_tokens=list(circuit.roles),
        node_threshold=result.config.node_threshold,
        answer_id=result.example.answers[0],
        example_roles=example_roles,
    )
    export.write_json(viewer, out / "graph.json")


def write_viewer_page(out: Path, summary: dict[str, Any]) -> list[str]:
    """graph.html, the interactive page (`circuits.view`), from the files already in the run
    directory `out`. Returns a line if it could not be written, saying why and how to get it."""
    from circuits.view.page import write_page

    try:
        write_page(out, summary=summary)
    except (CircuitsError, OSError, ValueError) as err:
        line = f"graph.html not written ({err}); `circuits view RUN_DIR` writes it"
        log.warning(line)
        return [line]
    return []


def write_drawings(result: RunResult, out: Path, max_nodes: int) -> list[str]:
    """graph.svg and graph.png (the strongest `max_nodes` nodes, laid out by the roles of the
    first prompt). Returns a line per drawing that failed, saying why and how to get it."""
    from circuits.run import drawing
    from circuits.run.circuit import drawable

    circuit = result.circuit
    faith = result.summary["validation.faithfulness"]
    title = f"{circuit.task} on {circuit.model}: faithfulness {faith:.2f}"
    shown = drawable(circuit, max_nodes=max_nodes)
    if len(shown.nodes) < len(circuit.nodes):
        title += f" (the {len(shown.nodes)} strongest of {len(circuit.nodes)} nodes)"
    positions = _role_positions(result)
    skipped = []
    for name, render in (("graph.svg", drawing.render_svg), ("graph.png", drawing.render_png)):
        try:
            render(shown, out / name, title=title, role_positions=positions)
        except (CircuitsError, OSError, ImportError) as err:
            line = f"{name} not drawn ({err}); everything else was written"
            log.warning(line)
            skipped.append(line)
    return skipped
