"""A transcoder circuit seen as components: how much of the metric's gap each head and MLP moves.

An MLP layer moves what its circuit nodes (features and error nodes) move, each resampled alone
from the corrupted prompt on the real model (`CircuitNode.effect`), summed with their signs: a
layer whose features push both ways moves little, however much influence they carry.

A head has no node of its own; it is seen through the circuit edges it carries. Every circuit
edge knows how much the metric moves when the corruption changes the edge's source, attention
frozen (`CircuitEdge.effect`), and how much of that each head carries
(`CircuitEdge.head_effects`). Component edges sum those effects, signed, as shares of the
clean-corrupt gap: an edge from a layer-2 feature to the metric whose effect is carried 70% by
L3H1 gives MLP2 -> L3H1 and L3H1 -> LOGITS 70% of its effect each, and MLP2 -> LOGITS what the
heads' weight shares leave on the residual stream. A head's score is the sum of |its outgoing
component edges|, the way EAP scores nodes: a head whose effects on different receivers cancel
still counts as used.

The graph holds attention patterns frozen, so a component that acts by moving a later head's
attention (an S-inhibition head feeding a name mover's query) has no edge in it, and neither does
the change of that head's own output. Two measurements fill that gap. The circuit's QK paths
(`circuits.causal.qk_paths`, on the real model) say who moved a head: each is a
component edge sender -> head of its own (an MLP's node effects already hold its QK paths). The
circuit's moved patterns (`circuits.attribution.heads.moved_patterns`) say what the head's own
moved attention does: its corrupted-prompt pattern swapped in, through the frozen linear model.
That is a term of the head's score beside its value paths, so that neither can hide the other
(tiny's negative name mover L1H2 writes against the IOI answer along its value paths, and its
moved pattern pushes back), and it flows out along the head's component edges, split by the
weight the head carries into each receiver (a name mover whose attention the corruption moves
changes what it writes).
"""

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from circuits.attribution.nodes import NodeKind
from circuits.causal.naming import EMBED, LOGITS, components, parse_component
from circuits.run.circuit import Circuit, CircuitNode


@dataclass(frozen=True, kw_only=True)
class ComponentView:
    """One circuit's weight on every component and component edge, in shares of the metric's gap."""

    task: str
    model: str
    n_layers: int
    n_heads: int
    scores: dict[str, float]
    """Component name -> share of the gap it moves: an MLP's nodes' effects summed with signs, in
    magnitude; a head's |outgoing component edges| and |moved pattern| summed (every head and
    MLP of the model; 0 if unused)."""
    edges: dict[str, float] = field(default_factory=dict)
    """`"SENDER->RECEIVER"` -> |share of the gap moved along that component edge|."""
    flow: dict[str, float] = field(default_factory=dict)
    """Share of the circuit's node influence on feature and on error nodes, the share of the
    circuit edges' effect that attention heads carry (`attention`), and the total share of the
    metric's gap that moves through attention patterns (`qk_paths`), which the graph holds
    frozen."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ComponentView":
        return cls(**data)


def _component_of(node: CircuitNode) -> str:
    if node.kind == NodeKind.TOKEN:
        return EMBED
    if node.kind == NodeKind.TARGET:
        return LOGITS
    return f"MLP{node.layer}"


def component_view(circuit: Circuit, n_heads: int) -> ComponentView:
    """Map `circuit` onto the heads and MLPs of a model with `n_heads` heads per layer."""
    gap = circuit.gap or 1.0  # circuits saved before the gap was recorded: metric units
    scores = {c.name: 0.0 for c in components(circuit.n_layers, n_heads)}
    flow = {"feature": 0.0, "error": 0.0}
    mlp_moves: dict[str, float] = defaultdict(float)
    for node in circuit.nodes:
        if node.kind in flow:
            flow[node.kind] += node.influence
            mlp_moves[f"MLP{node.layer}"] += node.effect / gap
    for mlp, moved in mlp_moves.items():
        scores[mlp] = abs(moved)

    edges, head_out, flow["attention"] = value_paths(circuit, gap)
    for name, share in circuit.qk_paths.items():
        edges[name] += share
    flow["qk_paths"] = sum(abs(share) for share in circuit.qk_paths.values())
    moved_pattern = {head: value / gap for head, value in circuit.moved_patterns.items()}
    for head, moved in moved_pattern.items():
        scores[head] += abs(moved)
    for name, value in edges.items():
        sender = name.split("->")[0]
        if sender != EMBED and parse_component(sender).is_head:
            scores[sender] += abs(value)
    # the moved patterns flow out along the heads' own edges (after scoring: a head's value
    # paths and its moved pattern count separately, so that they cannot cancel in its score)
    for head, moved in moved_pattern.items():
        out = head_out.get(head, {})
        carried = sum(out.values())
        for receiver, weight in out.items():
            edges[f"{head}->{receiver}"] += moved * weight / carried if carried else 0.0
    return ComponentView(
        task=circuit.task,
        model=circuit.model,
        n_layers=circuit.n_layers,
        n_heads=n_heads,
        scores=scores,
        edges={name: abs(value) for name, value in edges.items()},
        flow=flow,
    )


def value_paths(
    circuit: Circuit, gap: float
) -> tuple[defaultdict[str, float], dict[str, dict[str, float]], float]:
    """Signed component edges from the circuit edges' effects (shares of `gap`); per head, the
    |weight| it carries into each receiver on the clean prompt; and the share of the circuit
    edges' |effect| that runs through heads."""
    edges: defaultdict[str, float] = defaultdict(float)
    head_out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    through_heads = total = 0.0
    for edge in circuit.edges:
        sender = _component_of(circuit.nodes[edge.source])
        receiver = _component_of(circuit.nodes[edge.target])
        effect = edge.effect / gap
        for head, head_effect in edge.head_effects.items():
            edges[f"{sender}->{head}"] += head_effect / gap
            edges[f"{head}->{receiver}"] += head_effect / gap
        for head, share in edge.heads:
            head_out[head][receiver] += abs(share * edge.weight)
        carried = min(max(sum(share for _, share in edge.heads), 0.0), 1.0)
        if sender != receiver:
            edges[f"{sender}->{receiver}"] += (1 - carried) * effect
        through_heads += carried * abs(effect)
        total += abs(effect)
    return edges, head_out, through_heads / total if total else 0.0
