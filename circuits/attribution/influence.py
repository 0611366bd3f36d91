"""Influence, pruning and the graph-level scores of an attribution graph (Ameisen et al. 2025).

All functions work on edge lists (`rows` receive, `cols` send, `weights`) so that a graph with
tens of thousands of nodes never needs a dense matrix. With `A` the absolute adjacency normalised
so that each row sums to one, the influence of node j on the targets is
`(w (A + A^2 + ...))_j`, `w` the target weights; the graph is acyclic, so the series ends.
"""

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from circuits.attribution.graph import Graph
from circuits.attribution.nodes import KINDS, NodeKind


def normalized_weights(
    rows: Int[Tensor, " n_edges"], weights: Float[Tensor, " n_edges"], n_nodes: int
) -> Float[Tensor, " n_edges"]:
    """`|w|` divided by the sum of `|w|` over the edge's row (rows without input stay zero)."""
    magnitude = weights.abs()
    totals = torch.zeros(n_nodes, dtype=weights.dtype).index_add_(0, rows, magnitude)
    return magnitude / totals[rows].clamp(min=torch.finfo(weights.dtype).tiny)


def influence(
    rows: Int[Tensor, " n_edges"],
    cols: Int[Tensor, " n_edges"],
    normalized: Float[Tensor, " n_edges"],
    start: Float[Tensor, " n_nodes"],
    *,
    max_depth: int = 1000,
) -> Float[Tensor, " n_nodes"]:
    """`start (A + A^2 + ...)`: how much of `start` (weights on the receiving nodes) flows back
    to each node through the normalised edges."""
    total = torch.zeros_like(start)
    frontier = start
    for _ in range(max_depth):
        frontier = torch.zeros_like(start).index_add_(0, cols, frontier[rows] * normalized)
        if not bool(frontier.any()):
            return total
        total += frontier
    raise ValueError(f"influence did not vanish after {max_depth} steps: the graph has a cycle")


def cumulative_mask(scores: Float[Tensor, " n"], threshold: float) -> Bool[Tensor, " n"]:
    """The smallest set of the highest `scores` whose sum reaches `threshold` of the total."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    order = scores.argsort(descending=True)
    total = scores.sum()
    if total <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    cumulative = scores[order].cumsum(0) / total
    n_keep = int((cumulative < threshold).sum()) + 1
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[order[: min(n_keep, len(scores))]] = True
    return mask


def target_weights(graph: Graph) -> Float[Tensor, " n_nodes"]:
    """Weights of the targets, summing to one: their probabilities where all targets are output
    tokens with a probability, else equal."""
    index = graph.index
    w = torch.zeros(index.n_nodes, dtype=torch.float64)
    probs = [t.probability for t in graph.targets]
    values = torch.tensor(
        probs if all(p is not None for p in probs) else [1.0] * len(probs), dtype=torch.float64
    )
    w[index.target_start :] = values / values.sum()
    return w


@dataclass(frozen=True)
class Pruning:
    """Which nodes and edges of a graph make its circuit, and the scores that say how much of
    the computation the graph explains."""

    node_mask: Bool[Tensor, " n_nodes"]
    edge_mask: Bool[Tensor, " n_edges"]
    """Over the graph's edge list."""
    influence: Float[Tensor, " n_nodes"]
    """Each node's total influence on the targets (before pruning)."""
    replacement_score: float
    """Share of the end-to-end influence that reaches the targets from tokens, not errors."""
    completeness_score: float
    """Influence-weighted share of node inputs that do not come from error nodes."""

    @property
    def n_nodes(self) -> int:
        return int(self.node_mask.sum())

    @property
    def n_edges(self) -> int:
        return int(self.edge_mask.sum())


def prune(graph: Graph, *, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> Pruning:
    """Keep the features and error nodes holding `node_threshold` of the influence on the
    targets, and among edges between kept nodes those holding `edge_threshold` of the
    influence-weighted edge mass. Tokens and targets are always kept."""
    index = graph.index
    kinds = index.kinds()
    return prune_edges(
        graph.edge_rows,
        graph.edge_cols,
        graph.edge_weights.to(torch.float64),
        is_token=kinds == KINDS.index(NodeKind.TOKEN),
        is_error=kinds == KINDS.index(NodeKind.ERROR),
        target_weights=target_weights(graph),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
    )


def prune_edges(
    rows: Int[Tensor, " n_edges"],
    cols: Int[Tensor, " n_edges"],
    weights: Float[Tensor, " n_edges"],
    *,
    is_token: Bool[Tensor, " n_nodes"],
    is_error: Bool[Tensor, " n_nodes"],
    target_weights: Float[Tensor, " n_nodes"],
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> Pruning:
    """`prune` on any edge list: nodes with a target weight are targets, tokens and errors are
    flagged, every other node is a feature."""
    n_nodes = len(is_token)
    w = target_weights.to(torch.float64)
    is_target = w > 0
    normalized = normalized_weights(rows, weights.to(torch.float64), n_nodes)
    node_influence = influence(rows, cols, normalized, w)

    middle = ~is_token & ~is_target  # errors and features
    node_mask = torch.ones(n_nodes, dtype=torch.bool)
    node_mask[middle] = cumulative_mask(node_influence[middle], node_threshold)

    between = node_mask[rows] & node_mask[cols]
    edge_scores = normalized * (node_influence + w)[rows] * between
    edge_mask = cumulative_mask(edge_scores, edge_threshold) & between

    from_tokens = float(node_influence[is_token].sum())
    from_errors = float(node_influence[is_error].sum())
    error_share = torch.zeros(n_nodes, dtype=torch.float64).index_add_(
        0, rows, normalized * is_error[cols]
    )
    weight = node_influence + w
    receiving = ~is_token & ~is_error
    completeness = 1 - float(
        (weight[receiving] * error_share[receiving]).sum() / weight[receiving].sum()
    )
    return Pruning(
        node_mask=node_mask,
        edge_mask=edge_mask,
        influence=node_influence,
        replacement_score=from_tokens / max(from_tokens + from_errors, 1e-300),
        completeness_score=completeness,
    )


def total_effects(graph: Graph, *, max_depth: int = 1000) -> tuple[Tensor, Tensor]:
    """Each node's total effect on the (target-weighted mean of the) targets in the linear
    model, and each row node's effect per unit of its pre-activation. A path through a feature
    scales by how much of the feature's pre-activation the upstream node supplied (features
    respond with slope one while active). Removing a source entirely changes the targets by its
    total effect."""
    index = graph.index
    rows, cols = graph.edge_rows, graph.edge_cols
    weights = graph.edge_weights.to(torch.float64)
    per_unit = torch.zeros(index.n_nodes, dtype=torch.float64)
    per_unit[index.target_start :] = 1.0 / index.n_targets
    activations = torch.zeros(index.n_nodes, dtype=torch.float64)
    activations[index.feature_start : index.target_start] = graph.activations.double()
    is_feature = activations != 0
    total = torch.zeros(index.n_nodes, dtype=torch.float64)
    for _ in range(max_depth):
        new = torch.zeros_like(total).index_add_(0, cols, weights * per_unit[rows])
        if torch.equal(new, total):
            return total, per_unit
        total = new
        per_unit = per_unit.clone()
        per_unit[is_feature] = total[is_feature] / activations[is_feature]
    raise ValueError(f"total effects did not settle after {max_depth} steps: the graph has a cycle")
