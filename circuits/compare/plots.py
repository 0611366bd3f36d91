"""The comparison's figures: component heatmaps side by side, and the faithfulness curves."""

from pathlib import Path

from circuits.compare.comparison import Comparison
from circuits.run.components import ComponentView

_ANNOTATE_MAX_CELLS = 80
"""Grids up to this many cells carry their values as text."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def component_grid(view: ComponentView) -> list[list[float]]:
    """Scores as rows of layers (layer 0 first) by columns [head 0, ..., head n-1, MLP]."""
    return [
        [view.scores.get(f"L{layer}H{head}", 0.0) for head in range(view.n_heads)]
        + [view.scores.get(f"MLP{layer}", 0.0)]
        for layer in range(view.n_layers)
    ]


def plot_components(comparison: Comparison, path: Path) -> Path:
    """One heatmap per model (layers by heads and MLP), one colour scale for all."""
    plt = _pyplot()
    grids = [component_grid(m.run.view) for m in comparison.models]
    vmax = max((v for grid in grids for row in grid for v in row), default=0.0) or 1.0
    widths = [len(grid[0]) if grid else 1 for grid in grids]
    height = max(len(grid) for grid in grids)
    fig, axes = plt.subplots(
        1,
        len(grids),
        figsize=(1.2 + 0.55 * sum(widths) + 0.6 * len(grids), 1.4 + 0.45 * height),
        dpi=120,
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, grid, entry in zip(axes[0], grids, comparison.models, strict=True):
        view = entry.run.view
        image = ax.imshow(grid, cmap="Blues", vmin=0.0, vmax=vmax, origin="lower", aspect="auto")
        ax.set_title(f"{entry.label}\n{view.n_layers} layers x {view.n_heads} heads", fontsize=9)
        ax.set_xticks(range(view.n_heads + 1))
        ax.set_xticklabels([f"H{h}" for h in range(view.n_heads)] + ["MLP"], fontsize=7)
        ax.set_yticks(range(view.n_layers))
        ax.set_yticklabels([f"L{layer}" for layer in range(view.n_layers)], fontsize=7)
        ax.set_ylim(-0.5, height - 0.5)  # layer rows the same height in every model
        ax.spines[:].set_visible(False)
        ax.axvline(view.n_heads - 0.5, color="white", linewidth=2)
        if view.n_layers * (view.n_heads + 1) <= _ANNOTATE_MAX_CELLS:
            for layer, row in enumerate(grid):
                for col, value in enumerate(row):
                    dark = value > 0.6 * vmax
                    ax.text(
                        col,
                        layer,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if dark else "black",
                    )
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="share of the clean-corrupt gap")
    fig.suptitle(f"{comparison.task}: share of the gap each head and MLP moves", fontsize=10)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(comparison: Comparison, path: Path) -> Path:
    """Every model's faithfulness against nodes kept (log x; size 0 drawn at 0.8), with the
    common level and where each curve reaches it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, entry in enumerate(comparison.models):
        curve = entry.run.curve
        if not curve:
            continue
        color = colors[i % len(colors)]
        ax.plot(
            [max(s, 0.8) for s, _ in curve],
            [f for _, f in curve],
            marker="o",
            markersize=3,
            color=color,
            label=entry.label,
        )
        if entry.size_at_level is not None and comparison.level is not None:
            ax.plot(
                [max(entry.size_at_level, 0.8)],
                [comparison.level],
                marker="x",
                markersize=8,
                color=color,
            )
    ax.axhline(1.0, color="#ccc", linewidth=0.8)
    if comparison.level is not None:
        ax.axhline(
            comparison.level,
            color="#999",
            linestyle="--",
            linewidth=0.8,
            label=f"level {comparison.level:.2f}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("feature and error nodes kept (by influence)")
    ax.set_ylabel("faithfulness")
    ax.set_title(f"{comparison.task}: faithfulness against circuit size", fontsize=10)
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
