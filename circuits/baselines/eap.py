"""Edge attribution patching (Syed et al. 2023) and its integrated-gradients variant EAP-IG
(Hanna et al. 2024): the first-order estimate of path patching.

The score of an edge sender -> receiver is the sender's output change (corrupted minus clean)
dotted with the gradient of the metric at the receiver's input, negated so that it estimates
`m_clean - m_path_patched` like the reference's path effects. EAP takes the gradient on the
clean prompt; EAP-IG averages it over `steps` prompts whose token embeddings move from the
corrupted to the clean ones. A component's node score is the sum of its outgoing edges' scores
in magnitude. With heads receiving at their query and key inputs only, the same loop estimates
QK paths (`benchmarks/qk_paths.py` compares it with what the component view uses).
"""

import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm import tqdm

from circuits.causal.naming import EMBED, component_edges, components
from circuits.causal.patching import output_change, run_prompt
from circuits.causal.paths import QKV_HOOKS, receiver_gradients
from circuits.scoring.scores import ComponentScores
from circuits.tasks import PromptSet


def edge_attribution_patching(
    bridge: Any, prompt_set: PromptSet, *, steps: int = 0
) -> ComponentScores:
    """EAP (`steps=0`) or EAP-IG with `steps` interpolation points."""
    if steps < 0:
        raise ValueError(f"steps: {steps}; use 0 for EAP or a positive count for EAP-IG")
    start = time.perf_counter()
    cfg = bridge.cfg
    edges = component_edges(cfg.n_layers, cfg.n_heads)
    method = "EAP" if steps == 0 else "EAP-IG"
    edge_scores = edge_attributions(bridge, prompt_set, edges, steps=steps, desc=method)
    if edge_scores is None:
        raise ValueError(
            f"{method}: the corruption leaves the metric unchanged on every prompt, so there is "
            "no gap to share; check the task's corrupted prompts"
        )
    nodes = {c.name: 0.0 for c in components(cfg.n_layers, cfg.n_heads)}
    for (sender, _), value in zip(edges, edge_scores.values(), strict=True):
        if sender != EMBED:
            nodes[sender] += abs(value)
    return ComponentScores(
        method=method,
        nodes=nodes,
        edges=edge_scores,
        seconds=time.perf_counter() - start,
        units="estimated share of the clean-corrupt gap (edges); sum of |edges| out (nodes)",
    )


def edge_attributions(
    bridge: Any,
    prompt_set: PromptSet,
    edges: list[tuple[str, str]],
    *,
    steps: int = 0,
    head_inputs: Sequence[str] = QKV_HOOKS,
    desc: str = "EAP",
) -> dict[str, float] | None:
    """`"SENDER->RECEIVER"` -> estimated share of the clean-corrupt gap along each edge (a head
    receiving at `head_inputs`: query, key and value by default), in the order of `edges`; None
    when the corruption leaves the metric unchanged (no gap to share)."""
    senders = sorted({s for s, _ in edges})
    receivers = sorted({r for _, r in edges})
    totals = torch.zeros(len(edges))
    gap = 0.0
    for prompt in tqdm(prompt_set.prompts, desc=desc, unit="prompt", leave=False):
        run = run_prompt(bridge, prompt_set, prompt)
        clean, corrupt = run.clean, run.corrupt
        gap += run.m_clean - run.m_corrupt
        embeddings = None
        if steps:
            alphas = torch.arange(1, steps + 1, dtype=clean.embed.dtype) / steps
            # [steps, n_pos, d_model]: from the corrupted embeddings to the clean ones
            embeddings = corrupt.embed + alphas[:, None, None] * (clean.embed - corrupt.embed)
        grads = receiver_gradients(
            bridge,
            run.tokens,
            receivers,
            run.metric,
            embeddings=embeddings,
            head_inputs=head_inputs,
        )
        with torch.no_grad():
            changes = {s: output_change(bridge, s, clean, corrupt) for s in senders}
            totals -= torch.stack([(changes[s] * grads[r]).sum() for s, r in edges])
    if gap == 0:
        return None
    return {f"{s}->{r}": float(v) for (s, r), v in zip(edges, (totals / gap).tolist(), strict=True)}
