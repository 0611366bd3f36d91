"""The graph artifact: exact save/load, refusal of other files, the networkx view."""

import json

import pytest
import torch

from circuits.attribution.attribute import AttributionConfig, attribute, sparsify
from circuits.attribution.graph import load_graph
from circuits.attribution.heads import resolve_heads
from circuits.attribution.nodes import ErrorNode, FeatureNode, TargetNode, TokenNode
from circuits.attribution.replacement import ReplacementModel
from circuits.attribution.targets import logit_difference_target
from circuits.errors import AttributionError
from circuits.paths import MARKER
from tests.oracle.architectures import D_VOCAB, random_bridge, random_transcoders


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    bridge = random_bridge("gpt2", tmp_path_factory.mktemp("models"))
    model = ReplacementModel(bridge, random_transcoders("topk", skip=True))
    tokens = torch.tensor([0, 5, 9, 5, 3, 2])
    target = logit_difference_target(5, 9, D_VOCAB, name="t5 - t9")
    graph = attribute(model, tokens, [target], AttributionConfig(progress=False), prompt="t0 t5")
    graph.head_edges = torch.arange(10)
    graph.head_shares = resolve_heads(model, graph, graph.head_edges)
    return graph


def test_save_and_load_round_trip_exactly(graph, tmp_path) -> None:
    loaded = load_graph(graph.save(tmp_path / "g"))
    for name in (
        "edge_rows",
        "edge_cols",
        "edge_weights",
        "activations",
        "row_values",
        "row_constants",
        "head_edges",
        "head_shares",
    ):
        assert torch.equal(getattr(loaded, name), getattr(graph, name)), name
    assert torch.equal(loaded.index.features, graph.index.features)
    assert torch.equal(loaded.index.tokens, graph.index.tokens)
    assert torch.equal(loaded.targets[0].direction, graph.targets[0].direction)
    assert (loaded.prompt, loaded.config) == (graph.prompt, graph.config)
    # saving again over the directory replaces it
    graph.save(tmp_path / "g")
    names = sorted(p.name for p in (tmp_path / "g").iterdir())
    assert names == [MARKER, "graph.json", "graph.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_other_files_are_refused(graph, tmp_path) -> None:
    with pytest.raises(AttributionError, match="not a graph directory"):
        load_graph(tmp_path)
    path = graph.save(tmp_path / "g")
    meta = json.loads((path / "graph.json").read_text())
    (path / "graph.json").write_text(json.dumps(meta | {"schema_version": 99}))
    with pytest.raises(AttributionError, match="version 99"):
        load_graph(path)


def test_networkx_view_has_typed_nodes_and_every_edge(graph) -> None:
    g = graph.to_networkx()
    assert g.number_of_nodes() == graph.n_nodes
    assert g.number_of_edges() == len(graph.edge_weights)
    kinds = {type(n) for n in g.nodes}
    assert kinds == {TokenNode, FeatureNode, ErrorNode, TargetNode}
    feature = next(n for n in g.nodes if isinstance(n, FeatureNode))
    assert g.nodes[feature]["kind"] == "feature" and g.nodes[feature]["layer"] == feature.layer
    target = next(n for n in g.nodes if isinstance(n, TargetNode))
    assert sum(d["weight"] for _, _, d in g.in_edges(target, data=True)) == pytest.approx(
        float(graph.incoming()[-1])
    )


def test_edge_cap_keeps_the_strongest_inputs_of_crowded_rows_only() -> None:
    block = torch.tensor([[0.0, 3.0, -5.0, 1.0], [2.0, 0.0, 0.0, -1.0], [0.5, -0.1, 0.2, 0.0]])
    rows, cols, weights = sparsify(block, max_per_row=2)
    kept = {(int(r), int(c)): float(w) for r, c, w in zip(rows, cols, weights, strict=True)}
    expected = {(0, 1): 3.0, (0, 2): -5.0, (1, 0): 2.0, (1, 3): -1.0, (2, 0): 0.5, (2, 2): 0.2}
    assert kept == pytest.approx(expected)


def test_edge_cap_breaks_ties_without_exceeding_the_cap() -> None:
    block = torch.tensor([[1.0, -2.0, 2.0, 2.0, 0.5]])
    _, cols, weights = sparsify(block, max_per_row=2)
    assert weights.abs().tolist() == [2.0, 2.0]
    assert set(cols.tolist()) < {1, 2, 3}
