"""Scoring component circuits: ranking metrics, the component view of a transcoder circuit,
published circuits from task files, faithfulness of component sets."""

from dataclasses import replace

import pytest
import torch

from circuits.components.from_circuit import component_view
from circuits.components.naming import component_edges, parse_component, reads_before
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.scoring.faithfulness import component_faithfulness
from circuits.scoring.metrics import precision_recall, roc_auc, top_k
from circuits.scoring.published import published_components
from circuits.tasks import load_task


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    scores = {"a": 0.9, "b": -0.8, "c": 0.5, "d": 0.1}
    assert roc_auc(scores, {"a", "b"}) == 1.0
    assert roc_auc(scores, {"c", "d"}) == 0.0
    # positives a (rank 4) and d (rank 1) against negatives b, c: a beats both, d neither
    assert roc_auc(scores, {"a", "d"}) == 0.5
    # a tie between a positive and a negative counts half
    assert roc_auc({"a": 1.0, "b": 1.0, "c": 0.0}, {"a"}) == 0.75
    assert roc_auc(scores, set(scores)) is None


def test_precision_recall_and_top_k():
    assert precision_recall(["a", "b", "c"], ["a", "d"]) == (pytest.approx(1 / 3), 0.5)
    assert precision_recall([], ["a"]) == (1.0, 0.0)
    assert top_k({"a": 0.1, "b": -0.9, "c": 0.5}, 2) == ["b", "c"]


def test_component_names_and_edges():
    assert parse_component("9.9").name == "L9H9"
    assert parse_component("MLP3").name == "MLP3"
    with pytest.raises(ValueError, match="MLP4"):
        parse_component("attn")
    assert reads_before("L1H0", "MLP1") and not reads_before("MLP1", "L1H0")
    assert reads_before("EMBED", "L0H0") and reads_before("MLP1", "LOGITS")
    # 2 layers x 1 head: senders EMBED, L0H0, MLP0, L1H0, MLP1
    assert len(component_edges(2, 1)) == 5 + 4 + 3 + 2 + 1


def test_component_view_spreads_edge_influence_over_heads():
    nodes = [
        CircuitNode(kind="token", layer=-1, role="IO"),
        CircuitNode(kind="feature", layer=0, role="IO", feature=3, influence=0.6),
        CircuitNode(kind="error", layer=1, role="END", influence=0.4),
        CircuitNode(kind="target", layer=2, role="END"),
    ]
    edges = [
        # into the target: weights 3 and 1, so 0.75 and 0.25 of its influence (1.0)
        CircuitEdge(source=1, target=3, weight=3.0, heads=[("L1H0", 0.8)]),
        CircuitEdge(source=2, target=3, weight=-1.0),
        # into the feature (influence 0.6): the only edge, all through L0H1
        CircuitEdge(source=0, target=1, weight=2.0, heads=[("L0H1", 1.0)]),
    ]
    circuit = Circuit(
        task="t", model="m", metric="x", n_layers=2, roles=["IO", "END"], nodes=nodes,
        edges=edges, n_prompts=1,
    )  # fmt: skip
    view = component_view(circuit, n_heads=2)
    assert view.scores["MLP0"] == pytest.approx(0.6)
    assert view.scores["MLP1"] == pytest.approx(0.4)
    assert view.scores["L1H0"] == pytest.approx(0.75 * 0.8)
    assert view.scores["L0H1"] == pytest.approx(0.6)
    assert view.scores["L0H0"] == view.scores["L1H1"] == 0.0
    assert view.edges["MLP0->L1H0"] == pytest.approx(0.6)
    assert view.edges["L1H0->LOGITS"] == pytest.approx(0.6)
    assert view.edges["MLP0->LOGITS"] == pytest.approx(0.75 * 0.2)
    assert view.edges["MLP1->LOGITS"] == pytest.approx(0.25)
    assert view.edges["EMBED->L0H1"] == pytest.approx(0.6)
    assert view.flow["attention"] == pytest.approx((0.6 + 0.6) / (0.75 + 0.25 + 0.6))
    assert view.flow["qk_paths"] == 0.0

    # paths through attention patterns count for their senders, whatever their sign
    moved = replace(circuit, qk_paths={"L0H0->L1H0": -0.3, "EMBED->L1H1": 0.1})
    view_qk = component_view(moved, n_heads=2)
    assert view_qk.scores["L0H0"] == pytest.approx(0.3)
    assert view_qk.scores["L1H1"] == 0.0  # a receiver's score is its own outputs'
    assert view_qk.edges["L0H0->L1H0"] == pytest.approx(0.3)
    assert view_qk.edges["EMBED->L1H1"] == pytest.approx(0.1)
    assert view_qk.edges["EMBED->L0H1"] == pytest.approx(0.6)
    assert view_qk.flow["qk_paths"] == pytest.approx(0.4)
    # circuits saved before QK paths were measured load with none
    old = {k: v for k, v in moved.to_json().items() if k != "qk_paths"}
    assert Circuit.from_json(old).qk_paths == {}
    assert Circuit.from_json(moved.to_json()) == moved


def test_published_circuits_from_the_task_files():
    ioi = published_components(load_task("tasks/ioi.toml").ground_truth["gpt2"])
    assert {"L9H9", "L10H0", "L9H6", "L7H3", "L2H2"} <= set(ioi)
    assert not any(c.startswith("MLP") for c in ioi)
    gt = published_components(load_task("tasks/greater_than.toml").ground_truth["gpt2"])
    assert "L9H1" in gt and {"MLP8", "MLP9", "MLP10", "MLP11"} <= set(gt)


def test_component_faithfulness_bounds():
    from circuits.models import load_model
    from circuits.tasks import build_prompt_set

    bridge = load_model("zoo:tiny", dtype=torch.float64)
    prompts = build_prompt_set(
        load_task("tasks/greater_than.toml"), bridge.tokenizer, n_ctx=256, count=3
    )
    every = [f"L{layer}H{h}" for layer in range(2) for h in range(4)] + ["MLP0", "MLP1"]
    everything, nothing, some = component_faithfulness(
        bridge, prompts, [every, [], ["L0H2", "MLP0", "MLP1"]]
    )
    assert everything == pytest.approx(1.0, abs=1e-6)
    assert nothing == pytest.approx(0.0, abs=1e-6)
    assert abs(some) > 1e-3


def test_component_view_counts_what_the_corruption_can_change():
    nodes = [
        CircuitNode(kind="token", layer=-1, role="IO", change=0.0),
        CircuitNode(kind="token", layer=-1, role="S2", change=1.0),
        CircuitNode(kind="feature", layer=1, role="IO+1", feature=0, influence=0.5, change=0.0),
        CircuitNode(kind="target", layer=2, role="END"),
    ]
    edges = [
        # an unchanged token into an unchanged feature: nothing there can change
        CircuitEdge(source=0, target=2, weight=5.0, heads=[("L0H0", 1.0)]),
        # a changed token into the metric through L0H1
        CircuitEdge(source=1, target=3, weight=1.0, heads=[("L0H1", 1.0)]),
        # an unchanged token into the metric through L1H1, whose attention can change
        CircuitEdge(source=0, target=3, weight=3.0, heads=[("L1H1", 1.0)]),
        # an unchanged token into the metric along the residual stream: cannot change
        CircuitEdge(source=0, target=3, weight=7.0),
    ]
    circuit = Circuit(
        task="t", model="m", metric="x", n_layers=2, roles=["IO", "S2", "END"], nodes=nodes,
        edges=edges, n_prompts=1,
    )  # fmt: skip
    view = component_view(circuit, n_heads=2)
    assert view.scores["L0H0"] == 0.0
    assert view.scores["L0H1"] == pytest.approx(0.25)
    assert view.scores["L1H1"] == pytest.approx(0.75)
    assert "EMBED->LOGITS" not in view.edges
