"""What a transcoder graph cannot see: components that act by moving later heads' attention.

The graph freezes every attention pattern, so a head that changes where a later head looks (an
S-inhibition head steering a name mover's query away from the subject) carries no edge in it,
and neither does an MLP that does the same. This measures those paths on the real model, to
first order: the change of a component's output on the corrupted prompt dotted with the
gradient of the metric at a later head's query and key inputs (not its value input: that path
is the graph's), negated and divided by the clean-corrupt gap, so that each score estimates the
share of the gap that runs from the sender through the receiver's attention pattern.
"""

from typing import Any

import torch
from tqdm import tqdm

from circuits.causal.patching import output_change, run_prompt
from circuits.causal.paths import QK_HOOKS, receiver_gradients
from circuits.components.naming import LOGITS, component_edges, parse_component


def qk_path_scores(bridge: Any, prompt_set: Any) -> dict[str, float]:
    """`"SENDER->LxHy"` -> signed share of the gap that the sender moves through head LxHy's
    query and key, over every sender (EMBED, heads, MLPs) that the head reads; empty when the
    corruption leaves the metric unchanged (no gap to share)."""
    cfg = bridge.cfg
    edges = [
        (s, r)
        for s, r in component_edges(cfg.n_layers, cfg.n_heads)
        if r != LOGITS and parse_component(r).is_head
    ]
    senders = sorted({s for s, _ in edges})
    receivers = sorted({r for _, r in edges})
    totals = torch.zeros(len(edges))
    gap = 0.0
    for prompt in tqdm(prompt_set.prompts, desc="QK paths", unit="prompt", leave=False):
        run = run_prompt(bridge, prompt_set, prompt)
        gap += run.m_clean - run.m_corrupt
        grads = receiver_gradients(bridge, run.tokens, receivers, run.metric, head_inputs=QK_HOOKS)
        with torch.no_grad():
            changes = {s: output_change(bridge, s, run.clean, run.corrupt) for s in senders}
            totals -= torch.stack([(changes[s] * grads[r]).sum() for s, r in edges])
    if gap == 0:
        return {}
    return {f"{s}->{r}": v for (s, r), v in zip(edges, (totals / gap).tolist(), strict=True)}
