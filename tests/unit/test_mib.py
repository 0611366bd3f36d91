"""MIB's circuit-localization metrics on hand-computable graphs, and edge circuits evaluated on
the shipped model (float64)."""

import pytest
import torch

from circuits.baselines.activation_patching import edge_activation_patching
from circuits.causal.naming import EMBED, LOGITS, component_edges
from circuits.causal.patching import run_prompt
from circuits.causal.paths import path_patched_metrics
from circuits.scoring.edge_circuits import edge_circuit_metrics, mean_edge_circuit_metrics
from circuits.scoring.mib import (
    BUDGETS,
    budget_circuits,
    cmd,
    cpr,
    edge_auroc,
    edge_budget,
    faithfulness,
    greedy_edges,
    prune,
    top_edges,
)

# A tiny graph: EMBED -> A -> LOGITS carries the task, B hangs off EMBED, C feeds nothing.
TINY = {
    "EMBED->A": 3.0,
    "A->LOGITS": 2.0,
    "EMBED->B": -4.0,
    "C->LOGITS": 1.0,
    "EMBED->LOGITS": 0.5,
}


def test_budgets_are_mibs_fractions_and_truncate():
    assert BUDGETS == (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    assert [edge_budget(b, 54) for b in BUDGETS] == [0, 0, 0, 0, 1, 2, 5, 10, 27, 54]
    with pytest.raises(ValueError, match="fraction"):
        edge_budget(1.5, 10)


def test_top_edges_signed_or_by_magnitude():
    assert top_edges(TINY, 2, absolute=True) == ["EMBED->B", "EMBED->A"]
    assert top_edges(TINY, 2, absolute=False) == ["EMBED->A", "A->LOGITS"]


def test_prune_drops_dangling_nodes_until_connected():
    # B has no outgoing edge, C no incoming one: both go with their edges
    kept = prune([("EMBED", "A"), ("A", "LOGITS"), ("EMBED", "B"), ("C", "LOGITS")])
    assert kept == {("EMBED", "A"), ("A", "LOGITS")}
    # a chain that never reaches LOGITS disappears entirely, one step at a time
    assert prune([("EMBED", "A"), ("A", "B")]) == set()
    assert prune([("EMBED", LOGITS)]) == {(EMBED, LOGITS)}


def test_budget_circuits_rank_then_prune():
    circuits = budget_circuits(TINY, absolute=True, budgets=(0.4, 0.6, 1.0))
    # 2 edges by |score|: EMBED->B, EMBED->A, neither reaches LOGITS
    assert circuits[0] == set()
    # 3: + A->LOGITS closes the path through A; B still dangles
    assert circuits[1] == {("EMBED", "A"), ("A", "LOGITS")}
    assert circuits[2] == {("EMBED", "A"), ("A", "LOGITS"), ("EMBED", "LOGITS")}


def test_faithfulness_cpr_and_cmd_by_hand():
    assert faithfulness(7.0, 2.0, 12.0) == 0.5
    assert faithfulness(1.0, 2.0, 2.0) != faithfulness(1.0, 2.0, 2.0)  # nan: no gap
    xs, fs = [0.1, 0.5, 1.0], [0.0, 1.5, 1.0]
    # trapezoids: 0.4 * (0 + 1.5) / 2 + 0.5 * (1.5 + 1) / 2 = 0.3 + 0.625
    assert cpr(xs, fs) == pytest.approx(0.925)
    # |1 - f|: 1, 0.5, 0 -> 0.4 * 1.5 / 2 + 0.5 * 0.5 / 2 = 0.3 + 0.125
    assert cmd(xs, fs) == pytest.approx(0.425)
    # MIB's axis starts at 0.001: a perfect curve has CPR 0.999 and CMD 0
    assert cpr(BUDGETS, [1.0] * 10) == pytest.approx(0.999)
    assert cmd(BUDGETS, [1.0] * 10) == 0.0


def test_greedy_grows_from_the_logits_and_auroc_by_hand():
    # from LOGITS: A->LOGITS (2) first, then EMBED->A (3) becomes a candidate and wins
    assert greedy_edges(TINY, 2) == {("EMBED", "A"), ("A", "LOGITS")}
    # EMBED->B never becomes a candidate (B feeds nothing in the circuit)
    assert ("EMBED", "B") not in greedy_edges(TINY, 5)
    truth = {("EMBED", "A"), ("A", "LOGITS")}
    area, points = edge_auroc(TINY, truth, budgets=(0.4, 1.0))
    # 2 edges: TPR 1, FPR 0; all 5 greedily: C->LOGITS dangles and is pruned, EMBED->B is
    # never reached: FPR 1/3 (EMBED->LOGITS), normalised to 1
    assert points == [(0.0, 1.0), (pytest.approx(1 / 3), 1.0)]
    assert area == pytest.approx(1.0)


@pytest.fixture(scope="module")
def run(bridge, ioi):
    return run_prompt(bridge, ioi, ioi.prompts[0])


def test_an_edge_circuit_of_all_or_no_edges_is_the_clean_or_corrupted_model(bridge, run):
    edges = set(component_edges(2, 4))
    got = edge_circuit_metrics(bridge, run, [edges, set()])
    torch.testing.assert_close(
        got, torch.tensor([run.m_clean, run.m_corrupt], dtype=got.dtype), rtol=0, atol=1e-10
    )


def test_leaving_one_edge_out_is_path_patching_it(bridge, run):
    edges = component_edges(2, 4)
    every = set(edges)
    got = edge_circuit_metrics(bridge, run, [every - {e} for e in edges])
    want = path_patched_metrics(bridge, run.tokens, run.clean, run.corrupt, edges, run.metric)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_a_sender_outside_the_circuit_passes_its_corrupted_output_downstream(bridge, run):
    # MIB reads a sender's output in the patched pass itself: MLP1 -> LOGITS alone keeps
    # MLP1's edge, but MLP1 reads only corrupted inputs, so it passes its corrupted output on
    # and the circuit is the empty one, although MLP1's direct path moves the metric
    got = edge_circuit_metrics(bridge, run, [{("MLP1", LOGITS)}])
    torch.testing.assert_close(
        got, torch.tensor([run.m_corrupt], dtype=got.dtype), rtol=0, atol=1e-10
    )
    direct = path_patched_metrics(
        bridge, run.tokens, run.clean, run.corrupt, [("MLP1", LOGITS)], run.metric
    )
    assert abs(float(direct[0]) - run.m_clean) > 0.1


def test_edge_activation_patching_reaches_full_faithfulness_at_every_edge(bridge, ioi):
    scores = edge_activation_patching(bridge, ioi)
    assert scores.edges is not None
    circuits = budget_circuits(scores.edges, absolute=True)
    full, _, values = mean_edge_circuit_metrics(bridge, ioi, [*circuits, set()])
    empty = values[-1]
    f = [faithfulness(v, empty, full) for v in values[:-1]]
    assert f[-1] == pytest.approx(1.0, abs=1e-9)
    # its top edges carry the task well before 100%: at half the edges within 10% of the model
    assert f[BUDGETS.index(0.5)] == pytest.approx(1.0, abs=0.1)
