"""What a transcoder graph cannot see: components that act by moving later heads' attention.

The graph freezes every attention pattern, so a head that changes where a later head looks (an
S-inhibition head steering a name mover's query away from the subject) carries no edge in it,
and neither does an MLP that does the same. This estimates those paths on the real model with
integrated gradients (as EAP-IG does): the change of a component's output on the corrupted
prompt dotted with the gradient of the metric at a later head's query and key inputs (not its
value input: that path is the graph's), averaged over inputs moving from the corrupted prompt to
the clean one, negated and divided by the clean-corrupt gap. Each score estimates the share of
the gap that runs from the sender through the receiver's attention pattern. The plain gradient
on the clean prompt (one step) overstates paths into saturated softmaxes: on the zoo's IOI it
credited MLP0 of `small` with 1.3 times the whole gap.
"""

from typing import Any

from circuits.baselines.eap import edge_attributions
from circuits.causal.paths import QK_HOOKS
from circuits.components.naming import LOGITS, component_edges, parse_component

STEPS = 5
"""Interpolation points between the corrupted and the clean prompt (EAP-IG's default here)."""


def qk_path_scores(bridge: Any, prompt_set: Any, *, steps: int = STEPS) -> dict[str, float]:
    """`"SENDER->LxHy"` -> signed share of the gap that the sender moves through head LxHy's
    query and key, over every sender (EMBED, heads, MLPs) that the head reads; empty when the
    corruption leaves the metric unchanged (no gap to share)."""
    cfg = bridge.cfg
    edges = [
        (s, r)
        for s, r in component_edges(cfg.n_layers, cfg.n_heads)
        if r != LOGITS and parse_component(r).is_head
    ]
    scores = edge_attributions(
        bridge, prompt_set, edges, steps=steps, head_inputs=QK_HOOKS, desc="QK paths"
    )
    return scores or {}
