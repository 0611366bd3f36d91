"""Influence, pruning and scores on graphs small enough to compute by hand."""

import pytest
import torch

from circuits.attribution.graph import Graph
from circuits.attribution.influence import cumulative_mask, influence, normalized_weights, prune
from circuits.attribution.nodes import NodeIndex
from circuits.attribution.targets import logit_target


def _graph() -> Graph:
    """tok0, tok1, err(0,0), err(0,1), feature (0, 1, 5), target. The feature reads +2 from
    tok0 and -2 from tok1; the target reads 3 from the feature and 1 from err(0,1)."""
    index = NodeIndex(torch.tensor([7, 8]), torch.tensor([[0, 1, 5]]), 1, ["out"])
    feature, target, err = index.feature_start, index.target(0), index.error(0, 1)
    edges = [(feature, 0, 2.0), (feature, 1, -2.0), (target, feature, 3.0), (target, err, 1.0)]
    rows, cols, weights = (torch.tensor(x) for x in zip(*edges, strict=True))
    return Graph(
        index=index,
        edge_rows=rows,
        edge_cols=cols,
        edge_weights=weights.double(),
        activations=torch.tensor([1.0]),
        row_values=torch.tensor([0.0, 4.0]),
        row_constants=torch.tensor([0.0, 0.0]),
        targets=[logit_target(3, 10, name="out")],
    )


def test_influence_flows_back_through_normalised_edges() -> None:
    graph = _graph()
    n = graph.n_nodes
    normalized = normalized_weights(graph.edge_rows, graph.edge_weights, n)
    torch.testing.assert_close(normalized, torch.tensor([0.5, 0.5, 0.75, 0.25]).double())
    start = torch.zeros(n, dtype=torch.float64)
    start[-1] = 1
    got = influence(graph.edge_rows, graph.edge_cols, normalized, start)
    # tok0, tok1, err(0,0), err(0,1), feature, target
    expected = torch.tensor([0.375, 0.375, 0.0, 0.25, 0.75, 0.0]).double()
    torch.testing.assert_close(got, expected)


def test_scores_of_a_hand_computed_graph() -> None:
    pruning = prune(_graph())
    assert pruning.replacement_score == pytest.approx(0.75)
    # rows: feature (weight 0.75, no error input), target (weight 1, a quarter from errors)
    assert pruning.completeness_score == pytest.approx(1 - 0.25 / 1.75)


def test_pruning_keeps_tokens_and_targets_and_drops_weak_nodes() -> None:
    pruning = prune(_graph(), node_threshold=0.7, edge_threshold=1.0)
    # features and errors by influence: feature 0.75, err(0,1) 0.25, err(0,0) 0 -> 0.75 of 1.0
    assert pruning.node_mask.tolist() == [True, True, False, False, True, True]
    assert pruning.edge_mask.tolist() == [True, True, True, False]
    assert pruning.n_nodes == 4


def test_cumulative_mask_keeps_the_smallest_set_reaching_the_threshold() -> None:
    scores = torch.tensor([0.2, 0.5, 0.3])
    assert cumulative_mask(scores, 0.8).tolist() == [False, True, True]
    assert cumulative_mask(scores, 0.81).tolist() == [True, True, True]
    assert cumulative_mask(scores, 0.5).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="threshold"):
        cumulative_mask(scores, 1.5)


def test_a_cycle_is_reported() -> None:
    rows, cols = torch.tensor([0, 1]), torch.tensor([1, 0])
    with pytest.raises(ValueError, match="cycle"):
        influence(rows, cols, torch.ones(2), torch.tensor([1.0, 0.0]), max_depth=10)
