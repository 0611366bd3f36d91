"""The circuit-localization metrics of MIB (Mueller et al. 2025, "MIB: A Mechanistic
Interpretability Benchmark", arXiv:2504.13151, section 3 and appendix of the circuit track), as
pure functions of edge scores and measured faithfulness; evaluating a circuit on a model is
`circuits.scoring.edge_circuits`.

Each definition follows the track's code (github.com/hannamw/MIB-circuit-track, commit b759df3,
and the EAP-IG library it evaluates with, github.com/hannamw/EAP-IG, commit 795f560):

- budgets: the fractions 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1 of all edges
  (`MIB_circuit_track/evaluation.py`, `evaluate_area_under_curve`, `percentages`); the circuit
  at a budget is the method's top `int(fraction * n_edges)` edges (`apply_topn`, truncating),
  by signed score or by |score| (`absolute`), then pruned (`Graph.prune` in `eap/graph.py`):
  nodes without an outgoing edge, or without an incoming one (the input node excepted), leave
  with their edges, until nothing changes;
- faithfulness: f(C) = (m(C) - m(empty)) / (m(N) - m(empty)), m the metric averaged over the
  prompts before dividing, "empty" the circuit of no edge (`apply_topn(0)`: every edge from the
  counterfactual prompt), N the unmodified model on the clean prompts (`evaluate_baseline`);
- CPR: the trapezoid area under f over the budgets, on a linear axis from 0.001 to 1
  (`log_scale=False`, the default; no point at 0); CMD: the trapezoid area under |1 - f| over
  the same points. MIB reports CPR from the signed ranking and CMD from the absolute one where
  both exist (`print_results.py`: `abs-False` for `cpr`, `abs-True` for `cmd`);
- edge AUROC, for models with a known circuit (InterpBench): at each budget the top
  `fraction * n_edges` edges chosen greedily from the logits upwards (`Graph.apply_greedy`,
  by |score|), pruned, and compared with the known circuit (true and false positive rates,
  `compare_graphs`); the area is the trapezoid over the (FPR, TPR) points in budget order with
  FPR divided by its last value (`print_results.py`, `area_under_curve`).

Edges are `(sender, receiver)` pairs of component names (`circuits.causal.naming`). MIB splits
each edge into a head into three (its query, key and value inputs); here an edge into a head
feeds all three, as `component_edges` and the causal reference define them.
"""

import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from circuits.causal.naming import EMBED, LOGITS

BUDGETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""MIB's edge budgets, as fractions of all edges."""

Edge = tuple[str, str]


def faithfulness(m_circuit: float, m_empty: float, m_full: float) -> float:
    """(m(C) - m(empty)) / (m(N) - m(empty)); nan when the model and the empty circuit agree."""
    span = m_full - m_empty
    return (m_circuit - m_empty) / span if span else float("nan")


def edge_budget(fraction: float, n_edges: int) -> int:
    """How many edges a budget keeps: `int(fraction * n_edges)`, as MIB truncates."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction: {fraction}; a budget is a fraction of the edges in [0, 1]")
    return int(fraction * n_edges)


def top_edges(scores: Mapping[str, float], n: int, *, absolute: bool) -> list[str]:
    """The `n` edges (`"S->R"` keys) of highest score, or of highest |score| when `absolute`;
    ties keep the order of `scores`."""
    keys = list(scores)
    key = (lambda k: abs(scores[k])) if absolute else (lambda k: scores[k])
    return sorted(keys, key=lambda k: -key(k))[:n]


def prune(edges: Collection[Edge]) -> set[Edge]:
    """MIB's `Graph.prune`: repeatedly drop every node that has no outgoing edge, or no incoming
    edge (EMBED excepted), and every edge whose sender or receiver was dropped (LOGITS always
    stays), until nothing changes."""
    kept = set(edges)
    while True:
        senders = {s for s, _ in kept}
        receivers = {r for _, r in kept}
        alive = {n for n in senders if n == EMBED or n in receivers}
        pruned = {(s, r) for s, r in kept if s in alive and (r == LOGITS or r in alive)}
        if pruned == kept:
            return kept
        kept = pruned


def split(name: str) -> Edge:
    sender, receiver = name.split("->")
    return sender, receiver


def budget_circuits(
    scores: Mapping[str, float],
    *,
    absolute: bool,
    budgets: Sequence[float] = BUDGETS,
) -> list[set[Edge]]:
    """Per budget, the pruned circuit of the top-scoring edges; `scores` holds every edge of the
    model (`"S->R"` -> score; an edge a method does not score should be there with 0)."""
    out = []
    for fraction in budgets:
        chosen = top_edges(scores, edge_budget(fraction, len(scores)), absolute=absolute)
        out.append(prune([split(e) for e in chosen]))
    return out


def trapezoid(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The trapezoid rule over points in the given order."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values against {len(ys)} y values")
    return sum(
        (x2 - x1) * (y1 + y2) / 2 for x1, x2, y1, y2 in zip(xs, xs[1:], ys, ys[1:], strict=False)
    )


def cpr(budgets: Sequence[float], faithfulness: Sequence[float]) -> float:
    """Area under the faithfulness curve (MIB's `area_under`; higher is better)."""
    return trapezoid(budgets, faithfulness)


def cmd(budgets: Sequence[float], faithfulness: Sequence[float]) -> float:
    """Area between the faithfulness curve and 1 (MIB's `area_from_1`; lower is better)."""
    return trapezoid(budgets, [abs(1.0 - f) for f in faithfulness])


@dataclass(frozen=True, kw_only=True)
class Curve:
    """A method's faithfulness at each budget, with one ranking (signed or absolute)."""

    budgets: list[float]
    faithfulness: list[float]
    n_edges: list[int]
    """Edges left in each circuit after pruning."""
    absolute: bool
    """Whether edges were ranked by |score| (MIB's CMD) or by signed score (its CPR)."""

    @property
    def cpr(self) -> float:
        return cpr(self.budgets, self.faithfulness)

    @property
    def cmd(self) -> float:
        return cmd(self.budgets, self.faithfulness)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "cpr": self.cpr, "cmd": self.cmd}


def greedy_edges(
    scores: Mapping[str, float], n: float | int, *, absolute: bool = True
) -> set[Edge]:
    """MIB's `Graph.apply_greedy`: starting from the edges into LOGITS, repeatedly take the
    highest-scoring edge whose receiver is already in the circuit (its sender joins, and with
    it the edges into the sender) until `n` edges are taken (a fractional `n` rounds up, as
    MIB's loop does), then prune."""
    if n > len(scores):
        raise ValueError(f"n: {n}, more than the {len(scores)} edges")
    into: dict[str, list[str]] = {}
    for name in scores:
        into.setdefault(split(name)[1], []).append(name)
    order = {name: i for i, name in enumerate(scores)}

    def value(name: str) -> float:
        return abs(scores[name]) if absolute else scores[name]

    heap = [(-value(e), order[e], e) for e in into.get(LOGITS, [])]
    heapq.heapify(heap)
    taken: set[Edge] = set()
    joined = {LOGITS}
    for _ in range(math.ceil(n)):
        if not heap:
            break
        _, _, name = heapq.heappop(heap)
        sender, receiver = split(name)
        taken.add((sender, receiver))
        if sender not in joined:
            joined.add(sender)
            for e in into.get(sender, []):
                heapq.heappush(heap, (-value(e), order[e], e))
    return prune(taken)


def roc_point(
    chosen: Collection[Edge], truth: Collection[Edge], all_edges: Collection[Edge]
) -> tuple[float, float]:
    """(false positive rate, true positive rate) of `chosen` against the known circuit `truth`
    (MIB's `compare_graphs`)."""
    chosen, truth = set(chosen), set(truth)
    tp = len(chosen & truth)
    fn = len(truth - chosen)
    fp = len(chosen - truth)
    tn = len(set(all_edges) - chosen - truth)
    return (fp / (fp + tn) if fp + tn else 0.0), (tp / (tp + fn) if tp + fn else 0.0)


def edge_auroc(
    scores: Mapping[str, float],
    truth: Collection[Edge],
    *,
    budgets: Sequence[float] = BUDGETS,
) -> tuple[float, list[tuple[float, float]]]:
    """MIB's InterpBench score: the area under the (FPR, TPR) points of the greedy circuits at
    each budget, FPR divided by its last value; returns the area and the points."""
    all_edges = [split(e) for e in scores]
    points = [
        roc_point(greedy_edges(scores, fraction * len(scores)), truth, all_edges)
        for fraction in budgets
    ]
    fpr = [p[0] for p in points]
    last = fpr[-1] or 1.0
    return trapezoid([x / last for x in fpr], [p[1] for p in points]), points
