"""Faithfulness of a component circuit on the real model: keep its heads and MLPs, resample
every other one from the corrupted prompt, and see how much of the metric survives.

    faithfulness = (m(circuit only) - m(nothing)) / (m(model) - m(nothing))

with `nothing` every component resampled; means over the prompts are taken before dividing.
"""

from collections.abc import Collection, Sequence
from typing import Any

import torch

from circuits.causal.naming import components
from circuits.causal.patching import Patch, patched_metrics, run_prompt
from circuits.tasks import PromptSet


@torch.no_grad()
def component_faithfulness(
    bridge: Any, prompt_set: PromptSet, circuits: Sequence[Collection[str]]
) -> list[float]:
    """The faithfulness of each circuit (a set of component names), measured together."""
    cfg = bridge.cfg
    names = [c.name for c in components(cfg.n_layers, cfg.n_heads)]
    patches: list[Patch] = [Patch({n: None for n in names})]  # nothing kept
    patches += [Patch({n: None for n in names if n not in kept}) for kept in circuits]
    full = 0.0
    sums = torch.zeros(len(patches))
    for prompt in prompt_set.prompts:
        run = run_prompt(bridge, prompt_set, prompt)
        full += run.m_clean
        sums += patched_metrics(bridge, run.tokens, run.corrupt, patches, run.metric)
    nothing, kept = float(sums[0]), sums[1:]
    span = full - nothing
    if abs(span) < 1e-9:
        return [float("nan")] * len(circuits)
    return [(float(k) - nothing) / span for k in kept]
