"""The steps of `circuits run`: prompts -> graphs -> merged circuit -> validation -> files."""

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from circuits.attribution.attribute import AttributionConfig, attribute
from circuits.attribution.graph import Graph
from circuits.attribution.heads import resolve_heads
from circuits.attribution.recursive import RecursiveConfig, attribute_recursive
from circuits.attribution.replacement import ReplacementModel
from circuits.components.qk_paths import qk_path_scores
from circuits.run.aggregate import (
    MergedGraph,
    corruption_changes,
    merge_graphs,
    node_keys,
    role_names,
)
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.config import RunConfig
from circuits.run.select import (
    Ranking,
    chosen_nodes,
    circuit_edges,
    feature_cap,
    rank_nodes,
    resample_scores,
    select_nodes,
)
from circuits.run.validate import (
    NodeRecord,
    circuit_keep,
    faithfulness,
    full_keep,
    mean_metric,
    record_nodes,
)
from transcoders.splice import spliced_logits

log = logging.getLogger(__name__)


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
    changes: dict[int, float],
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
                change=changes[i],
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
                if abs(value) >= config.head_share:
                    named.append((f"L{layer}H{head}", round(value, 3)))
            named.sort(key=lambda h: -abs(h[1]))
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


def record_and_merge(
    model: ReplacementModel,
    prompt_set: Any,
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


def node_changes(
    merged: MergedGraph,
    circuit_mask: torch.Tensor,
    names: list[list[str]],
    prompt_set: Any,
    records: list[tuple[NodeRecord, NodeRecord]],
) -> dict[int, float]:
    """Merged node index -> how much the corruption changes it, for the circuit's nodes."""
    kept = circuit_mask.nonzero().squeeze(1).tolist()
    changes = corruption_changes(
        [merged.keys[i] for i in kept],
        names,
        [(p.tokens, p.corrupt_tokens) for p in prompt_set.prompts],
        records,
    )
    return dict(zip(kept, changes, strict=True))


def spliced_metric(model: ReplacementModel, prompt_set: Any) -> float:
    """The task metric with every MLP replaced by its transcoder, averaged over the prompts."""
    values = []
    for p in prompt_set.prompts:
        tokens = torch.tensor(p.tokens)[None]
        logits = spliced_logits(model.bridge, model.transcoders, tokens)[0]
        values.append(float(prompt_set.metric_value(logits[p.position], p)))
    return sum(values) / len(values)


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
    records, merged = record_and_merge(model, prompt_set, graphs, names, config)
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
        node_changes(merged, circuit_mask, names, prompt_set, records),
    )
    circuit = replace(circuit, qk_paths=qk_path_scores(model.bridge, prompt_set))
    validation, curve = validate(
        model, prompt_set, records, merged, ranking, circuit_mask, names, config
    )
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
        "metric_spliced": spliced_metric(model, prompt_set),
        **{f"validation.{k}": v for k, v in validation.items()},
        "seconds": time.perf_counter() - start,
    }
    return RunResult(circuit=circuit, summary=summary, graphs=graphs, curve=curve)
