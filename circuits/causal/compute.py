"""Measure a task's causal reference on a model: every head and MLP resampled from the
corrupted prompt (all positions), mean-ablated at each role position (its mean output there over
the prompts: a corruption that changes only S2 cannot show what happens before S2), every path
between components patched from the corrupted prompt, and head roles.

Each effect is `mean(m_clean - m_patched) / mean(m_clean - m_corrupt)` over the prompts, so the
prompts' own noise averages out before the division.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from circuits.causal.naming import LOGITS, component_edges, components
from circuits.causal.patching import Outputs, Patch, PromptRun, patched_metrics, run_prompt
from circuits.causal.paths import path_patched_metrics
from circuits.causal.reference import ComponentEffect, Reference
from circuits.causal.roles import ROLE_RULES, Measurements, attention_reader
from circuits.tasks import PromptSet, TaskPrompt


def role_means(
    recorded: Sequence[Outputs], prompts: Sequence[Any], roles: Sequence[str]
) -> dict[str, Outputs]:
    """Per role, every component's output at that role's position averaged over the prompts
    (positions as a leading axis of length one)."""

    def mean(tensors: list[Tensor]) -> Tensor:
        return torch.stack(tensors).mean(0, keepdim=False)[None]

    out = {}
    for role in roles:
        at = [p.roles[role] for p in prompts]
        n_layers = len(recorded[0].z)
        out[role] = Outputs(
            z=[
                mean([r.z[layer][i] for r, i in zip(recorded, at, strict=True)])
                for layer in range(n_layers)
            ],
            mlp=[
                mean([r.mlp[layer][i] for r, i in zip(recorded, at, strict=True)])
                for layer in range(n_layers)
            ],
            embed=mean([r.embed[i] for r, i in zip(recorded, at, strict=True)]),
        )
    return out


def with_role_means(
    clean: Outputs, means: dict[str, Outputs], prompt: TaskPrompt, roles: Sequence[str]
) -> Outputs:
    """`clean` with each role's position holding that role's mean outputs."""
    z, mlp, embed = (
        [t.clone() for t in clean.z],
        [t.clone() for t in clean.mlp],
        clean.embed.clone(),
    )
    for role in roles:
        i, mean = prompt.roles[role], means[role]
        for layer in range(len(z)):
            z[layer][i] = mean.z[layer][0]
            mlp[layer][i] = mean.mlp[layer][0]
        embed[i] = mean.embed[0]
    return Outputs(z=z, mlp=mlp, embed=embed)


@dataclass
class _Sums:
    """Per-prompt measurements summed over the prompts (metric units)."""

    total: Tensor
    """[n_components]: m_clean - m(component resampled)."""
    at: Tensor
    """[n_roles, n_components]: m_clean - m(component mean-ablated at the role)."""
    paths: Tensor
    """[n_edges]: m_clean - m(path patched)."""
    clean: float = 0.0
    corrupt: float = 0.0


def _measure(
    bridge: Any,
    run: PromptRun,
    prompt: TaskPrompt,
    averaged: Outputs,
    names: list[str],
    positions: list[str],
    edges: list[tuple[str, str]],
    sums: _Sums,
) -> None:
    """Add one prompt's effects to `sums`."""
    tokens, metric = run.tokens, run.metric
    sums.clean += run.m_clean
    sums.corrupt += run.m_corrupt
    resampled = patched_metrics(bridge, tokens, run.corrupt, [{c: None} for c in names], metric)
    sums.total += run.m_clean - resampled
    patches: list[Patch] = []
    for role in positions:
        where = torch.zeros(len(tokens), dtype=torch.bool)
        where[prompt.roles[role]] = True
        patches += [Patch({name: where}) for name in names]
    ablated = patched_metrics(bridge, tokens, averaged, patches, metric)
    sums.at += (run.m_clean - ablated).view(len(positions), len(names))
    patched = path_patched_metrics(bridge, tokens, run.clean, run.corrupt, edges, metric)
    sums.paths += run.m_clean - patched


def _roles(
    bridge: Any,
    prompt_set: PromptSet,
    effects: dict[str, ComponentEffect],
    edge_effects: dict[str, float],
    threshold: float,
) -> dict[str, list[str]]:
    """The task's head roles, for tasks that have role rules."""
    task = prompt_set.spec.name
    if task not in ROLE_RULES:
        return {}
    cfg = bridge.cfg
    return ROLE_RULES[task](
        Measurements(
            heads=[c.name for c in components(cfg.n_layers, cfg.n_heads) if c.is_head],
            direct={k: e.direct for k, e in effects.items()},
            by_position={k: e.by_position for k, e in effects.items()},
            edges=edge_effects,
            attention=attention_reader(bridge, prompt_set.prompts),
            threshold=threshold,
        )
    )


@torch.no_grad()
def compute_reference(
    bridge: Any,
    prompt_set: PromptSet,
    *,
    model_spec: str,
    threshold: float,
    command: str,
    roles: Sequence[str] | None = None,
) -> Reference:
    """The reference of `prompt_set`'s task on `bridge`; `roles` are the role positions whose
    single-position effects are measured (default: every role of the prompts)."""
    start = time.perf_counter()
    cfg = bridge.cfg
    names = [c.name for c in components(cfg.n_layers, cfg.n_heads)]
    edges = component_edges(cfg.n_layers, cfg.n_heads)
    positions = list(roles) if roles is not None else list(prompt_set.roles)
    prompts = prompt_set.prompts
    n = len(prompts)
    runs = [run_prompt(bridge, prompt_set, p) for p in prompts]
    means = role_means([r.clean for r in runs], prompts, positions)
    sums = _Sums(
        total=torch.zeros(len(names)),
        at=torch.zeros(len(positions), len(names)),
        paths=torch.zeros(len(edges)),
    )
    for prompt, run in tqdm(
        list(zip(prompts, runs, strict=True)), desc="causal reference", unit="prompt"
    ):
        averaged = with_role_means(run.clean, means, prompt, positions)
        _measure(bridge, run, prompt, averaged, names, positions, edges, sums)
    gap = sums.clean - sums.corrupt
    if abs(gap / n) < 1e-6:
        raise ValueError(
            f"task {prompt_set.spec.name}: the clean and corrupted prompts give the same mean "
            "metric on this model; there is nothing to attribute"
        )
    total, at, paths = sums.total / gap, sums.at / gap, sums.paths / gap
    edge_effects = {f"{s}->{r}": float(v) for (s, r), v in zip(edges, paths, strict=True)}
    effects = {
        name: ComponentEffect(
            total=float(total[i]),
            direct=edge_effects.get(f"{name}->{LOGITS}", 0.0),
            by_position={role: float(at[j, i]) for j, role in enumerate(positions)},
        )
        for i, name in enumerate(names)
    }
    return Reference(
        task=prompt_set.spec.name,
        model=model_spec,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        n_prompts=n,
        metric_clean=sums.clean / n,
        metric_corrupt=sums.corrupt / n,
        components=effects,
        edges=edge_effects,
        roles=_roles(bridge, prompt_set, effects, edge_effects, threshold),
        threshold=threshold,
        command=command,
        seconds=time.perf_counter() - start,
    )
