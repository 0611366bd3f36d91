"""A transcoder circuit seen as components: how much of its influence each head and MLP carries.

An MLP layer carries the influence of its features and its error nodes. An attention head
carries the part of each edge that runs through it (the circuit's head shares), weighted by
the influence that flows along the edge: the influence of the edge's target times the edge's
share of what the target receives of the corruption (an edge's weight times how much its
source changes on the corrupted prompt: an edge from a token the corruption leaves alone
carries none of it, however large its weight on the clean prompt). Component edges follow the
same weights: an edge from a layer-2 feature to the metric carried 70% by L3H1 gives
MLP2 -> L3H1 and L3H1 -> LOGITS 70% of its influence each, and MLP2 -> LOGITS the rest.

The graph holds attention patterns frozen, so a component that acts by moving a later head's
attention (an S-inhibition head feeding a name mover's query) has no edge in it. The circuit's
QK paths (`circuits.components.qk_paths`, measured on the real model) fill that gap: each adds
its share of the metric's gap, in magnitude, to its sender and to the edge sender -> head.
"""

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from circuits.components.naming import EMBED, LOGITS, components
from circuits.run.circuit import Circuit, CircuitEdge, CircuitNode


@dataclass(frozen=True, kw_only=True)
class ComponentView:
    """One circuit's weight on every component, each a share of the circuit's influence."""

    task: str
    model: str
    n_layers: int
    n_heads: int
    scores: dict[str, float]
    """Component name -> influence it carries (every head and MLP of the model; 0 if unused)."""
    edges: dict[str, float] = field(default_factory=dict)
    """`"SENDER->RECEIVER"` -> influence along that component edge."""
    flow: dict[str, float] = field(default_factory=dict)
    """Share of the circuit's node influence on feature and on error nodes, the share of edge
    influence that attention heads carry (`attention`), and the total share of the metric's gap
    that moves through attention patterns (`qk_paths`), which the graph holds frozen."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ComponentView":
        return cls(**data)


def _component_of(node: CircuitNode) -> str:
    if node.kind == "token":
        return EMBED
    if node.kind == "target":
        return LOGITS
    return f"MLP{node.layer}"


def component_view(circuit: Circuit, n_heads: int) -> ComponentView:
    """Map `circuit` onto the heads and MLPs of a model with `n_heads` heads per layer."""
    scores = {c.name: 0.0 for c in components(circuit.n_layers, n_heads)}
    flow = {"feature": 0.0, "error": 0.0}
    for node in circuit.nodes:
        if node.kind in ("feature", "error"):
            scores[f"MLP{node.layer}"] += node.influence
        if node.kind in flow:
            flow[node.kind] += node.influence

    parts = [_exposed_parts(circuit, edge) for edge in circuit.edges]
    incoming: dict[int, float] = defaultdict(float)
    for edge, (by_head, direct) in zip(circuit.edges, parts, strict=True):
        incoming[edge.target] += sum(by_head.values()) + direct
    edges: dict[str, float] = defaultdict(float)
    through_heads = total = 0.0
    for edge, (by_head, direct) in zip(circuit.edges, parts, strict=True):
        target = circuit.nodes[edge.target]
        reach = target.influence if target.kind != "target" else 1.0
        scale = reach / (incoming[edge.target] or 1.0)
        sender = _component_of(circuit.nodes[edge.source])
        receiver = _component_of(target)
        for head, part in by_head.items():
            scores[head] = scores.get(head, 0.0) + part * scale
            edges[f"{sender}->{head}"] += part * scale
            edges[f"{head}->{receiver}"] += part * scale
        if direct > 0 and sender != receiver:
            edges[f"{sender}->{receiver}"] += direct * scale
        through_heads += sum(by_head.values()) * scale
        total += (sum(by_head.values()) + direct) * scale
    flow["attention"] = through_heads / total if total else 0.0
    for name, share in circuit.qk_paths.items():
        sender = name.split("->")[0]
        if sender in scores:  # not EMBED
            scores[sender] += abs(share)
        edges[name] += abs(share)
    flow["qk_paths"] = sum(abs(share) for share in circuit.qk_paths.values())
    return ComponentView(
        task=circuit.task,
        model=circuit.model,
        n_layers=circuit.n_layers,
        n_heads=n_heads,
        scores=scores,
        edges=dict(edges),
        flow=flow,
    )


def _exposed_parts(circuit: Circuit, edge: CircuitEdge) -> tuple[dict[str, float], float]:
    """The part of an edge exposed to the corruption, through each head and directly.

    The residual-stream part changes only as much as its source does. The part through a head
    also changes when the head's attention does, which happens wherever the target itself
    changes (attention is frozen in the graph, not in the model: a name mover moves an
    unchanged name, but attends elsewhere once the subject is corrupted)."""
    source, target = circuit.nodes[edge.source], circuit.nodes[edge.target]
    source_change = min(abs(source.change), 1.0)
    head_exposure = 1.0 if target.kind == "target" or target.change != 0 else source_change
    weight = abs(edge.weight)
    # a head opposing the edge (negative share) matters as much as one carrying it
    by_head = {head: weight * abs(share) * head_exposure for head, share in edge.heads}
    carried = min(max(sum(share for _, share in edge.heads), 0.0), 1.0)
    return by_head, weight * (1 - carried) * source_change
