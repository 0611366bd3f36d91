"""Scoring component circuits: ranking metrics, the component view of a transcoder circuit,
published circuits from task files, faithfulness of component sets."""

from dataclasses import replace

import pytest
import torch

from circuits.attribution.nodes import NodeKind
from circuits.causal.naming import component_edges, parse_component, reads_before
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode
from circuits.run.components import component_view
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


def _view_circuit(**kw) -> Circuit:
    nodes = [
        CircuitNode(kind=NodeKind.TOKEN, layer=-1, role="IO"),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=0, role="IO", feature=3, influence=0.5, effect=1.0
        ),
        CircuitNode(
            kind=NodeKind.FEATURE, layer=0, role="S2", feature=5, influence=0.2, effect=-0.4
        ),
        CircuitNode(kind=NodeKind.ERROR, layer=1, role="END", influence=0.3, effect=-0.6),
        CircuitNode(kind=NodeKind.TARGET, layer=2, role="END"),
    ]
    edges = [
        # effect 1 of a gap of 2, 80% through L1H0: 0.4 each way, 0.1 along the residual stream
        CircuitEdge(
            source=1,
            target=4,
            weight=3.0,
            heads=[("L1H0", 0.8)],
            effect=1.0,
            head_effects={"L1H0": 0.8},
        ),
        # the same component edges, opposite sign: MLP0 -> L1H0 nets 0.4 - 0.2. The head's own
        # effect counts, not its weight share times the edge's effect (their means over prompts
        # where the weights cancel: the share says 5)
        CircuitEdge(
            source=2,
            target=4,
            weight=0.1,
            heads=[("L1H0", 5.0)],
            effect=-0.1,
            head_effects={"L1H0": -0.4},
        ),
        CircuitEdge(source=3, target=4, weight=-1.0, effect=-0.5),
        CircuitEdge(
            source=0,
            target=1,
            weight=2.0,
            heads=[("L0H1", 1.0)],
            effect=0.6,
            head_effects={"L0H1": 0.6},
        ),
    ]
    return Circuit(
        task="t", model="m", metric="x", n_layers=2, roles=["IO", "S2", "END"], nodes=nodes,
        edges=edges, n_prompts=1, gap=2.0, **kw,
    )  # fmt: skip


def test_component_view_sums_signed_edge_effects_and_scores_heads_by_edges_out():
    view = component_view(_view_circuit(), n_heads=2)
    assert view.edges["MLP0->L1H0"] == pytest.approx(0.2)
    assert view.edges["L1H0->LOGITS"] == pytest.approx(0.2)
    assert view.edges["MLP0->LOGITS"] == pytest.approx(0.1)
    assert view.edges["MLP1->LOGITS"] == pytest.approx(0.25)
    assert view.edges["EMBED->L0H1"] == view.edges["L0H1->MLP0"] == pytest.approx(0.3)
    assert view.scores["L1H0"] == pytest.approx(0.2)
    # an MLP moves what its nodes move, each resampled alone: (1.0 - 0.4) and -0.6 of a gap of 2
    assert view.scores["MLP0"] == view.scores["MLP1"] == pytest.approx(0.3)
    assert view.scores["L0H1"] == pytest.approx(0.3)
    assert view.scores["L0H0"] == view.scores["L1H1"] == 0.0
    # through heads (by weight share, at most all): 0.8 of 0.5, all of 0.05 and of 0.3
    assert view.flow["attention"] == pytest.approx((0.4 + 0.05 + 0.3) / (0.5 + 0.05 + 0.25 + 0.3))
    assert view.flow["qk_paths"] == 0.0


def test_component_view_adds_qk_paths_to_senders_and_moved_patterns_to_their_heads():
    qk = {"L0H0->L1H0": -0.3, "EMBED->L1H1": 0.1, "MLP0->L1H0": 0.2}
    moved = {"L1H0": -0.2, "L1H1": 0.2, "L0H0": 0.0}  # metric units, of a gap of 2
    view = component_view(_view_circuit(qk_paths=qk, moved_patterns=moved), n_heads=2)
    assert view.edges["L0H0->L1H0"] == pytest.approx(0.3)
    assert view.edges["EMBED->L1H1"] == pytest.approx(0.1)
    assert view.edges["MLP0->L1H0"] == pytest.approx(0.2 + 0.2)  # value path and QK path
    assert view.scores["L0H0"] == pytest.approx(0.3)
    # a head's moved pattern is a term of its score beside its value paths (0.2)...
    assert view.scores["L1H0"] == pytest.approx(0.2 + 0.1)
    assert view.scores["L1H1"] == pytest.approx(0.1)
    assert view.scores["MLP0"] == pytest.approx(0.3)  # its nodes' effects include QK paths
    assert view.flow["qk_paths"] == pytest.approx(0.6)
    # ... and flows out along its edges (all of L1H0's weight goes to the logits)
    assert view.edges["L1H0->LOGITS"] == pytest.approx(0.2 - 0.1)
    assert not [e for e in view.edges if e.startswith("L1H1->")]  # L1H1 carries no edge


def test_a_moved_pattern_splits_over_receivers_by_the_weight_the_head_carries():
    base = _view_circuit()
    # L0H1 also carries weight 6 (3 times its weight into MLP0) from the token to the error node
    extra = CircuitEdge(source=0, target=3, weight=6.0, heads=[("L0H1", 1.0)])
    circuit = replace(base, edges=[*base.edges, extra], moved_patterns={"L0H1": 0.8})
    view = component_view(circuit, n_heads=2)
    assert view.edges["L0H1->MLP0"] == pytest.approx(0.3 + 0.1)
    assert view.edges["L0H1->MLP1"] == pytest.approx(0.3)
    assert view.scores["L0H1"] == pytest.approx(0.3 + 0.4)


def test_circuits_saved_before_effects_load_and_score_in_metric_units():
    circuit = _view_circuit(qk_paths={"L0H0->L1H0": -0.3})
    old = circuit.to_json()
    for key in ("qk_paths", "gap", "moved_patterns"):
        del old[key]
    for edge in old["edges"]:
        del edge["effect"], edge["head_effects"]
    loaded = Circuit.from_json(old)
    assert loaded.qk_paths == {} and loaded.moved_patterns == {} and loaded.gap == 0.0
    assert all(e.effect == 0.0 and e.head_effects == {} for e in loaded.edges)
    assert Circuit.from_json(circuit.to_json()) == circuit
    # no gap recorded: edge effects are read in metric units
    assert component_view(replace(circuit, gap=0.0), n_heads=2).edges[
        "MLP1->LOGITS"
    ] == pytest.approx(0.5)


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
