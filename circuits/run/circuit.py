"""A circuit: the pruned, prompt-aggregated attribution graph of one task.

Nodes are identified across prompts by their role position (e.g. IOI's IO, S1, S2, END; other
positions are named after the closest role to their left, such as `S1+1`), so a feature that
fires at the second mention of the subject in every prompt is one node.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

NODE_KINDS = ("token", "error", "feature", "target")


@dataclass(frozen=True, kw_only=True)
class CircuitNode:
    kind: str
    """One of NODE_KINDS."""
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
    """Attention heads that carried the edge, e.g. [("L1H3", 0.82)]: share of the edge's
    weight through each head, strongest first (only heads carrying >= 10%)."""


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Circuit":
        nodes = [CircuitNode(**n) for n in data["nodes"]]
        edges = [
            CircuitEdge(**{**e, "heads": [tuple(h) for h in e["heads"]]}) for e in data["edges"]
        ]
        return cls(**{**data, "nodes": nodes, "edges": edges})

    @property
    def n_features(self) -> int:
        return sum(n.kind == "feature" for n in self.nodes)
