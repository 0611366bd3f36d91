"""A circuit: the pruned, prompt-aggregated attribution graph of one task.

Nodes are identified across prompts by their role position (e.g. IOI's IO, S1, S2, END; other
positions are named after the closest role to their left, such as `S1+1`), so a feature that
fires at the second mention of the subject in every prompt is one node.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from circuits.attribution.nodes import NodeKind


@dataclass(frozen=True, kw_only=True)
class CircuitNode:
    kind: NodeKind
    """Token, error, feature or target (stored as its name)."""
    layer: int
    """Transformer block (-1 for tokens, n_layers for the target)."""
    role: str
    """Role position, e.g. `IO`, `S2`, `END`, `S1+1`."""
    feature: int | None = None
    """Transcoder feature index (feature nodes only)."""
    label: str = ""
    """Short readable description (feature label, token text, metric name)."""
    activation: float = 0.0
    """Mean over prompts: feature activation, token count, or the target's value."""
    influence: float = 0.0
    """Mean total influence on the target (share of the target's input that flows through it)."""
    effect: float = 0.0
    """Mean effect on the metric of resampling this node alone from the corrupted prompt (metric
    units; positive where the node supports the metric)."""
    change: float = 1.0
    """Mean change from the clean to the corrupted prompt relative to the clean value (1: gone
    or different, 0: the same, as for everything left of the first corrupted token)."""

    @property
    def key(self) -> tuple:
        return (self.kind, self.layer, self.feature, self.role)


@dataclass(frozen=True, kw_only=True)
class CircuitEdge:
    source: int
    """Index into `Circuit.nodes`."""
    target: int
    weight: float
    """Mean direct effect over the prompts (0 where absent)."""
    heads: list[tuple[str, float]] = field(default_factory=list)
    """Attention heads that carried the edge, e.g. [("L1H3", 0.82), ("L1H1", -0.2)]: share of
    the edge's weight through each head, negative for a head that opposes it; largest in
    magnitude first (only heads carrying >= 10% either way)."""
    effect: float = 0.0
    """Mean first-order change of the metric when the corruption changes the edge's source,
    attention frozen: weight x the source's relative change x the target's effect per unit of
    input (metric units; positive where the edge supports the metric)."""
    head_effects: dict[str, float] = field(default_factory=dict)
    """The part of `effect` carried through each head of `heads`, from each prompt's own parts
    (metric units)."""


@dataclass(frozen=True, kw_only=True)
class Circuit:
    task: str
    model: str
    metric: str
    """Name of the target, e.g. `logit_diff`."""
    n_layers: int
    roles: list[str]
    """Role positions in prompt order (left to right in drawings)."""
    nodes: list[CircuitNode]
    edges: list[CircuitEdge]
    n_prompts: int
    example_tokens: list[str] = field(default_factory=list)
    """The first prompt's tokens, for display."""
    gap: float = 0.0
    """The metric on the clean prompts minus on the corrupted ones, transcoders spliced in."""
    qk_paths: dict[str, float] = field(default_factory=dict)
    """`"SENDER->LxHy"` -> share of the metric's gap that the sender moves through that head's
    attention pattern, which the graph holds frozen (see `circuits.causal.qk_paths`)."""
    moved_patterns: dict[str, float] = field(default_factory=dict)
    """`"LxHy"` -> the metric's move when that head's own attention takes the corrupted prompt's
    pattern, everything else clean (metric units; see `circuits.attribution.heads`)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Circuit":
        nodes = [CircuitNode(**{**n, "kind": NodeKind(n["kind"])}) for n in data["nodes"]]
        edges = [
            CircuitEdge(**{**e, "heads": [tuple(h) for h in e["heads"]]}) for e in data["edges"]
        ]
        return cls(**{**data, "nodes": nodes, "edges": edges})

    @property
    def n_features(self) -> int:
        return sum(n.kind == NodeKind.FEATURE for n in self.nodes)


def drawable(circuit: Circuit, *, max_nodes: int = 40, max_edges: int = 90) -> Circuit:
    """The part of `circuit` worth drawing: the target, the features and error nodes of highest
    influence (up to `max_nodes` nodes in all, tokens included), and the strongest edges among
    them; tokens appear only where a kept edge starts."""
    middle = sorted(
        (i for i, n in enumerate(circuit.nodes) if n.kind in (NodeKind.FEATURE, NodeKind.ERROR)),
        key=lambda i: -circuit.nodes[i].influence,
    )
    targets = [i for i, n in enumerate(circuit.nodes) if n.kind == NodeKind.TARGET]
    tokens = {i for i, n in enumerate(circuit.nodes) if n.kind == NodeKind.TOKEN}
    inner = set(targets) | set(middle[: max(0, int(0.8 * max_nodes) - len(targets))])
    candidates = [
        e for e in circuit.edges if e.target in inner and (e.source in inner or e.source in tokens)
    ]
    candidates.sort(key=lambda e: -abs(e.weight))
    edges, used_tokens = [], set()
    for edge in candidates:
        if len(edges) >= max_edges:
            break
        if edge.source in tokens and edge.source not in used_tokens:
            if len(inner) + len(used_tokens) >= max_nodes:
                continue
            used_tokens.add(edge.source)
        edges.append(edge)
    keep = sorted(inner | used_tokens)
    new = {old: i for i, old in enumerate(keep)}
    nodes = [circuit.nodes[i] for i in keep]
    roles = [r for r in circuit.roles if any(n.role == r for n in nodes)]
    return Circuit(
        **{
            **circuit.__dict__,
            "nodes": nodes,
            "roles": roles,
            "edges": [
                CircuitEdge(
                    source=new[e.source], target=new[e.target], weight=e.weight, heads=e.heads
                )
                for e in edges
            ],
        }
    )
