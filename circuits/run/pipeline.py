"""The steps of `circuits run`: prompts -> graphs -> merged circuit -> validation -> files."""

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from tqdm import tqdm

from circuits.attribution.attribute import AttributionConfig, attribute
from circuits.attribution.graph import Graph
from circuits.attribution.heads import moved_patterns, resolve_heads
from circuits.attribution.influence import total_effects
from circuits.attribution.nodes import NodeKind
from circuits.attribution.recursive import RecursiveConfig, attribute_recursive
from circuits.attribution.replacement import ReplacementModel
from circuits.causal.qk_paths import qk_path_scores
from circuits.errors import GapError
from circuits.run.aggregate import (
    MergedGraph,
    corruption_changes,
    merge_graphs,
    node_change,
    node_keys,
    role_names,
)
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.config import RunConfig
from circuits.run.select import (
    chosen_nodes,
    circuit_edges,
    feature_cap,
    rank_nodes,
    resample_scores,
    select_nodes,
)
from circuits.run.state import Measured, Selection
from circuits.run.validate import (
    NodeRecord,
    circuit_keep,
    faithfulness,
    full_keep,
    mean_metric,
    record_nodes,
)
from circuits.tasks import PromptSet, TaskPrompt, TaskSpec
from transcoders.splice import spliced_logits

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """A finished task run; `circuits.run_directory.write_run` writes it as a run directory."""

    circuit: Circuit
    summary: dict[str, Any]
    """Figures for report.md and summary.json (metrics, gap, validation, sizes, seconds)."""
    graphs: list[Graph]
    """Each prompt's attribution graph."""
    curve: list[tuple[int, float]]
    """Faithfulness against the number of feature and error nodes kept."""
    config: RunConfig
    example: TaskPrompt
    """The first prompt, whose tokens label the drawing."""
    n_heads: int


def compute_graphs(
    model: ReplacementModel, prompt_set: PromptSet, config: RunConfig
) -> list[Graph]:
    graphs = []
    for prompt in tqdm(prompt_set.prompts, desc=f"attribution ({config.engine})", unit="prompt"):
        tokens = torch.tensor(prompt.tokens)
        trace = model.trace(tokens)
        target = prompt_set.target(trace.logits, prompt)
        if config.engine == "full":
            graph = attribute(
                model, tokens, [target], AttributionConfig(progress=False), prompt=prompt.text
            )
        else:
            graph = attribute_recursive(
                model, tokens, [target], RecursiveConfig(heads=False), prompt=prompt.text
            )
        graphs.append(graph)
    return graphs


def validate(run: Measured, sel: Selection) -> tuple[dict[str, Any], list[tuple[int, float]]]:
    """The circuit checked on the real model (faithfulness, completeness) and faithfulness
    against the number of nodes kept."""
    model, prompt_set, records, names, config = (
        run.model, run.prompt_set, run.records, run.names, run.config
    )  # fmt: skip
    merged, ranking, circuit_mask = sel.merged, sel.ranking, sel.circuit_mask
    bridge, tset = model.bridge, model.transcoders
    prompts = [
        (
            torch.tensor(prompt.tokens),
            corrupt,
            lambda logits, p=prompt: prompt_set.metric_value(logits[p.position], p),
        )
        for prompt, (_, corrupt) in zip(prompt_set.prompts, records, strict=True)
    ]
    active = [clean.active() for clean, _ in records]

    def metric_keeping(chosen: set, *, inside: bool = True) -> float:
        keeps = [
            circuit_keep(a, chosen_nodes(chosen, n, model), inside=inside)
            for a, n in zip(active, names, strict=True)
        ]
        return mean_metric(bridge, tset, prompts, keeps)

    full = mean_metric(
        bridge, tset, prompts, [full_keep(tset, len(p.tokens)) for p in prompt_set.prompts]
    )
    nothing = metric_keeping(set())
    chosen = {merged.keys[i] for i in circuit_mask.nonzero().squeeze(1).tolist()}
    circuit = metric_keeping(chosen)
    without = metric_keeping(chosen, inside=False)
    # faithfulness against size: features and errors by score
    ranked = ranking.order
    n_circuit = int(circuit_mask[ranked].sum())
    top = torch.log10(torch.tensor(float(max(len(ranked), 1))))
    grid = torch.logspace(0, float(top), config.curve_points).round().long().tolist()
    curve = []
    for size in tqdm(
        sorted({0, n_circuit, *grid}), desc="faithfulness curve", unit="size", leave=False
    ):
        value = metric_keeping({merged.keys[i] for i in ranked[:size]})
        curve.append((size, faithfulness(full, nothing, value)))
    return {
        "model": full,
        "nothing": nothing,
        "circuit": circuit,
        "without_circuit": without,
        "faithfulness": faithfulness(full, nothing, circuit),
        "completeness": faithfulness(full, nothing, without),
        "ablation": "resample: each node (feature active on the clean prompt, or error term) "
        "outside the kept set takes its value on the prompt's paired corrupted prompt; "
        "everything downstream is recomputed on the real model",
    }, curve


@dataclass
class CircuitEdgeParts:
    """Per kept merged edge, means over the prompts (an edge absent from a prompt counts 0)."""

    heads: dict[int, torch.Tensor]
    """The part of its weight carried through each head [n_layers, n_heads]."""
    effects: dict[int, float]
    """Its effect on the metric when the corruption changes its source, attention frozen:
    weight x the source's relative change x the target's effect per unit of pre-activation."""
    head_effects: dict[int, torch.Tensor]
    """The part of that effect carried through each head [n_layers, n_heads] (per prompt, not
    the mean share times the mean effect: parts that cancel over prompts would blow that up)."""


def resolve_circuit_edges(run: Measured, sel: Selection) -> "CircuitEdgeParts":
    """Each kept merged edge's weight and effect on the metric, split by the heads that carry it
    (means over the prompts; see `CircuitEdgeParts`)."""
    model, graphs, names, prompt_set, records = (
        run.model, run.graphs, run.names, run.prompt_set, run.records
    )  # fmt: skip
    merged, edge_mask = sel.merged, sel.edge_mask
    kept = edge_mask.nonzero().squeeze(1)
    key_id = {k: i for i, k in enumerate(merged.keys)}
    pair_to_edge = {(int(merged.rows[e]), int(merged.cols[e])): int(e) for e in kept.tolist()}
    parts = CircuitEdgeParts({}, {}, {})
    prompts = list(zip(graphs, names, prompt_set.prompts, records, strict=True))
    for graph, prompt_names, prompt, record in tqdm(
        prompts, desc="attention heads", unit="prompt", leave=False
    ):
        keys = node_keys(graph, prompt_names)
        ids = torch.tensor([key_id.get(k, -1) for k in keys])
        rows, cols = ids[graph.edge_rows].tolist(), ids[graph.edge_cols].tolist()
        local, merged_of = [], []
        for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
            edge = pair_to_edge.get((r, c))
            if edge is not None:
                local.append(i)
                merged_of.append(edge)
        if not local:
            continue
        shares = resolve_heads(model, graph, torch.tensor(local))
        _, per_unit = total_effects(graph)
        at = {name: pos for pos, name in enumerate(prompt_names)}
        tokens = (prompt.tokens, prompt.corrupt_tokens)
        n = len(graphs)
        for i, edge, share in zip(local, merged_of, shares, strict=True):
            source = keys[int(graph.edge_cols[i])]
            change = node_change(source, at[source[3]], tokens, record) or 0.0
            # the metric's move per unit of the edge's weight when its source changes
            scale = change * float(per_unit[graph.edge_rows[i]])
            parts.heads[edge] = parts.heads.get(edge, 0) + share / n
            parts.head_effects[edge] = parts.head_effects.get(edge, 0) + share * scale / n
            effect = float(graph.edge_weights[i]) * scale / n
            parts.effects[edge] = parts.effects.get(edge, 0.0) + effect
    return parts


def build_circuit(
    run: Measured,
    sel: Selection,
    parts: CircuitEdgeParts,
    *,
    spec: TaskSpec,
    model_spec: str,
    labels: dict[tuple[int, int], str],
) -> Circuit:
    """The circuit's nodes (labelled by `labels`, (layer, feature) -> text) and edges."""
    model, config = run.model, run.config
    merged, ranking, circuit_mask, edge_mask = (
        sel.merged, sel.ranking, sel.circuit_mask, sel.edge_mask
    )  # fmt: skip
    roles, metric_name, n_prompts = ordered_roles(run.names), spec.metric, len(run.graphs)
    changes = node_changes(run, sel)
    tokenizer = model.bridge.tokenizer
    example = [tokenizer.decode([t]) for t in run.prompt_set.prompts[0].tokens]
    kept = circuit_mask.nonzero().squeeze(1).tolist()
    position = {old: new for new, old in enumerate(kept)}
    total = float(ranking.weight[kept].sum()) or 1.0
    nodes = []
    for i in kept:
        kind, layer, feature, role = merged.keys[i]
        if kind == NodeKind.FEATURE:
            assert feature is not None
            label = labels.get((layer, feature), f"L{layer} #{feature}")
        elif kind == NodeKind.TOKEN:
            label = role
        elif kind == NodeKind.ERROR:
            label = f"error L{layer}"
        else:
            label = metric_name
        nodes.append(
            CircuitNode(
                kind=kind,
                layer=layer,
                role=role,
                feature=feature,
                label=label,
                activation=float(merged.activations[i]),
                influence=float(ranking.weight[i]) / total,
                effect=float(ranking.effect[i]),
                change=changes[i],
            )
        )
    edges = [
        _circuit_edge(merged, e, position, parts, config.head_share)
        for e in edge_mask.nonzero().squeeze(1).tolist()
        if int(merged.rows[e]) in position and int(merged.cols[e]) in position
    ]
    used = {node.role for node in nodes}
    return Circuit(
        task=spec.name,
        model=model_spec,
        metric=metric_name,
        n_layers=model.n_layers,
        roles=[role for role in roles if role in used],
        nodes=nodes,
        edges=edges,
        n_prompts=n_prompts,
        example_tokens=example,
    )


def _circuit_edge(
    merged: MergedGraph,
    e: int,
    position: dict[int, int],
    parts: CircuitEdgeParts,
    head_share: float,
) -> CircuitEdge:
    """Merged edge `e` between circuit nodes (`position`: merged index -> circuit index), with
    the heads carrying at least `head_share` of its weight either way and their effects."""
    weight = float(merged.weights[e])
    named, head_effects = [], {}
    if e in parts.heads and abs(weight) > 0:
        share = parts.heads[e] / weight  # [n_layers, n_heads]
        for (layer, head), value in zip(
            share.nonzero().tolist(), share[share != 0].tolist(), strict=True
        ):
            if abs(value) >= head_share:
                named.append((f"L{layer}H{head}", round(value, 3)))
                head_effects[f"L{layer}H{head}"] = float(parts.head_effects[e][layer, head])
        named.sort(key=lambda h: -abs(h[1]))
    return CircuitEdge(
        source=position[int(merged.cols[e])],
        target=position[int(merged.rows[e])],
        weight=weight,
        heads=named,
        effect=parts.effects.get(e, 0.0),
        head_effects=head_effects,
    )


def feature_names(
    merged: MergedGraph,
    circuit_mask: torch.Tensor,
    labels: Callable[[list[tuple[int, int]]], dict[tuple[int, int], str]] | None,
) -> dict[tuple[int, int], str]:
    if labels is None:
        return {}
    keys = [merged.keys[i] for i in circuit_mask.nonzero().squeeze(1).tolist()]
    features = sorted({(k[1], k[2]) for k in keys if k[0] == NodeKind.FEATURE and k[2] is not None})
    return labels(features)


def ordered_roles(names: list[list[str]]) -> list[str]:
    """Every role name in the order they appear, earliest average position first."""
    seen: dict[str, list[int]] = {}
    for prompt_names in names:
        for pos, name in enumerate(prompt_names):
            seen.setdefault(name, []).append(pos)
    return sorted(seen, key=lambda n: sum(seen[n]) / len(seen[n]))


def record_and_merge(
    model: ReplacementModel,
    prompt_set: PromptSet,
    graphs: list[Graph],
    names: list[list[str]],
    config: RunConfig,
) -> tuple[list[tuple[NodeRecord, NodeRecord]], MergedGraph]:
    """Every prompt's nodes on its clean and corrupted prompt, and the prompts' graphs merged
    with their nodes scored by resampling."""
    records = [
        (
            record_nodes(model.bridge, model.transcoders, torch.tensor(p.tokens)),
            record_nodes(model.bridge, model.transcoders, torch.tensor(p.corrupt_tokens)),
        )
        for p in prompt_set.prompts
    ]
    scores = [
        resample_scores(model, g, g.targets, clean, corrupt)
        for g, (clean, corrupt) in zip(graphs, records, strict=True)
    ]
    merged = merge_graphs(
        graphs,
        names,
        scores,
        node_threshold=config.node_threshold,
        edge_threshold=config.edge_threshold,
    )
    return records, merged


def node_changes(run: Measured, sel: Selection) -> dict[int, float]:
    """Merged node index -> how much the corruption changes it, for the circuit's nodes."""
    kept = sel.circuit_mask.nonzero().squeeze(1).tolist()
    changes = corruption_changes(
        [sel.merged.keys[i] for i in kept],
        run.names,
        [(p.tokens, p.corrupt_tokens) for p in run.prompt_set.prompts],
        run.records,
    )
    return dict(zip(kept, changes, strict=True))


def head_moved_patterns(
    model: ReplacementModel, graphs: list[Graph], prompt_set: PromptSet
) -> dict[str, float]:
    """Head name -> mean effect on the metric of its own attention taking the corrupted prompt's
    pattern (`moved_patterns`), over the prompts."""
    total = torch.zeros(model.n_layers, model.bridge.cfg.n_heads, dtype=torch.float64)
    for graph, prompt in tqdm(
        list(zip(graphs, prompt_set.prompts, strict=True)),
        desc="moved patterns",
        unit="prompt",
        leave=False,
    ):
        total += moved_patterns(model, graph, torch.tensor(prompt.corrupt_tokens))
    mean = total / len(graphs)
    return {
        f"L{layer}H{head}": float(mean[layer, head])
        for layer in range(mean.shape[0])
        for head in range(mean.shape[1])
    }


@torch.no_grad()
def model_metrics(bridge: Any, prompt_set: PromptSet) -> tuple[float, float]:
    """The task metric on the real model, averaged over the clean and over the corrupted
    prompts."""
    clean, corrupt = [], []
    for p in prompt_set.prompts:
        for tokens, values in ((p.tokens, clean), (p.corrupt_tokens, corrupt)):
            logits = bridge(torch.tensor(tokens)[None])[0]
            values.append(float(prompt_set.metric_value(logits[p.position], p)))
    return sum(clean) / len(clean), sum(corrupt) / len(corrupt)


def check_gap(clean: float, corrupt: float, min_gap: float, task: str) -> None:
    """Refuse a task whose clean and corrupted prompts give (nearly) the same metric: every
    faithfulness would divide by noise."""
    gap = clean - corrupt
    if not abs(gap) >= min_gap:  # also catches nan
        raise GapError(
            f"task {task!r}: the metric is {clean:.4f} on the clean prompts and {corrupt:.4f} on "
            f"the corrupted ones, a gap of {gap:.4f}, under the {min_gap:g} a run needs to "
            "measure against; make the corrupted prompts change the answer (or lower --min-gap)"
        )


def spliced_metric(
    model: ReplacementModel, prompt_set: PromptSet, *, corrupt: bool = False
) -> float:
    """The task metric with every MLP replaced by its transcoder, averaged over the prompts (or
    over their corrupted prompts)."""
    values = []
    for p in prompt_set.prompts:
        tokens = torch.tensor(p.corrupt_tokens if corrupt else p.tokens)[None]
        logits = spliced_logits(model.bridge, model.transcoders, tokens)[0]
        values.append(float(prompt_set.metric_value(logits[p.position], p)))
    return sum(values) / len(values)


def run_task(
    spec: TaskSpec,
    prompt_set: PromptSet,
    model: ReplacementModel,
    *,
    model_spec: str,
    config: RunConfig,
    labels: Callable[[list[tuple[int, int]]], dict[tuple[int, int], str]] | None = None,
) -> RunResult:
    """Attribute every prompt, merge, prune, resolve heads and validate. `labels` names the
    circuit's features (layer, index) for drawings and reports."""
    start = time.perf_counter()
    clean, corrupt = model_metrics(model.bridge, prompt_set)
    check_gap(clean, corrupt, config.min_gap, spec.name)
    graphs = compute_graphs(model, prompt_set, config)
    names = [role_names(p.roles, len(p.tokens)) for p in prompt_set.prompts]
    records, merged = record_and_merge(model, prompt_set, graphs, names, config)
    cap = feature_cap(graphs, config)
    ranking = rank_nodes(model, prompt_set, records, merged, names, cap, config)
    circuit_mask = select_nodes(merged, ranking, cap, config)
    edge_mask = circuit_edges(merged, circuit_mask, config)
    # tokens without a drawn edge are left out
    used = torch.zeros_like(circuit_mask)
    used[merged.rows[edge_mask]] = True
    used[merged.cols[edge_mask]] = True
    circuit_mask &= used | torch.tensor([k[0] != NodeKind.TOKEN for k in merged.keys])
    run = Measured(
        model=model,
        prompt_set=prompt_set,
        config=config,
        graphs=graphs,
        names=names,
        records=records,
    )
    sel = Selection(merged=merged, ranking=ranking, circuit_mask=circuit_mask, edge_mask=edge_mask)
    parts = resolve_circuit_edges(run, sel)
    labelled = feature_names(merged, circuit_mask, labels)
    circuit = build_circuit(run, sel, parts, spec=spec, model_spec=model_spec, labels=labelled)
    circuit = replace(
        circuit,
        qk_paths=qk_path_scores(model.bridge, prompt_set),
        moved_patterns=head_moved_patterns(model, graphs, prompt_set),
    )
    validation, curve = validate(run, sel)
    clean_metric = spliced_metric(model, prompt_set)
    circuit = replace(circuit, gap=clean_metric - spliced_metric(model, prompt_set, corrupt=True))
    mean_active = sum(g.index.n_features for g in graphs) / len(graphs)
    summary = {
        "task": spec.name,
        "model": model_spec,
        "metric": spec.metric,
        "engine": config.engine,
        "n_prompts": len(graphs),
        "config": asdict(config),
        "mean_active_features": mean_active,
        "circuit_features": circuit.n_features,
        "circuit_feature_share": circuit.n_features / mean_active if mean_active else 0.0,
        "circuit_nodes": len(circuit.nodes),
        "circuit_edges": len(circuit.edges),
        "replacement_score": merged.pruning.replacement_score,
        "completeness_score": merged.pruning.completeness_score,
        "metric_clean": clean,
        "metric_corrupt": corrupt,
        "gap": clean - corrupt,
        "metric_spliced": clean_metric,
        **{f"validation.{k}": v for k, v in validation.items()},
        "seconds": time.perf_counter() - start,
    }
    return RunResult(
        circuit=circuit,
        summary=summary,
        graphs=graphs,
        curve=curve,
        config=config,
        example=prompt_set.prompts[0],
        n_heads=model.bridge.cfg.n_heads,
    )
