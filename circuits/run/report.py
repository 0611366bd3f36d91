"""report.md and summary.json of a task run, and the faithfulness-against-size plot."""

import json
import math
from pathlib import Path
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.run.circuit import Circuit

CURVE_NOTE = (
    "Curve: the n highest-scoring feature and error nodes, no feature cap. The circuit\n"
    "caps its features and takes later error nodes instead, so its faithfulness (x) can\n"
    "differ from the curve at the same size."
)
"""Why the curve's node selection differs from the headline circuit's (`select_nodes`)."""


def plot_curve(
    curve: list[tuple[int, float]],
    n_circuit: int,
    path: Path,
    *,
    circuit_faithfulness: float | None = None,
) -> Path:
    """faithfulness.png: faithfulness against the number of nodes kept, the circuit's size
    dashed and its own faithfulness marked (x), with `CURVE_NOTE` under the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8), dpi=120)
    sizes = [max(s, 0.8) for s, _ in curve]
    ax.plot(sizes, [f for _, f in curve], marker="o", color="#1f5fa8", label="curve")
    ax.axvline(max(n_circuit, 0.8), color="#999", linestyle="--", label="circuit size")
    if circuit_faithfulness is not None and math.isfinite(circuit_faithfulness):
        ax.plot(
            [max(n_circuit, 0.8)],
            [circuit_faithfulness],
            marker="x",
            markersize=9,
            markeredgewidth=2,
            linestyle="none",
            color="#b2182b",
            label="circuit",
        )
    ax.axhline(1.0, color="#ccc", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("feature and error nodes kept (by score)")
    ax.set_ylabel("faithfulness")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    fig.text(0.02, 0.02, CURVE_NOTE, fontsize=6.5, color="#555", va="bottom", ha="left")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def top_heads(circuit: Circuit, n: int = 8) -> list[tuple[str, float]]:
    """Heads by the total absolute edge weight they carry in the circuit."""
    totals: dict[str, float] = {}
    for edge in circuit.edges:
        for head, share in edge.heads:
            totals[head] = totals.get(head, 0.0) + abs(edge.weight * share)
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]


def _undefined_note(s: dict[str, Any]) -> list[str]:
    """Why faithfulness can be nan: ablating every node leaves the metric as it is."""
    if not math.isnan(s["validation.faithfulness"]):
        return []
    return [
        "",
        "Faithfulness is undefined here: ablating every feature and error node leaves the metric "
        "unchanged, so none of the behaviour passes through an MLP (attention and the residual "
        "stream carry it all; `components.json` says which heads).",
    ]


def _drawing(s: dict[str, Any]) -> list[str]:
    """The circuit's drawing, or what was skipped and why."""
    skipped = s.get("skipped", [])
    if any(line.startswith("graph.svg") for line in skipped):
        return [f"Not drawn: {line}" for line in skipped]
    return ["![circuit](graph.svg)"]


def render_report(circuit: Circuit, summary: dict[str, Any], curve: list[tuple[int, float]]) -> str:
    s = summary
    lines = [
        f"# Circuit: `{s['task']}` on `{s['model']}`",
        "",
        f"{s['n_prompts']} prompts, metric `{s['metric']}`, engine `{s['engine']}`, "
        f"{s['seconds']:.1f} s.",
        "",
        "## Figures",
        "",
        "| | |",
        "|---|---|",
        f"| metric, original model, clean prompts | {s['metric_clean']:.3f} |",
        f"| metric, original model, corrupted prompts | {s['metric_corrupt']:.3f} |",
        f"| **clean - corrupted gap** (faithfulness is measured against it) | **{s['gap']:.3f}** |",
        f"| metric, original model through the validation replay | {s['validation.model']:.3f} |",
        f"| metric, transcoders spliced (no error terms) | {s['metric_spliced']:.3f} |",
        f"| metric, everything ablated | {s['validation.nothing']:.3f} |",
        f"| metric, circuit only | {s['validation.circuit']:.3f} |",
        f"| **faithfulness** | **{s['validation.faithfulness']:.3f}** |",
        f"| completeness (circuit ablated; lower is better) | {s['validation.completeness']:.3f} |",
        f"| circuit size | {s['circuit_features']} features "
        f"({100 * s['circuit_feature_share']:.1f}% of {s['mean_active_features']:.0f} active per "
        f"prompt), {s['circuit_nodes']} nodes, {s['circuit_edges']} edges |",
        f"| replacement score (graph) | {s['replacement_score']:.3f} |",
        f"| completeness score (graph) | {s['completeness_score']:.3f} |",
        "",
        f"Ablation: {s['validation.ablation']}.",
        *_undefined_note(s),
        "",
        *_drawing(s),
        "",
        "## Faithfulness against circuit size",
        "",
        "![faithfulness against size](faithfulness.png)",
        "",
        "| nodes kept | faithfulness |",
        "|---|---|",
        *[f"| {size} | {f:.3f} |" for size, f in curve],
        "",
        "## Top features",
        "",
        "| node | role | share of circuit score | effect on the metric | mean activation | "
        "description |",
        "|---|---|---|---|---|---|",
    ]
    features = sorted(
        (n for n in circuit.nodes if n.kind == NodeKind.FEATURE), key=lambda n: -n.influence
    )
    lines += [
        f"| L{n.layer} #{n.feature} | {n.role} | {n.influence:.3f} | {n.effect:+.3f} | "
        f"{n.activation:.2f} | {n.label} |"
        for n in features[:15]
    ]
    lines += attention_sections(circuit)
    return "\n".join(lines) + "\n"


def attention_sections(circuit: Circuit) -> list[str]:
    """The report's sections on attention: heads on circuit edges, QK paths, moved patterns."""
    lines: list[str] = []
    heads = top_heads(circuit)
    if heads:
        lines += [
            "",
            "## Attention heads on circuit edges",
            "",
            "| head | weight carried |",
            "|---|---|",
        ]
        lines += [f"| {h} | {w:.3f} |" for h, w in heads]
    qk = sorted(circuit.qk_paths.items(), key=lambda kv: -abs(kv[1]))[:8]
    if qk:
        lines += [
            "",
            "## Paths through attention patterns (QK)",
            "",
            "The graph holds attention frozen; these components act by moving where a later head "
            "looks (on the real model: the sender's change alone in the head's query and key, "
            "the head's new pattern exact, what follows to first order; share of the metric's "
            "gap).",
            "",
            "| sender -> head | share of gap |",
            "|---|---|",
        ]
        lines += [f"| {name} | {share:+.3f} |" for name, share in qk]
    gap = circuit.gap or 1.0
    moved = sorted(circuit.moved_patterns.items(), key=lambda kv: -abs(kv[1]))[:8]
    if moved and any(value != 0 for _, value in moved):
        lines += [
            "",
            "## Heads whose own attention the corruption moves",
            "",
            "Each head's corrupted-prompt pattern swapped in, everything else clean, through the "
            "frozen linear model: what that does to the metric, as a share of its gap.",
            "",
            "| head | share of gap |",
            "|---|---|",
        ]
        lines += [f"| {name} | {value / gap:+.3f} |" for name, value in moved]
    return lines


def write_summary(summary: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
