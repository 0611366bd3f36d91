"""What the page shows, assembled from the files of a run directory (circuit.json, graph.json,
features.json, summary.json, components.json) into one JSON object that the page embeds.

The page's thresholds work as the pruning does (`circuits.attribution.influence`), on the
circuit itself: the node threshold keeps feature and error nodes, strongest first, until they
hold that share of the circuit's score (`CircuitNode.influence`, what the run selected by);
the edge threshold keeps, among edges between kept nodes, the strongest by influence-weighted
weight (`|w|` over the target's total `|w|`, times the target's influence on the metric through
the circuit's edges) until they hold that share. Edges are sent sorted by that score, so the
page keeps them in one pass.
"""

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.errors import CircuitsError
from circuits.run.circuit import Circuit
from circuits.view.groups import group_by_description, group_by_position, groups_from_supernodes

log = logging.getLogger(__name__)

PAGE_SCHEMA_VERSION = 1
DEFAULT_NODE_THRESHOLD = 0.8
"""The page's node threshold when it opens (circuit-tracer's default pruning)."""
DEFAULT_EDGE_THRESHOLD = 0.98
MAX_CONTEXTS = 6
"""Top contexts per feature kept in the page."""
MAX_TOKENS = 8
"""Promoted, suppressed and input tokens per feature kept in the page."""


class ViewError(CircuitsError):
    """A run directory the page cannot be built from, or a request the server refuses."""


@dataclass(frozen=True, kw_only=True)
class RunView:
    """The files of a run directory that the page is built from."""

    path: Path
    circuit: Circuit
    graph: dict[str, Any]
    """graph.json (the common viewer's format)."""
    node_ids: list[str]
    """graph.json's id of each circuit node, in `circuit.nodes` order."""
    features: dict[tuple[int, int], dict[str, Any]]
    """features.json's description of each (layer, feature); empty without an atlas."""
    summary: dict[str, Any]
    components: dict[str, Any]


def _read_json(path: Path, *, required: bool) -> Any:
    if not path.exists() and not required:
        return None
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ViewError(
            f"{path.parent} has no {path.name}: give a run directory written by `circuits run`"
        ) from err
    except (OSError, ValueError) as err:
        raise ViewError(f"cannot read {path}: {err}") from err


def load_run(run_dir: Path, *, summary: dict[str, Any] | None = None) -> RunView:
    """The files of the run directory `run_dir` (`summary` instead of its summary.json, which
    `write_run` writes later)."""
    from circuits.run.export import viewer_json

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ViewError(f"{run_dir} is not a directory: give a run directory of `circuits run`")
    try:
        circuit = Circuit.from_json(_read_json(run_dir / "circuit.json", required=True))
    except (TypeError, KeyError) as err:
        raise ViewError(f"{run_dir / 'circuit.json'} is not a circuit: {err}") from err
    graph = _read_json(run_dir / "graph.json", required=False)
    if graph is None:
        graph = viewer_json(
            circuit, slug=circuit.task, prompt_tokens=list(circuit.roles), node_threshold=1.0
        )
    node_ids = [n["node_id"] for n in graph.get("nodes", [])]
    if len(node_ids) != len(circuit.nodes):
        raise ViewError(
            f"{run_dir}: graph.json has {len(node_ids)} nodes, circuit.json {len(circuit.nodes)}; "
            "write both with one `circuits run`"
        )
    raw = _read_json(run_dir / "features.json", required=False) or {"features": []}
    features = {(int(f["layer"]), int(f["feature"])): f for f in raw.get("features", [])}
    if summary is None:
        summary = _read_json(run_dir / "summary.json", required=False)
    summary = summary or {}
    components = _read_json(run_dir / "components.json", required=False) or {}
    return RunView(
        path=run_dir,
        circuit=circuit,
        graph=graph,
        node_ids=node_ids,
        features=features,
        summary=summary,
        components=components,
    )


def circuit_influence(circuit: Circuit) -> tuple[list[float], list[float]]:
    """Each node's influence on the target through the circuit's own edges, and each edge's
    score as the pruning weighs it: `|w| / (the target's total |w|) * (the target's influence
    + its weight as a target)`. The circuit is acyclic, so the sums end."""
    n = len(circuit.nodes)
    totals = [0.0] * n
    for e in circuit.edges:
        totals[e.target] += abs(e.weight)
    normalized = [
        abs(e.weight) / totals[e.target] if totals[e.target] else 0.0 for e in circuit.edges
    ]
    targets = [i for i, node in enumerate(circuit.nodes) if node.kind == NodeKind.TARGET]
    start = [0.0] * n
    for i in targets:
        start[i] = 1.0 / len(targets)
    influence, frontier = [0.0] * n, start
    for _ in range(n + 1):
        new = [0.0] * n
        for e, w in zip(circuit.edges, normalized, strict=True):
            if frontier[e.target]:
                new[e.source] += frontier[e.target] * w
        if not any(new):
            break
        influence = [a + b for a, b in zip(influence, new, strict=True)]
        frontier = new
    else:
        raise ViewError("the circuit's edges form a cycle")
    scores = [
        w * (influence[e.target] + start[e.target])
        for e, w in zip(circuit.edges, normalized, strict=True)
    ]
    return influence, scores


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _columns(run: RunView) -> list[dict[str, Any]]:
    """One column per role: its name and the first prompt's token there, if it has one."""
    meta = run.graph.get("metadata", {})
    circuit = run.circuit
    tokens: dict[str, str] = {}
    roles, example = meta.get("example_roles"), meta.get("example_tokens")
    if isinstance(roles, list) and isinstance(example, list) and len(roles) == len(example):
        tokens = {str(r): str(t) for r, t in zip(roles, example, strict=True)}
    else:  # graph.json before example_roles: its prompt_tokens held tokens or role names
        labels = meta.get("prompt_tokens", [])
        if len(labels) == len(circuit.roles):
            tokens = {r: t for r, t in zip(circuit.roles, labels, strict=True) if t != r}
    return [{"name": role, "token": tokens.get(role)} for role in circuit.roles]


def _example(run: RunView) -> dict[str, Any]:
    meta = run.graph.get("metadata", {})
    roles = meta.get("example_roles")
    tokens = run.circuit.example_tokens
    if not isinstance(roles, list) or len(roles) != len(tokens):
        roles = [None] * len(tokens)
    return {"tokens": list(tokens), "roles": list(roles)}


def _figures(summary: dict[str, Any], circuit: Circuit) -> list[list[str]]:
    """The run's headline figures as (name, value) text."""

    def number(key: str, fmt: str = "{:.3f}") -> str | None:
        value = _finite(summary.get(key))
        return None if value is None else fmt.format(value)

    rows = [
        ("faithfulness", number("validation.faithfulness")),
        ("completeness (lower is better)", number("validation.completeness")),
        ("metric, clean", number("metric_clean")),
        ("metric, corrupted", number("metric_corrupt")),
        ("gap, clean - corrupted", number("gap")),
        ("gap, transcoders spliced", f"{circuit.gap:.3f}" if math.isfinite(circuit.gap) else None),
        ("replacement score", number("replacement_score")),
        ("prompts", number("n_prompts", "{:.0f}")),
        ("active features per prompt", number("mean_active_features", "{:.0f}")),
    ]
    return [[name, value] for name, value in rows if value is not None]


def _feature(description: dict[str, Any]) -> dict[str, Any]:
    return {
        "label": description.get("label", ""),
        "frequency": _finite(description.get("frequency")),
        "max_activation": _finite(description.get("max_activation")),
        "top_contexts": description.get("top_contexts", [])[:MAX_CONTEXTS],
        "promoted": description.get("promoted", [])[:MAX_TOKENS],
        "suppressed": description.get("suppressed", [])[:MAX_TOKENS],
        "input_tokens": description.get("input_tokens", [])[:MAX_TOKENS],
    }


def _attention(run: RunView) -> dict[str, Any]:
    """The report's attention sections: heads by the edge weight they carry, QK paths, moved
    patterns (all of them, strongest first), and each component's score (components.json)."""
    from circuits.run.report import top_heads

    circuit = run.circuit
    gap = circuit.gap or 1.0
    qk = []
    for name, share in sorted(circuit.qk_paths.items(), key=lambda kv: -abs(kv[1])):
        sender, _, head = name.partition("->")
        qk.append([sender, head, share])
    moved = [
        [head, value, value / gap]
        for head, value in sorted(circuit.moved_patterns.items(), key=lambda kv: -abs(kv[1]))
    ]
    scores = run.components.get("scores", {})
    return {
        "heads": [[h, w] for h, w in top_heads(circuit, n=len(circuit.edges) or 1)],
        "qk_paths": qk,
        "moved_patterns": moved,
        "components": sorted(
            ([k, v] for k, v in scores.items() if _finite(v) is not None), key=lambda kv: -kv[1]
        ),
    }


def page_data(run: RunView) -> dict[str, Any]:
    """The object the page embeds (see the module docstring for the thresholds)."""
    circuit = run.circuit
    influence, scores = circuit_influence(circuit)
    col = {role: k for k, role in enumerate(circuit.roles)}
    nodes = []
    for i, node in enumerate(circuit.nodes):
        nodes.append(
            {
                "id": run.node_ids[i],
                "kind": node.kind,
                "layer": node.layer,
                "col": col[node.role],
                "feature": node.feature,
                "label": node.label,
                "activation": _finite(node.activation),
                "influence": _finite(node.influence) or 0.0,
                "graph_influence": influence[i],
                "effect": _finite(node.effect),
                "change": _finite(node.change),
            }
        )
    order = sorted(
        range(len(circuit.edges)), key=lambda k: (-scores[k], -abs(circuit.edges[k].weight))
    )
    edges = {"source": [], "target": [], "weight": [], "effect": [], "score": [], "heads": []}
    for k in order:
        e = circuit.edges[k]
        edges["source"].append(e.source)
        edges["target"].append(e.target)
        edges["weight"].append(_finite(e.weight) or 0.0)
        edges["effect"].append(_finite(e.effect))
        edges["score"].append(scores[k])
        edges["heads"].append(
            [[name, share, _finite(e.head_effects.get(name))] for name, share in e.heads]
        )
    features = {
        f"{layer}_{feature}": _feature(d) for (layer, feature), d in sorted(run.features.items())
    }
    q_params = run.graph.get("qParams", {})
    try:
        saved = groups_from_supernodes(q_params.get("supernodes", []), run.node_ids)
    except ValueError as err:
        log.warning("%s: graph.json's supernodes are ignored: %s", run.path, err)
        saved = []
    config = run.summary.get("config", {})
    return {
        "schema_version": PAGE_SCHEMA_VERSION,
        "key": hashlib.sha1("\n".join(run.node_ids).encode()).hexdigest()[:16],
        "slug": run.graph.get("metadata", {}).get("slug", circuit.task),
        "task": circuit.task,
        "model": circuit.model,
        "metric": circuit.metric,
        "n_layers": circuit.n_layers,
        "n_prompts": circuit.n_prompts,
        "gap": _finite(circuit.gap),
        "run_thresholds": {
            "node": _finite(config.get("node_threshold")),
            "edge": _finite(config.get("edge_threshold")),
        },
        "thresholds": {"node": DEFAULT_NODE_THRESHOLD, "edge": DEFAULT_EDGE_THRESHOLD},
        "figures": _figures(run.summary, circuit),
        "columns": _columns(run),
        "example": _example(run),
        "nodes": nodes,
        "edges": edges,
        "features": features,
        "attention": _attention(run),
        "auto_groups": {
            "position": [[g.label, g.members] for g in group_by_position(circuit)],
            "description": [[g.label, g.members] for g in group_by_description(circuit)],
        },
        "supernodes": [[g.label, g.members] for g in saved],
    }
