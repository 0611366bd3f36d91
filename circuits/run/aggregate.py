"""Merge the attribution graphs of a task's prompts into one circuit.

Each node of each prompt's graph gets a key that means the same thing in every prompt: its
kind, layer, feature and role position (`role_names`). Edge weights are averaged over the
prompts (an edge absent from a prompt counts as 0) and the merged graph is pruned by influence
on the task metric, like a single graph.
"""

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from circuits.attribution.graph import Graph
from circuits.attribution.influence import Pruning, prune_edges
from circuits.attribution.nodes import NodeKind


def role_names(roles: dict[str, int], n_pos: int) -> list[str]:
    """A name for every position: its role, else `<role to the left>+<offset>`, else `BOS` for
    position 0 and `pos<i>` before the first role."""
    by_pos = {pos: role for role, pos in roles.items()}
    names, last = [], None
    for pos in range(n_pos):
        if pos in by_pos:
            last = (by_pos[pos], pos)
            names.append(by_pos[pos])
        elif last is not None:
            names.append(f"{last[0]}+{pos - last[1]}")
        else:
            names.append("BOS" if pos == 0 else f"pos{pos}")
    return names


class Key(NamedTuple):
    """A node of a prompt's graph named by what it is across prompts: kind, layer, feature (None
    for tokens, errors and targets) and role name."""

    kind: NodeKind
    layer: int
    feature: int | None
    role: str


def node_keys(graph: Graph, names: list[str]) -> list[Key]:
    """The key of every node of `graph` (tokens have layer -1, targets n_layers and role END)."""
    index = graph.index
    keys = [Key(NodeKind.TOKEN, -1, None, names[p]) for p in range(index.n_pos)]
    keys += [
        Key(NodeKind.ERROR, layer, None, names[p])
        for layer in range(index.n_layers)
        for p in range(index.n_pos)
    ]
    keys += [Key(NodeKind.FEATURE, layer, f, names[p]) for layer, p, f in index.features.tolist()]
    keys += [Key(NodeKind.TARGET, index.n_layers, None, "END")] * index.n_targets
    return keys


@dataclass(frozen=True)
class MergedGraph:
    """The prompt-averaged graph: node keys, mean edge weights, mean activations, pruning."""

    keys: list[Key]
    rows: Tensor
    cols: Tensor
    weights: Tensor
    activations: Tensor
    """Mean activation of each feature node (value of the target; 0 for tokens and errors)."""
    scores: Tensor
    """Mean of the per-prompt node scores given to `merge_graphs` (what circuits rank by)."""
    pruning: Pruning


def merge_graphs(
    graphs: list[Graph],
    names: list[list[str]],
    scores: list[Tensor],
    *,
    node_threshold: float,
    edge_threshold: float,
) -> MergedGraph:
    """Average `graphs` (one per prompt, one target each: the metric) and their node `scores`
    by node key, and prune."""
    ids: dict[Key, int] = {}
    rows, cols, weights = [], [], []
    activation: dict[int, float] = {}
    summed_scores: dict[int, float] = {}
    for graph, prompt_names, score in zip(graphs, names, scores, strict=True):
        keys = node_keys(graph, prompt_names)
        local = torch.tensor([ids.setdefault(k, len(ids)) for k in keys])
        for i, value in zip(local.tolist(), score.tolist(), strict=True):
            summed_scores[i] = summed_scores.get(i, 0.0) + value
        rows.append(local[graph.edge_rows])
        cols.append(local[graph.edge_cols])
        weights.append(graph.edge_weights.double())
        index = graph.index
        for i, value in zip(
            local[index.feature_start : index.target_start].tolist(),
            graph.activations.tolist(),
            strict=True,
        ):
            activation[i] = activation.get(i, 0.0) + value
        for i, value in zip(
            local[index.target_start :].tolist(),
            graph.row_values[-index.n_targets :].tolist(),
            strict=True,
        ):
            activation[i] = activation.get(i, 0.0) + value
    n = len(ids)
    pair = torch.cat(rows) * n + torch.cat(cols)
    unique, inverse = pair.unique(return_inverse=True)
    summed = torch.zeros(len(unique), dtype=torch.float64).index_add_(
        0, inverse, torch.cat(weights)
    )
    mean = summed / len(graphs)
    keys = list(ids)
    kind = [k[0] for k in keys]
    target_weights = torch.tensor(
        [1.0 if k == NodeKind.TARGET else 0.0 for k in kind], dtype=torch.float64
    )
    pruning = prune_edges(
        unique // n,
        unique % n,
        mean,
        is_token=torch.tensor([k == NodeKind.TOKEN for k in kind]),
        is_error=torch.tensor([k == NodeKind.ERROR for k in kind]),
        target_weights=target_weights / target_weights.sum(),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
    )
    activations = torch.zeros(n, dtype=torch.float64)
    for i, total in activation.items():
        activations[i] = total / len(graphs)
    mean_scores = torch.zeros(n, dtype=torch.float64)
    for i, total in summed_scores.items():
        mean_scores[i] = total / len(graphs)
    return MergedGraph(keys, unique // n, unique % n, mean, activations, mean_scores, pruning)


def corruption_changes(
    keys: list[Key],
    names: list[list[str]],
    tokens: list[tuple[list[int], list[int]]],
    records: list[tuple[Any, Any]],
) -> list[float]:
    """How much each node changes from the clean to the corrupted prompt, relative to its clean
    value (`node_change`), averaged over the prompts where it is present."""
    out = []
    where = [{name: pos for pos, name in enumerate(prompt_names)} for prompt_names in names]
    for key in keys:
        values = []
        for at, ids, record in zip(where, tokens, records, strict=True):
            pos = at.get(key[3])
            value = None if pos is None else node_change(key, pos, ids, record)
            if value is not None:
                values.append(value)
        out.append(sum(values) / len(values) if values else 1.0)
    return out


def node_change(
    key: Key, pos: int, tokens: tuple[list[int], list[int]], records: tuple[Any, Any]
) -> float | None:
    """How much one prompt's node at `pos` changes on its corrupted prompt, relative to its clean
    value: a feature's `(a - a') / a` (None where it is not active), an error node's
    `|e - e'| / |e|`, a token's 1 if it differs and 0 if not, a target's 1. Nodes left of the
    first corrupted token do not change at all, whatever their weight on the clean prompt."""
    kind, layer, feature, _ = key
    clean, corrupt = records
    if kind == NodeKind.TARGET:
        return 1.0
    if kind == NodeKind.TOKEN:
        return float(tokens[0][pos] != tokens[1][pos])
    if kind == NodeKind.ERROR:
        e, e2 = clean.errors[layer][pos], corrupt.errors[layer][pos]
        norm = float(e.norm())
        return float((e - e2).norm()) / norm if norm > 0 else 0.0
    a = float(clean.features[layer][pos, feature])
    return (a - float(corrupt.features[layer][pos, feature])) / a if a != 0 else None
