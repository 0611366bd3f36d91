"""Activation patching of components, the denoising way: on the corrupted prompt, give one head
or MLP its clean output and see how much of the metric comes back; and of edges, MIB's way
(`edge_activation_patching`: each edge patched alone from the corrupted prompt).

The causal reference measures the other direction (noising the clean prompt) and paths; the two
agree for components that act alone and differ for those that need company (a head whose input
is also corrupted does little when restored alone).
"""

import time
from typing import Any

import torch
from tqdm import tqdm

from circuits.causal.naming import EMBED, component_edges, components
from circuits.causal.patching import Patch, patched_metrics, run_prompt
from circuits.causal.paths import path_patched_metrics
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


@torch.no_grad()
def edge_activation_patching(bridge: Any, prompt_set: PromptSet) -> ComponentScores:
    """MIB's exact edge activation patching: each edge sender -> receiver path-patched alone on
    the clean prompt (the sender's corrupted-minus-clean output added to the receiver's input
    only), scored m_clean - m_patched as a share of the clean-corrupt gap (positive where the
    edge supports the metric, as EAP scores are); a node's score is the sum of |its outgoing
    edges|."""
    start = time.perf_counter()
    cfg = bridge.cfg
    edges = component_edges(cfg.n_layers, cfg.n_heads)
    totals = torch.zeros(len(edges), dtype=torch.float64)
    gap = 0.0
    for prompt in tqdm(prompt_set.prompts, desc="edge patching", unit="prompt", leave=False):
        run = run_prompt(bridge, prompt_set, prompt)
        patched = path_patched_metrics(
            bridge, run.tokens, run.clean, run.corrupt, edges, run.metric
        )
        totals += run.m_clean - patched.double()
        gap += run.m_clean - run.m_corrupt
    if gap == 0:
        raise ValueError(
            "edge activation patching: the corruption leaves the metric unchanged on every "
            "prompt, so there is no gap to share; check the task's corrupted prompts"
        )
    scores = {f"{s}->{r}": float(v) for (s, r), v in zip(edges, totals / gap, strict=True)}
    nodes = {c.name: 0.0 for c in components(cfg.n_layers, cfg.n_heads)}
    for (sender, _), value in zip(edges, scores.values(), strict=True):
        if sender != EMBED:
            nodes[sender] += abs(value)
    return ComponentScores(
        method="edge activation patching",
        nodes=nodes,
        edges=scores,
        seconds=time.perf_counter() - start,
        units="share of the clean-corrupt gap lost when the edge alone is patched",
    )
