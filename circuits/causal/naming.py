"""Components: the units the published circuits are stated in (attention heads and MLP layers),
and their names.

Every benchmark method speaks of components, whatever it looks at inside: the causal reference
patches them, the baselines score them, and a transcoder circuit is mapped onto them (MLP
layers through their features and error nodes, heads through head-resolved edges). Names are
`L{layer}H{head}` (the name circuits already give heads), `MLP{layer}`, and for edges the two
ends `EMBED` (token embeddings) and `LOGITS` (the metric).
"""

from dataclasses import dataclass

EMBED = "EMBED"
LOGITS = "LOGITS"


@dataclass(frozen=True)
class Component:
    layer: int
    head: int | None
    """None for the MLP of `layer`."""

    @property
    def name(self) -> str:
        return f"MLP{self.layer}" if self.head is None else f"L{self.layer}H{self.head}"

    @property
    def is_head(self) -> bool:
        return self.head is not None


def components(n_layers: int, n_heads: int) -> list[Component]:
    """Every head and MLP in the order of the forward pass: layer by layer, heads then MLP."""
    out = []
    for layer in range(n_layers):
        out += [Component(layer, head) for head in range(n_heads)]
        out.append(Component(layer, None))
    return out


def parse_component(name: str) -> Component:
    """`L3H2`, `MLP4`, or the task files' published notation `3.2` (a head)."""
    try:
        if name.startswith("MLP"):
            return Component(int(name[3:]), None)
        if name.startswith("L") and "H" in name:
            layer, head = name[1:].split("H")
            return Component(int(layer), int(head))
        layer, head = name.split(".")
        return Component(int(layer), int(head))
    except ValueError:
        raise ValueError(
            f"component {name!r}: expected a head `L3H2` (or `3.2`) or an MLP `MLP4`"
        ) from None


def reads_before(sender: str, receiver: str) -> bool:
    """Whether `sender`'s output can reach `receiver`'s input directly (through the residual
    stream): embeddings reach everything; a head of layer l reaches heads of later layers and
    the MLPs from layer l on; an MLP of layer l reaches components of later layers."""
    if sender == LOGITS or receiver == EMBED:
        return False
    if sender == EMBED or receiver == LOGITS:
        return True
    s, r = parse_component(sender), parse_component(receiver)
    if s.is_head and not r.is_head:
        return r.layer >= s.layer
    return r.layer > s.layer


def component_edges(n_layers: int, n_heads: int) -> list[tuple[str, str]]:
    """Every (sender, receiver) pair joined by the residual stream."""
    senders = [EMBED] + [c.name for c in components(n_layers, n_heads)]
    receivers = [c.name for c in components(n_layers, n_heads)] + [LOGITS]
    return [(s, r) for s in senders for r in receivers if reads_before(s, r)]
