"""report.md of a comparison: figures, components, head roles and drawings, one column per model."""

from collections.abc import Callable
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.compare.comparison import Comparison, ModelEntry

NA = "n/a"

_SVG_ROW_WIDTH = 1000
"""Pixels the drawings share side by side."""


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else NA


def _num(value: Any, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else NA


def _shape(m: ModelEntry) -> str:
    width = f", d_model {m.run.d_model}" if m.run.d_model is not None else ""
    return f"{m.run.n_layers} x {m.run.n_heads}{width}"


def _features(m: ModelEntry) -> str:
    s = m.run.summary
    if "circuit_features" not in s:
        return NA
    return f"{s['circuit_features']} ({_pct(s.get('circuit_feature_share'))} of active)"


def _nodes(m: ModelEntry) -> str:
    inner = sum(n.kind in (NodeKind.FEATURE, NodeKind.ERROR) for n in m.run.circuit.nodes)
    return f"{inner} ({len(m.run.circuit.nodes)}) / {len(m.run.circuit.edges)}"


def _size(m: ModelEntry) -> str:
    if m.run.curve is None:
        return f"{NA} (no curve in summary.json)"
    if m.size_at_level is None:
        return "not reached"
    return f"{m.size_at_level:.1f}"


def _final(m: ModelEntry) -> str:
    return _num(m.run.curve[-1][1]) if m.run.curve else NA


def _flow(m: ModelEntry) -> str:
    flow = m.run.view.flow
    keys = ("feature", "error", "attention", "qk_paths")
    return " / ".join(_pct(flow.get(k)) for k in keys)


def figures_table(comparison: Comparison) -> list[str]:
    models = comparison.models
    level = f"{comparison.level:.2f}" if comparison.level is not None else NA
    rows: list[tuple[str, Callable[[ModelEntry], str]]] = [
        ("run directory", lambda m: f"`{m.run.path}`"),
        ("layers x heads", _shape),
        ("prompts", lambda m: str(m.run.summary.get("n_prompts", NA))),
        ("**faithfulness**", lambda m: f"**{_num(m.run.summary.get('validation.faithfulness'))}**"),
        (
            "completeness (circuit ablated; lower is better)",
            lambda m: _num(m.run.summary.get("validation.completeness")),
        ),
        ("circuit features", _features),
        ("circuit nodes: features and errors (all) / edges", _nodes),
        (f"**nodes for faithfulness {level}**", lambda m: f"**{_size(m)}**"),
        ("faithfulness of the whole graph (curve's end)", _final),
        ("flow: features / errors / attention (OV) / attention patterns (QK)", _flow),
    ]
    lines = [
        "| | " + " | ".join(f"`{m.label}`" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    lines += [f"| {name} | " + " | ".join(cell(m) for m in models) + " |" for name, cell in rows]
    return lines


def components_table(comparison: Comparison) -> list[str]:
    models = comparison.models
    depth = max(len(m.top_components) for m in models)
    lines = [
        "| rank | " + " | ".join(f"`{m.label}`" for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for i in range(depth):
        cells = [
            f"{m.top_components[i][0]} {m.top_components[i][1]:.3f}"
            if i < len(m.top_components)
            else ""
            for m in models
        ]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return lines


def roles_section(m: ModelEntry) -> list[str]:
    lines = [f"### `{m.label}`", ""]
    if m.roles is None:
        note = m.reference_note
        return [*lines, f"{note[:1].upper()}{note[1:]}.", ""]
    check = m.roles
    lines += [
        f"| role | head | circuit score | found (>= {check.min_share:.0%}) |",
        "|---|---|---|---|",
    ]
    for role, heads in check.roles.items():
        for head, score in heads.items():
            found = "found" if score >= check.min_share else "missed"
            lines.append(f"| {role} | {head} | {score:.3f} | {found} |")
    n_ref = len(check.found) + len(check.missed)
    lines += [
        "",
        f"Reference circuit: {len(check.found)} of {n_ref} components scored >= "
        f"{check.min_share:.0%} ({check.recall:.0%})"
        + (f"; missed: {', '.join(check.missed)}." if check.missed else "."),
        "",
    ]
    return lines


def drawings(comparison: Comparison) -> list[str]:
    width = _SVG_ROW_WIDTH // len(comparison.models)
    cells = [
        f'<td><img src="{m.graph_file}" width="{width}"></td>'
        if m.run.path.joinpath("graph.svg").exists()
        else f"<td>no graph.svg in <code>{m.run.path}</code></td>"
        for m in comparison.models
    ]
    names = [f'<td align="center"><code>{m.label}</code></td>' for m in comparison.models]
    return ["<table>", f"<tr>{''.join(names)}</tr>", f"<tr>{''.join(cells)}</tr>", "</table>"]


def render_report(comparison: Comparison) -> str:
    c = comparison
    level = (
        f"Sizes are read where each curve first reaches faithfulness {c.level:.2f} "
        f"({c.level_source}), interpolated linearly between the curve's points."
        if c.level is not None
        else "No common faithfulness level: no curve rises above 0 (or none is known)."
    )
    computed = [m for m in c.models if m.run.view_source != "components.json"]
    lines = [
        f"# Circuits compared: `{c.task}` on " + ", ".join(f"`{m.label}`" for m in c.models),
        "",
        f"Metric `{c.metric}`; models smallest first (layers, then width). {level}",
        "",
        "## Figures",
        "",
        *figures_table(c),
        "",
        "Flow: shares of the circuit's influence through feature and error nodes, the share "
        "of the circuit edges' effect that attention heads carry, and the share of the gap "
        "moved through attention patterns (QK paths).",
        "",
        "![faithfulness curves](curves.png)",
        "",
        "## Components that carry the effect",
        "",
        "Scores are shares of the metric's clean-corrupt gap: an MLP moves what its features "
        "and error nodes move (each resampled alone, summed with signs); a head, the sum of "
        "|what its outgoing edges move| (the part of each circuit edge it carried) and |what "
        "its moved attention pattern moves|. Paths overlap, so a column does not sum to 1.",
        "",
        *components_table(c),
        "",
        *[f"`{m.label}`: component view {m.run.view_source}." for m in computed],
        *([""] if computed else []),
        "![components](components.png)",
        "",
        "## Head roles found",
        "",
    ]
    for m in c.models:
        lines += roles_section(m)
    lines += ["## Circuits", "", *drawings(c), ""]
    return "\n".join(lines)
