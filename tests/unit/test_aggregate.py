"""Merging prompts' graphs by role position."""

import pytest
import torch

from circuits.attribution.graph import Graph
from circuits.attribution.nodes import NodeIndex
from circuits.attribution.targets import logit_target
from circuits.run.aggregate import merge_graphs, node_keys, role_names


def test_positions_are_named_by_role_or_offset_from_the_role_to_their_left() -> None:
    names = role_names({"IO": 2, "S1": 4, "END": 6}, 7)
    assert names == ["BOS", "pos1", "IO", "IO+1", "S1", "S1+1", "END"]


def test_an_edge_missing_from_a_prompt_counts_as_zero() -> None:
    a, b = _graph(5, 3, 2.0), _graph(6, 4, 4.0)
    names_a = role_names({"S2": 3, "END": 4}, 5)
    names_b = role_names({"S2": 3, "END": 5}, 6)  # b's feature sits at S2+1, not S2
    merged = merge_graphs(
        [a, b],
        [names_a, names_b],
        [torch.zeros(a.n_nodes), torch.ones(b.n_nodes)],
        node_threshold=1.0,
        edge_threshold=1.0,
    )
    key_of = {k: i for i, k in enumerate(merged.keys)}
    target = key_of[("target", 1, None, "END")]
    for role, weight in (("S2", 2.0), ("S2+1", 4.0)):
        feature = key_of[("feature", 0, 7, role)]
        edge = ((merged.rows == target) & (merged.cols == feature)).nonzero().item()
        assert float(merged.weights[edge]) == pytest.approx(weight / 2)


def _graph(n_pos: int, feature_pos: int, weight: float) -> Graph:
    """Tokens, errors (1 layer), one feature at `feature_pos`, one target reading the feature
    (`weight`) and the last token (1.0)."""
    index = NodeIndex(torch.arange(n_pos), torch.tensor([[0, feature_pos, 7]]), 1, ["m"])
    target, feature = index.target(0), index.feature_start
    rows = torch.tensor([target, target, feature])
    cols = torch.tensor([feature, n_pos - 1, feature_pos])
    return Graph(
        index=index,
        edge_rows=rows,
        edge_cols=cols,
        edge_weights=torch.tensor([weight, 1.0, 0.5]),
        activations=torch.tensor([2.0]),
        row_values=torch.tensor([0.5, weight + 1.0]),
        row_constants=torch.zeros(2),
        targets=[logit_target(1, 4, name="m")],
    )


def test_graphs_of_different_lengths_merge_by_role() -> None:
    # the feature sits at role S2 in both prompts, at positions 3 and 4
    a, b = _graph(5, 3, 2.0), _graph(6, 4, 4.0)
    names_a = role_names({"S2": 3, "END": 4}, 5)
    names_b = role_names({"S2": 4, "END": 5}, 6)
    merged = merge_graphs(
        [a, b],
        [names_a, names_b],
        [torch.zeros(a.n_nodes), torch.ones(b.n_nodes)],
        node_threshold=1.0,
        edge_threshold=1.0,
    )
    key_of = {k: i for i, k in enumerate(merged.keys)}
    feature, target = key_of[("feature", 0, 7, "S2")], key_of[("target", 1, None, "END")]
    edge = ((merged.rows == target) & (merged.cols == feature)).nonzero().item()
    assert float(merged.weights[edge]) == pytest.approx(3.0)  # mean of 2 and 4
    assert float(merged.activations[feature]) == pytest.approx(2.0)
    assert float(merged.activations[target]) == pytest.approx((3.0 + 5.0) / 2)
    assert len(node_keys(a, names_a)) == a.n_nodes
