"""The numbers of a comparison: one entry per model, smallest first (compare.json)."""

import re
from dataclasses import dataclass
from typing import Any

from circuits.compare.curves import DEFAULT_CAP, common_level, size_at
from circuits.compare.load import RunDir
from circuits.compare.roles import MIN_SHARE, RoleCheck, check_roles, find_reference

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One model's circuit, in the terms the report compares."""

    label: str
    """The model spec, with the run directory's name where two runs share a model."""
    slug: str
    """File-name form of the label, unique in the comparison (e.g. `zoo-tiny`)."""
    run: RunDir
    size_at_level: float | None
    """Nodes (features and errors by influence rank) that reach the common level; None where
    the curve is unknown or never reaches it."""
    top_components: list[tuple[str, float]]
    """Heads and MLPs by score, strongest first."""
    roles: RoleCheck | None
    """The circuit against the model's causal reference; None where there is none."""
    reference_note: str
    """Why there is no role check (empty where there is one)."""

    @property
    def graph_file(self) -> str:
        return f"graph-{self.slug}.svg"

    def to_json(self) -> dict[str, Any]:
        s, run = self.run.summary, self.run
        curve = run.curve
        return {
            "label": self.label,
            "model": run.model,
            "run_dir": str(run.path),
            "n_layers": run.n_layers,
            "n_heads": run.n_heads,
            "d_model": run.d_model,
            "faithfulness": s.get("validation.faithfulness"),
            "completeness": s.get("validation.completeness"),
            "circuit_features": s.get("circuit_features"),
            "circuit_feature_share": s.get("circuit_feature_share"),
            "mean_active_features": s.get("mean_active_features"),
            "circuit_nodes": s.get("circuit_nodes"),
            "faithfulness_curve": [list(p) for p in curve] if curve is not None else None,
            "size_at_level": self.size_at_level,
            "flow": run.view.flow,
            "components_source": run.view_source,
            "top_components": [list(c) for c in self.top_components],
            "scores": run.view.scores,
            "roles": self.roles.to_json() if self.roles is not None else None,
            "reference_note": self.reference_note,
            "graph": self.graph_file,
        }


@dataclass(frozen=True, kw_only=True)
class Comparison:
    task: str
    metric: str
    level: float | None
    """The common faithfulness level sizes are read at; None where no curve allows one."""
    level_source: str
    """How `level` was chosen."""
    models: list[ModelEntry]
    """Smallest model first."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "circuit_comparison",
            "schema_version": SCHEMA_VERSION,
            "task": self.task,
            "metric": self.metric,
            "level": self.level,
            "level_source": self.level_source,
            "models": [m.to_json() for m in self.models],
        }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _labels(runs: list[RunDir]) -> list[str]:
    models = [r.model for r in runs]
    return [r.model if models.count(r.model) == 1 else f"{r.model} ({r.path.name})" for r in runs]


def _unique_slugs(labels: list[str]) -> list[str]:
    slugs: list[str] = []
    for label in labels:
        slug = base = _slug(label)
        n = 2
        while slug in slugs:
            slug, n = f"{base}-{n}", n + 1
        slugs.append(slug)
    return slugs


def compare_runs(
    runs: list[RunDir],
    *,
    level: float | None = None,
    n_top: int = 8,
    min_share: float = MIN_SHARE,
) -> Comparison:
    """Put runs of one task (smallest model first, as `load_runs` orders them) side by side.
    `level`: the faithfulness to read circuit sizes at; default the lowest final faithfulness
    of the curves, capped at 0.8."""
    if level is None:
        level = common_level([r.curve for r in runs], cap=DEFAULT_CAP)
        source = f"the lowest final faithfulness of the curves, capped at {DEFAULT_CAP}"
    else:
        source = "given"
    labels = _labels(runs)
    entries = []
    for run, label, slug in zip(runs, labels, _unique_slugs(labels), strict=True):
        curve = run.curve
        reference, note = find_reference(run.model, run.task)
        scores = run.view.scores
        entries.append(
            ModelEntry(
                label=label,
                slug=slug,
                run=run,
                size_at_level=size_at(curve, level) if curve and level is not None else None,
                top_components=sorted(scores.items(), key=lambda kv: -kv[1])[:n_top],
                roles=check_roles(reference, scores, min_share=min_share) if reference else None,
                reference_note=note,
            )
        )
    first = runs[0]
    return Comparison(
        task=first.task,
        metric=str(first.summary.get("metric", first.circuit.metric)),
        level=level,
        level_source=source,
        models=entries,
    )
