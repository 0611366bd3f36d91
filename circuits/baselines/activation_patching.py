"""Activation patching of components, the denoising way: on the corrupted prompt, give one head
or MLP its clean output and see how much of the metric comes back.

The causal reference measures the other direction (noising the clean prompt) and paths; the two
agree for components that act alone and differ for those that need company (a head whose input
is also corrupted does little when restored alone).
"""

import time
from typing import Any

import torch
from tqdm import tqdm

from circuits.causal.naming import components
from circuits.causal.patching import Patch, patched_metrics, run_prompt
from circuits.scoring.scores import ComponentScores
from circuits.tasks import PromptSet


@torch.no_grad()
def activation_patching(bridge: Any, prompt_set: PromptSet) -> ComponentScores:
    start = time.perf_counter()
    cfg = bridge.cfg
    names = [c.name for c in components(cfg.n_layers, cfg.n_heads)]
    restored = torch.zeros(len(names))
    gap = 0.0
    for prompt in tqdm(prompt_set.prompts, desc="activation patching", unit="prompt", leave=False):
        run = run_prompt(bridge, prompt_set, prompt)
        patches: list[Patch] = [{n: None} for n in names]
        patched = patched_metrics(bridge, run.corrupt_tokens, run.clean, patches, run.metric)
        restored += patched - run.m_corrupt
        gap += run.m_clean - run.m_corrupt
    return ComponentScores(
        method="activation patching",
        nodes={n: float(v) for n, v in zip(names, restored / gap, strict=True)},
        edges=None,
        seconds=time.perf_counter() - start,
        units="share of the clean-corrupt gap restored",
    )
