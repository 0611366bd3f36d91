"""The steps of `circuits run`: prompts -> graphs -> merged circuit -> validation -> files."""

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from circuits.attribution.attribute import AttributionConfig, attribute, site_gradients
from circuits.attribution.graph import Graph
from circuits.attribution.heads import resolve_heads
from circuits.attribution.influence import prune_edges, total_effects
from circuits.attribution.recursive import RecursiveConfig, attribute_recursive
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import Target
from circuits.run.aggregate import MergedGraph, merge_graphs, node_keys, role_names
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.validate import (
    Keep,
    NodeRecord,
    circuit_keep,
    faithfulness,
    full_keep,
    mean_metric,
    metrics_with,
    record_nodes,
)
from transcoders.splice import spliced_logits

log = logging.getLogger(__name__)
ENGINES = ("full", "recursive")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How a task is run."""

    engine: str = "full"
    """`full` (every edge of every prompt) or `recursive` (expanded from the metric)."""
    count: int | None = None
    """Prompts (default: the task file's count)."""
    node_threshold: float = 0.99
    """Features and errors are added by score until they hold this share of the total score
    (or the feature cap below is reached, which usually comes first)."""
    edge_threshold: float = 0.98
    """Share of the influence-weighted edge mass kept among kept nodes."""
    max_feature_share: float = 0.05
    """At most this share of the mean number of active features per prompt becomes circuit
    features (the strongest by influence)."""
    head_share: float = 0.1
    """Heads carrying at least this share of an edge are named on it."""
    refine: int = 2
    """Re-rank the strongest `refine` x (feature cap) nodes by resampling each alone on the real
    model (0: first-order scores only)."""
    curve_points: int = 12

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        for name in ("node_threshold", "edge_threshold", "max_feature_share", "head_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")


@dataclass
class RunResult:
    circuit: Circuit
    summary: dict[str, Any]
    graphs: list[Graph]
    curve: list[tuple[int, float]]


def compute_graphs(model: ReplacementModel, prompt_set: Any, config: RunConfig) -> list[Graph]:
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


def resample_scores(
    model: ReplacementModel,
    graph: Graph,
    targets: list[Target],
    clean: NodeRecord,
    corrupt: NodeRecord,
) -> torch.Tensor:
    """How much resampling each node from the corrupted prompt would move the metric, to first
    order in the linear model (downstream features respond linearly): a feature's effect per
    unit of activation times its change; an error node's metric gradient at its site dotted
    with its change. Tokens and targets score 0 (they are never ablated)."""
    index = graph.index
    total, per_unit = total_effects(graph)
    score = torch.zeros(index.n_nodes, dtype=torch.float64)
    clean_act = graph.activations.double()
    layer, pos, feature = index.features.T
    corrupt_act = torch.zeros_like(clean_act)
    for i in range(index.n_layers):
        mine = layer == i
        corrupt_act[mine] = corrupt.features[i][pos[mine], feature[mine]].double()
    features = slice(index.feature_start, index.target_start)
    score[features] = total[features] / clean_act * (clean_act - corrupt_act)
    trace = model.trace(index.tokens)
    grads = site_gradients(model, trace, targets, per_unit[index.feature_start :])
    for i in range(index.n_layers):
        change = (clean.errors[i] - corrupt.errors[i]).to(grads[i].dtype)
        nodes = slice(index.error(i, 0), index.error(i, 0) + index.n_pos)
        score[nodes] = (grads[i] * change).sum(-1).double()
    return score


@dataclass(frozen=True)
class Ranking:
    """The order in which feature and error nodes join a circuit, and their weights (effects on
    the metric, in metric units)."""

    order: list[int]
    """Merged node indices, strongest first."""
    weight: torch.Tensor
    """|effect| of each merged node (0 for tokens and the target)."""


def feature_cap(graphs: list[Graph], config: RunConfig) -> int:
    mean_active = sum(g.index.n_features for g in graphs) / len(graphs)
    return max(1, int(config.max_feature_share * mean_active))


def rank_nodes(
    model: ReplacementModel,
    prompt_set: Any,
    records: list[tuple[NodeRecord, NodeRecord]],
    merged: MergedGraph,
    names: list[list[str]],
    cap: int,
    config: RunConfig,
) -> Ranking:
    """Feature and error nodes by first-order score; the strongest `refine * cap` of them then
    re-ranked, ahead of the rest, by the effect on the metric of resampling each one alone on
    the real model (one batched forward pass per prompt)."""
    weight = merged.scores.abs().clone()
    kinds = [k[0] for k in merged.keys]
    middle = [i for i, k in enumerate(kinds) if k in ("feature", "error")]
    order = sorted(middle, key=lambda i: -float(weight[i]))
    candidates = order[: config.refine * cap]
    if not candidates:
        return Ranking(order, weight)
    effects = single_node_effects(model, prompt_set, records, merged, candidates, names)
    weight[candidates] = effects.abs()
    refined = sorted(candidates, key=lambda i: -float(weight[i]))
    return Ranking(refined + order[len(candidates) :], weight)


def single_node_effects(
    model: ReplacementModel,
    prompt_set: Any,
    records: list[tuple[NodeRecord, NodeRecord]],
    merged: MergedGraph,
    candidates: list[int],
    names: list[list[str]],
) -> torch.Tensor:
    """Mean over prompts of m(model) - m(model with one candidate resampled), per candidate."""
    tset = model.transcoders
    effects = torch.zeros(len(candidates), dtype=torch.float64)
    prompts = list(zip(prompt_set.prompts, records, names, strict=True))
    for prompt, (_, corrupt), prompt_names in tqdm(
        prompts, desc="node effects", unit="prompt", leave=False
    ):
        full = full_keep(tset, len(prompt_names))
        keeps = []
        for i in candidates:
            node = chosen_nodes({merged.keys[i]}, prompt_names, model)
            keeps.append(
                Keep(
                    [f & ~n for f, n in zip(full.features, node.features, strict=True)],
                    [e & ~n for e, n in zip(full.errors, node.errors, strict=True)],
                )
            )
        keeps.append(full)
        values = metrics_with(
            model.bridge,
            tset,
            torch.tensor(prompt.tokens),
            Keep.stack(keeps),
            corrupt,
            lambda logits, p=prompt: prompt_set.metric_value(logits[p.position], p),
        )
        effects += (values[-1] - values[:-1]).double() / len(prompts)
    return effects


def select_nodes(
    merged: MergedGraph, ranking: Ranking, cap: int, config: RunConfig
) -> torch.Tensor:
    """Mask of merged nodes in the circuit: feature and error nodes in ranking order until they
    hold `node_threshold` of the total weight, with at most `cap` features (error nodes are not
    capped: they stand for what the transcoders miss); tokens and the target are always in."""
    kinds = [k[0] for k in merged.keys]
    keep = torch.tensor([k in ("token", "target") for k in kinds])
    total = float(ranking.weight[ranking.order].sum())
    held, n_features = 0.0, 0
    for i in ranking.order:
        if held >= config.node_threshold * total:
            break
        if kinds[i] == "feature":
            if n_features >= cap:
                continue
            n_features += 1
        keep[i] = True
        held += float(ranking.weight[i])
    return keep


def circuit_edges(merged: MergedGraph, keep: torch.Tensor, config: RunConfig) -> torch.Tensor:
    """Mask of merged edges drawn in the circuit: among edges between kept nodes, those
    holding `edge_threshold` of the influence-weighted edge mass."""
    between = keep[merged.rows] & keep[merged.cols]
    subset = between.nonzero().squeeze(1)
    kinds = [k[0] for k in merged.keys]
    target = torch.tensor([k == "target" for k in kinds], dtype=torch.float64)
    pruning = prune_edges(
        merged.rows[subset],
        merged.cols[subset],
        merged.weights[subset],
        is_token=torch.tensor([k == "token" for k in kinds]),
        is_error=torch.tensor([k == "error" for k in kinds]),
        target_weights=target / target.sum(),
        node_threshold=1.0,
        edge_threshold=config.edge_threshold,
    )
    mask = torch.zeros_like(between)
    mask[subset[pruning.edge_mask]] = True
    return mask


def chosen_nodes(chosen: set, names: list[str], model: ReplacementModel) -> Keep:
    """One prompt's masks of the chosen merged keys."""
    n_pos, d = len(names), model.transcoders[0].config.d_transcoder
    features = [torch.zeros(n_pos, d, dtype=torch.bool) for _ in range(model.n_layers)]
    errors = [torch.zeros(n_pos, dtype=torch.bool) for _ in range(model.n_layers)]
    for kind, layer, feature, role in chosen:
        for pos, name in enumerate(names):
            if name == role and kind == "feature":
                features[layer][pos, feature] = True
            elif name == role and kind == "error":
                errors[layer][pos] = True
    return Keep(features, errors)


def validate(
    model: ReplacementModel,
    prompt_set: Any,
    records: list[tuple[NodeRecord, NodeRecord]],
    merged: MergedGraph,
    ranking: Ranking,
    circuit_mask: torch.Tensor,
    names: list[list[str]],
    config: RunConfig,
) -> tuple[dict[str, Any], list[tuple[int, float]]]:
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


def merged_heads(
    model: ReplacementModel,
    graphs: list[Graph],
    names: list[list[str]],
    merged: MergedGraph,
    edge_mask: torch.Tensor,
) -> dict[int, torch.Tensor]:
    """For each kept merged edge, the mean part of its weight carried through each head
    [n_layers, n_heads], from the prompts' head-resolved edges."""
    kept = edge_mask.nonzero().squeeze(1)
    key_id = {k: i for i, k in enumerate(merged.keys)}
    pair_to_edge = {(int(merged.rows[e]), int(merged.cols[e])): int(e) for e in kept.tolist()}
    totals: dict[int, torch.Tensor] = {}
    for graph, prompt_names in tqdm(
        list(zip(graphs, names, strict=True)), desc="attention heads", unit="prompt", leave=False
    ):
        ids = torch.tensor([key_id.get(k, -1) for k in node_keys(graph, prompt_names)])
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
        for edge, share in zip(merged_of, shares, strict=True):
            totals[edge] = totals.get(edge, 0) + share / len(graphs)
    return totals


def build_circuit(
    spec: Any,
    model_spec: str,
    model: ReplacementModel,
    merged: MergedGraph,
    weight: torch.Tensor,
    circuit_mask: torch.Tensor,
    edge_mask: torch.Tensor,
    heads: dict[int, torch.Tensor],
    roles: list[str],
    example: list[str],
    labels: dict[tuple[int, int], str],
    metric_name: str,
    config: RunConfig,
    n_prompts: int,
) -> Circuit:
    kept = circuit_mask.nonzero().squeeze(1).tolist()
    position = {old: new for new, old in enumerate(kept)}
    total = float(weight[kept].sum()) or 1.0
    nodes = []
    for i in kept:
        kind, layer, feature, role = merged.keys[i]
        if kind == "feature":
            assert feature is not None
            label = labels.get((layer, feature), f"L{layer} #{feature}")
        elif kind == "token":
            label = role
        elif kind == "error":
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
                influence=float(weight[i]) / total,
            )
        )
    edges = []
    for e in edge_mask.nonzero().squeeze(1).tolist():
        r, c = int(merged.rows[e]), int(merged.cols[e])
        if r not in position or c not in position:
            continue
        edge_weight = float(merged.weights[e])
        named = []
        if e in heads and abs(edge_weight) > 0:
            share = heads[e] / edge_weight  # [n_layers, n_heads]
            for (layer, head), value in zip(
                share.nonzero().tolist(), share[share != 0].tolist(), strict=True
            ):
                if value >= config.head_share:
                    named.append((f"L{layer}H{head}", round(value, 3)))
            named.sort(key=lambda h: -h[1])
        edges.append(
            CircuitEdge(source=position[c], target=position[r], weight=edge_weight, heads=named)
        )
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


def feature_names(
    merged: MergedGraph,
    circuit_mask: torch.Tensor,
    labels: Callable[[list[tuple[int, int]]], dict[tuple[int, int], str]] | None,
) -> dict[tuple[int, int], str]:
    if labels is None:
        return {}
    keys = [merged.keys[i] for i in circuit_mask.nonzero().squeeze(1).tolist()]
    features = sorted({(k[1], k[2]) for k in keys if k[0] == "feature" and k[2] is not None})
    return labels(features)


def ordered_roles(names: list[list[str]]) -> list[str]:
    """Every role name in the order they appear, earliest average position first."""
    seen: dict[str, list[int]] = {}
    for prompt_names in names:
        for pos, name in enumerate(prompt_names):
            seen.setdefault(name, []).append(pos)
    return sorted(seen, key=lambda n: sum(seen[n]) / len(seen[n]))


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished `tmp` directory to `out`, replacing a previous run's output."""
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / "run")
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def run_task(
    spec: Any,
    prompt_set: Any,
    model: ReplacementModel,
    *,
    model_spec: str,
    config: RunConfig,
    labels: Callable[[list[tuple[int, int]]], dict[tuple[int, int], str]] | None = None,
) -> RunResult:
    """Attribute every prompt, merge, prune, resolve heads and validate. `labels` names the
    circuit's features (layer, index) for drawings and reports."""
    start = time.perf_counter()
    graphs = compute_graphs(model, prompt_set, config)
    names = [role_names(p.roles, len(p.tokens)) for p in prompt_set.prompts]
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
    cap = feature_cap(graphs, config)
    ranking = rank_nodes(model, prompt_set, records, merged, names, cap, config)
    circuit_mask = select_nodes(merged, ranking, cap, config)
    edge_mask = circuit_edges(merged, circuit_mask, config)
    # tokens without a drawn edge are left out
    used = torch.zeros_like(circuit_mask)
    used[merged.rows[edge_mask]] = True
    used[merged.cols[edge_mask]] = True
    circuit_mask &= used | torch.tensor([k[0] != "token" for k in merged.keys])
    heads = merged_heads(
        model,
        graphs,
        names,
        merged,
        edge_mask,
    )
    tokenizer = model.bridge.tokenizer
    example = [tokenizer.decode([t]) for t in prompt_set.prompts[0].tokens]
    circuit = build_circuit(
        spec,
        model_spec,
        model,
        merged,
        ranking.weight,
        circuit_mask,
        edge_mask,
        heads,
        ordered_roles(names),
        example,
        feature_names(merged, circuit_mask, labels),
        spec.metric,
        config,
        len(graphs),
    )
    validation, curve = validate(
        model, prompt_set, records, merged, ranking, circuit_mask, names, config
    )
    spliced = [
        float(
            prompt_set.metric_value(
                spliced_logits(model.bridge, model.transcoders, torch.tensor(p.tokens)[None])[0][
                    p.position
                ],
                p,
            )
        )
        for p in prompt_set.prompts
    ]
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
        "circuit_feature_share": circuit.n_features / mean_active,
        "circuit_nodes": len(circuit.nodes),
        "circuit_edges": len(circuit.edges),
        "replacement_score": merged.pruning.replacement_score,
        "completeness_score": merged.pruning.completeness_score,
        "metric_spliced": sum(spliced) / len(spliced),
        **{f"validation.{k}": v for k, v in validation.items()},
        "seconds": time.perf_counter() - start,
    }
    return RunResult(circuit=circuit, summary=summary, graphs=graphs, curve=curve)
